"""MOSP pruning groups: invariants, channel attribution through cat / add / pixel_shuffle."""
from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn

from ir_prune_plugin.archs import build_arch
from ir_prune_plugin.channels.compactor import Compactor
from ir_prune_plugin.memory import estimate_peak_memory

NETS = [
    ("sid_unet", {"width": 0.25}, (1, 3, 30, 44)),
    ("res_unet", {"width": 0.25}, (1, 3, 32, 32)),
    ("edsr", {"num_feat": 16, "num_block": 2, "upscale": 2}, (1, 3, 12, 12)),
    ("rcan", {"num_feat": 16, "num_group": 1, "num_block": 2, "squeeze_factor": 4, "upscale": 2}, (1, 3, 8, 8)),
    ("rrdbnet", {"num_feat": 8, "num_block": 1, "num_grow_ch": 4, "scale": 2}, (1, 3, 8, 8)),
]


def assert_invariants(p) -> None:
    assert p.groups, "a network with convs has groups"
    prev = None
    for g in p.groups:
        assert g.bytes == g.fixed_bytes + sum(b * c for b, c in zip(g.bytes_per_channel, g.out_channels))
        assert g.bytes == p.timeline[g.step]
        assert all(b > 0 for b in g.bytes_per_channel) and g.fixed_bytes >= 0
        assert g.out_channels == tuple(p.layer_channels[n] for n in g.layers)
        key = (g.layers, g.bytes_per_channel, g.fixed_bytes)
        assert key != prev, "identical consecutive groups are merged"
        prev = key
    assert max(g.bytes for g in p.groups) == p.peak_bytes == p.peak_group.bytes


@pytest.mark.parametrize("name,kw,shape", NETS, ids=[n[0] for n in NETS])
def test_group_invariants(name, kw, shape):
    assert_invariants(estimate_peak_memory(build_arch(name, **kw), shape))


def test_concat_skip_puts_encoder_conv_in_decoder_group():
    p = estimate_peak_memory(build_arch("sid_unet", width=0.25), (1, 3, 32, 32))
    g = p.peak_group
    assert g.step == p.peak_step
    # the last decoder concat holds the encoder's output (via enc1's last conv) and up1's output
    assert {"enc1.2", "up1"} <= set(g.layers)
    h = w = 32
    per_ch = h * w * 4
    # enc1.2 lives twice (the skip tensor and its copy in the concat), as does up1
    assert g.channel_bytes()["enc1.2"] == 2 * per_ch and g.channel_bytes()["up1"] == 2 * per_ch
    assert "out" in p.pinned  # the output conv keeps the model's 3 channels


def test_residual_adds_couple_layers():
    p = estimate_peak_memory(build_arch("res_unet", width=0.25), (1, 3, 16, 16))
    assert frozenset({"block1.block.2", "block1.shortcut"}) in p.coupled
    p = estimate_peak_memory(build_arch("edsr", num_feat=8, num_block=2, upscale=2), (1, 3, 8, 8))
    assert frozenset({"conv_first", "body.0.conv2", "body.1.conv2", "conv_after_body"}) in p.coupled


def test_pixel_shuffle_scales_bytes_per_channel():
    p = estimate_peak_memory(build_arch("edsr", num_feat=16, num_block=1, upscale=2), (1, 3, 12, 12))
    step = next(i for i, s in enumerate(p.steps) if s.op == "pixel_shuffle")
    g = next(g for g in p.groups if g.step == step)
    per_ch = 12 * 12 * 4
    # one of the 64 conv channels: its own 12x12 map, plus a quarter of a 24x24 output channel
    assert g.channel_bytes()["upsample.0"] == per_ch + (24 * 24 * 4) // 4
    assert g.fixed_bytes == 0


class SkipWithCompactor(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.enc, self.skip = nn.Conv2d(3, 8, 3, padding=1), Compactor(8)
        self.mid, self.out = nn.Conv2d(8, 8, 3, padding=1), nn.Conv2d(16, 3, 1)

    def forward(self, x):
        e = self.enc(x)
        return self.out(torch.cat([self.mid(e), self.skip(e)], 1))


def test_compactor_is_its_own_layer():
    p = estimate_peak_memory(SkipWithCompactor(), (1, 3, 8, 8))
    assert_invariants(p)
    per_ch = 8 * 8 * 4
    # steps: enc, mid, skip (the compactor's conv), cat, out; at the cat, enc's output is freed
    cat = next(g for g in p.groups if p.steps[g.step].op == "cat")
    assert cat.channel_bytes() == {"mid": 2 * per_ch, "skip": 2 * per_ch}
    assert p.layer_channels["skip"] == 8
    assert all(set(c) != {"enc", "skip"} for c in p.coupled)  # a compactor decouples the skip


class Odd(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.c = nn.Conv2d(2, 4, 3, padding=1)

    def forward(self, x):
        y = self.c(x)
        a, b = y.split(3, 1)  # 3 + 1 channels: partial -> fixed
        return torch.cumsum(a, 1), torch.cumsum(b, 1)


def test_unknown_ops_warn_once_and_count_as_fixed():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        p = estimate_peak_memory(Odd(), (1, 2, 4, 4))
    msgs = [str(w.message) for w in caught if "no channel rule" in str(w.message)]
    assert len(msgs) == 1 and "cumsum" in msgs[0]
    assert p.unsupported_ops == {"cumsum": 2}
    assert_invariants(p)
    assert "cumsum" in p.summary()


class MLP(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1, self.act, self.fc2 = nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


def test_linear_channels_are_the_last_dim():
    p = estimate_peak_memory(MLP(), (5, 8))
    assert_invariants(p)
    g = next(g for g in p.groups if g.step == 1)  # relu: fc1 output + relu output
    assert g.channel_bytes() == {"fc1": 2 * 5 * 4}


def test_top_groups_summary_and_plot(tmp_path):
    p = estimate_peak_memory(build_arch("sid_unet", width=0.25), (1, 3, 32, 32))
    top = p.top_groups(3)
    assert [g.bytes for g in top] == sorted((g.bytes for g in p.groups), reverse=True)[:3]
    with pytest.raises(ValueError, match="positive int"):
        p.top_groups(0)
    with pytest.raises(ValueError, match="step"):
        p.live_at(len(p.steps))
    text = p.summary(top=2)
    assert f"{p.peak_bytes / 2**20:.2f} MiB" in text and "enc1.2" in text
    out = p.plot(tmp_path / "mem.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 5000
    with pytest.raises(ValueError, match=".png"):
        p.plot(tmp_path / "mem.jpg")
    bpc = p.layer_bytes_per_channel()
    assert bpc["enc1.2"] == max(g.channel_bytes().get("enc1.2", 0) for g in p.groups)


class _ShapeGuarded(nn.Module):
    """A block fx cannot trace through (control flow on a shape): compactor capture makes it a leaf."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(8, 8, 3, padding=1)

    def forward(self, x):
        if x.shape[-1] < 2:
            raise ValueError("too small")
        return torch.relu(self.conv(x))


class _LeafBody(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.head, self.tail = nn.Conv2d(3, 8, 3, padding=1), nn.Conv2d(8, 3, 3, padding=1)
        self.body = nn.Sequential(*[_ShapeGuarded() for _ in range(6)])

    def forward(self, x):
        f = self.head(x)
        return self.tail(self.body(f) + f)


def test_layers_inside_fx_leaf_blocks_keep_their_names():
    from ir_prune_plugin.channels.compactor import insert_compactors
    model, x = _LeafBody().eval(), torch.rand(1, 3, 8, 8)
    work = insert_compactors(model, x)
    assert any(isinstance(m, Compactor) for m in work.modules())
    plain, rewritten = estimate_peak_memory(model, x), estimate_peak_memory(work, x)
    # the leaf blocks export without their inner module paths; the weight names the layer
    assert {f"body.{i}.conv" for i in range(6)} <= set(rewritten.layer_channels) == set(plain.layer_channels) | {
        n for n in rewritten.layer_channels if n.startswith("compactors.")}
    assert_invariants(rewritten)
