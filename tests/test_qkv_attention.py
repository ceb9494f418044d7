"""Free-standing q/k/v attention rule (channels/rules/qkv_attention.py) on spandrel-extra-arches' own
Restormer ``Attention`` (MDTA): its q/k/v width is a unit; the cut keeps the output shape, removes
the same per-head positions from each chunk, and computes what the masked block computes."""
from __future__ import annotations

import importlib

import pytest
import torch
from torch import nn

from ir_prune_plugin.channels.units import UnitGraph

pytest.importorskip("spandrel_extra_arches")


def _net(heads: int) -> nn.Module:
    arch = importlib.import_module("spandrel_extra_arches.architectures.Restormer.__arch.restormer_arch")
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), arch.Attention(8, heads, bias=True),
                         nn.Conv2d(8, 3, 3, padding=1)).eval()


@pytest.mark.parametrize("heads", [1, 2])
def test_qkv_width_is_a_unit_and_its_cut_is_exact(heads: int) -> None:
    model, x = _net(heads), torch.rand(1, 3, 8, 8)
    graph = UnitGraph(model, (x,), ("2",))
    (root,) = graph.qkv
    att = graph.qkv[root]
    assert (att.proj, att.dwconv, att.out_proj, att.heads) == ("1.qkv", "1.qkv_dwconv", "1.project_out", heads)
    assert graph.units[root].channels == 8 // heads == graph.widths()[root]
    assert graph.units[root].out_layers == {"1.qkv": 3 * heads, "1.qkv_dwconv": 3 * heads}
    assert root not in graph.refused
    local = [0, 2]
    rows, cols = att.channels(model, local)
    d = 8 // heads
    assert cols == sorted(h * d + j for h in range(heads) for j in local)
    assert rows == [c * 8 + j for c in range(3) for j in cols]   # the same positions in q, k and v
    qkv_w = model[1].qkv.weight.detach().clone()
    out_w = model[1].project_out.weight.detach().clone()
    with torch.no_grad():
        dense = model(x)
        with graph.masked(root, local):
            masked = model(x)
    assert not torch.allclose(masked, dense)   # the cut changes what the block computes
    assert graph.remove({root: local}, strict=True) == {root: local}
    left = 8 - len(cols)
    attn = model[1]
    assert attn.qkv.out_channels == 3 * left == attn.qkv_dwconv.groups == attn.qkv_dwconv.out_channels
    assert attn.project_out.in_channels == left and graph.widths()[root] == d - len(local)
    keep = [i for i in range(24) if i not in rows]
    assert torch.equal(attn.qkv.weight, qkv_w[keep])
    assert torch.equal(attn.project_out.weight, out_w[:, [i for i in range(8) if i not in cols]])
    with torch.no_grad():
        pruned = model(x)
        assert model.train()(x).shape == dense.shape
    assert pruned.shape == dense.shape
    torch.testing.assert_close(pruned, masked, rtol=1e-5, atol=1e-6)


def test_bad_positions_are_refused_and_rolled_back() -> None:
    model, x = _net(2), torch.rand(1, 3, 8, 8)
    graph = UnitGraph(model, (x,), ("2",))
    (root,) = graph.qkv
    with torch.no_grad():
        before = model(x)
    with pytest.raises(ValueError, match="1.qkv.*positions \\[4\\].*0, 4"):
        graph.remove({root: [1, 4]}, strict=True)
    assert root in graph.refused and model[1].qkv.out_channels == 24
    with torch.no_grad():
        assert torch.equal(model(x), before)
