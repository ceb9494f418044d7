"""Property: on random conv nets (chains, in-place ReLUs, skips), estimate == real scheduled peak."""
from __future__ import annotations

import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

from ir_prune_plugin.memory import estimate_peak_memory, measure_peak_memory


class RandomNet(nn.Module):
    """Convs of the given widths; optional in-place ReLU after each; optional concat skip."""

    def __init__(self, widths: list[int], inplace: list[bool], skip: bool) -> None:
        super().__init__()
        chans = [2, *widths]
        self.convs = nn.ModuleList(nn.Conv2d(a, b, 3, padding=1) for a, b in zip(chans, chans[1:]))
        self.acts = nn.ModuleList(nn.ReLU(inplace=i) for i in inplace)
        self.skip = skip
        self.head = nn.Conv2d(widths[-1] + (widths[0] if skip else 0), 1, 1)

    def forward(self, x):
        first = None
        for conv, act in zip(self.convs, self.acts):
            x = act(conv(x))
            first = x if first is None else first
        return self.head(torch.cat([x, first], 1) if self.skip else x)


@settings(max_examples=6, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(widths=st.lists(st.integers(1, 6), min_size=1, max_size=4), data=st.data(),
       skip=st.booleans(), hw=st.tuples(st.integers(2, 9), st.integers(2, 9)))
def test_estimate_equals_measurement_on_random_nets(widths, data, skip, hw):
    inplace = data.draw(st.lists(st.booleans(), min_size=len(widths), max_size=len(widths)))
    model = RandomNet(widths, inplace, skip)
    x = torch.rand(1, 2, *hw)
    p = estimate_peak_memory(model, x)
    assert p.peak_bytes == measure_peak_memory(model, x)
    for g in p.groups:
        assert g.bytes == g.fixed_bytes + sum(b * c for b, c in zip(g.bytes_per_channel, g.out_channels))
        assert g.bytes == p.timeline[g.step]
