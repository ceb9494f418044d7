"""N:M core: grouping axis, ranks, masks, parametrizations, checker, MACs counting."""
from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch.nn.utils import parametrize
from torch.utils.flop_counter import FlopCounterMode

from ir_prune_plugin.channels.compactor import Compactor
from ir_prune_plugin.sparsity import check_nm, group_ranks, layer_macs, nm_mask, ordered_gate, to_groups
from ir_prune_plugin.sparsity import masks as mk


def _groups_independent(w: torch.Tensor, M: int, transposed: bool) -> torch.Tensor:
    """Independent group view by explicit loops: M consecutive reduction channels at fixed (o, kh, kw)."""
    rows = []
    if w.dim() == 2:
        for o in range(w.shape[0]):
            for c0 in range(0, w.shape[1], M):
                rows.append(w[o, c0:c0 + M])
        return torch.stack(rows)
    red_dim = 0 if transposed else 1
    other = 1 - red_dim
    for o in range(w.shape[other]):
        for i in range(w.shape[2]):
            for j in range(w.shape[3]):
                for c0 in range(0, w.shape[red_dim], M):
                    sl = w[c0:c0 + M, o, i, j] if transposed else w[o, c0:c0 + M, i, j]
                    rows.append(sl)
    return torch.stack(rows)


@pytest.mark.parametrize("shape,transposed", [((6, 8, 3, 3), False), ((8, 5, 2, 2), True), ((7, 16), False)])
def test_groups_are_consecutive_reduction_channels(shape, transposed):
    torch.manual_seed(0)
    w = torch.randn(shape)
    got = to_groups(w, 4, transposed)
    want = _groups_independent(w, 4, transposed)
    # same multiset of rows (ordering of rows is an implementation detail)
    assert sorted(map(tuple, got.tolist())) == sorted(map(tuple, want.tolist()))


@pytest.mark.parametrize("transposed", [False, True])
def test_nm_mask_keeps_n_largest_per_group(transposed):
    torch.manual_seed(1)
    w = torch.randn(8, 8, 3, 3)
    mask = nm_mask(w, 2, 4, transposed)
    kept = _groups_independent(w * mask, 4, transposed)
    full = _groups_independent(w, 4, transposed)
    assert ((kept != 0).sum(1) == 2).all()
    top2 = full.abs().topk(2, dim=1).values
    assert torch.allclose(kept.abs().sort(1, descending=True).values[:, :2], top2)


def test_ranks_inverse_roundtrip_and_ties_deterministic():
    w = torch.zeros(4, 8, 1, 1)
    r = group_ranks(w, 4)
    # all ties: rank follows position inside the group
    assert r[0, :4, 0, 0].tolist() == [0, 1, 2, 3] and r[0, 4:, 0, 0].tolist() == [0, 1, 2, 3]


def test_reference_clamp_flaw_is_fixed():
    k = torch.tensor([0.49, 1.03, 1.03])
    ref_prob = torch.cumprod(k.clamp(0, 1.03), 0)
    assert (ref_prob > 0.5).tolist() == [False, True, True]  # the reference drops rank 1, keeps rank 2
    assert ordered_gate(k).tolist() == [1.0, 0.0, 0.0, 0.0]


@settings(max_examples=60, deadline=None)
@given(scores=st.lists(st.floats(-2, 3, allow_nan=False), min_size=7, max_size=7), seed=st.integers(0, 2**16))
def test_kept_set_is_a_magnitude_prefix(scores, seed):
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(4, 16, 3, 3, generator=g)
    m = mk.ScoredNMMask(w, 8, transposed=False)
    with torch.no_grad():
        m.scores.copy_(torch.tensor(scores))
        masked = m(w)
    groups = to_groups(w, 8).abs()
    kept = to_groups(masked, 8) != 0
    n = kept.sum(1)
    assert (n == n[0]).all() and n[0] >= 1  # one N per layer
    kth_largest = groups.sort(1, descending=True).values[:, n[0] - 1:n[0]]
    assert (groups[kept].view(-1, int(n[0])) >= kth_largest).all()  # prefix of the magnitude order


def test_gate_gradient_flows_at_initialisation():
    k = torch.ones(5, requires_grad=True)
    ordered_gate(k).sum().backward()
    assert (k.grad != 0).all()


def test_parametrization_is_removable_and_squashed():
    conv = nn.Conv2d(8, 4, 3)
    dense = conv.weight.detach().clone()
    mk.attach(conv, mk.FixedNMMask(conv.weight.detach(), 2, 4, False))
    assert parametrize.is_parametrized(conv)
    assert torch.equal(mk.original(conv), dense)
    mk.squash(conv)
    assert not parametrize.is_parametrized(conv)
    assert torch.equal(conv.weight, dense * nm_mask(dense, 2, 4))


def test_check_nm_reports_and_raises():
    net = nn.Sequential(nn.Conv2d(3, 8, 3), nn.Conv2d(8, 8, 3), nn.ConvTranspose2d(8, 4, 2, 2), nn.Conv2d(4, 3, 1))
    with torch.no_grad():
        net[1].weight.mul_(nm_mask(net[1].weight, 1, 4))
        net[2].weight.mul_(nm_mask(net[2].weight, 2, 4, transposed=True))
    rep = check_nm(net, {"1": (1, 4), "2": (2, 4)})
    assert rep.plan == {"1": (1, 4), "2": (2, 4)}
    assert set(rep.dense) == {"0", "3"}
    with pytest.raises(ValueError, match="violates 1:4"):
        check_nm(net, {"2": (1, 4)})
    with pytest.raises(ValueError, match="not divisible"):
        check_nm(net, {"0": (1, 4)})  # Cin = 3


def test_bad_n_m():
    w = torch.randn(4, 8, 1, 1)
    with pytest.raises(ValueError, match="N must satisfy"):
        nm_mask(w, 5, 4)
    with pytest.raises(ValueError, match="M must be a positive"):
        nm_mask(w, 1, 0)
    with pytest.raises(TypeError, match="N must be an int"):
        nm_mask(w, 1.5, 4)


def test_layer_macs_match_flop_counter():
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ConvTranspose2d(8, 4, 2, stride=2),
                        Compactor(4), nn.Flatten(), nn.Linear(4 * 16 * 16, 5))
    x = torch.randn(2, 3, 8, 8)
    macs = layer_macs(net, x)
    assert list(macs) == ["0", "1", "2", "4"]  # execution order
    with FlopCounterMode(display=False) as fc:
        net(x)
    assert sum(macs.values()) * 2 == fc.get_total_flops()
