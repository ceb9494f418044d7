"""Stream-coupled attention rule (channels/rules/attention.py) on spandrel's own Uformer block:
cutting the residual stream cuts q/k/v by the same count, evenly per head, and the block runs."""
from __future__ import annotations

import importlib

import pytest
import torch
from torch import nn

from ir_prune_plugin.channels.units import UnitGraph

pytest.importorskip("spandrel")


def _net(heads: int) -> nn.Module:
    arch = importlib.import_module("spandrel.architectures.Uformer.__arch.Uformer")
    torch.manual_seed(0)
    block = arch.LeWinTransformerBlock(dim=8, input_resolution=(8, 8), num_heads=heads, win_size=4, mlp_ratio=2.0)
    return nn.Sequential(nn.Linear(3, 8), block, nn.Linear(8, 3)).eval()


@pytest.mark.parametrize("heads", [1, 2])
def test_stream_cut_takes_qkv_along(heads: int) -> None:
    model, x = _net(heads), torch.rand(1, 64, 3)
    graph = UnitGraph(model, (x,), ("2",))
    stream = next(r for r, atts in graph.attention.items())
    (att,) = graph.attention[stream]
    assert att.projections == ("1.attn.qkv.to_q", "1.attn.qkv.to_kv") and att.chunks == (1, 2)
    assert att.out_proj == "1.attn.proj" and att.heads == heads
    assert graph.units[stream].out_layers["1.attn.qkv.to_kv"] == 2   # priced with the stream
    assert graph.remove({stream: [0, 5]}) == {stream: [0, 5]}, graph.refused
    attn = model[1].attn
    assert (attn.qkv.to_q.out_features, attn.qkv.to_kv.out_features, attn.proj.in_features) == (6, 12, 6)
    with torch.no_grad():
        assert model(x).shape == (1, 64, 3) and model.train()(x).shape == (1, 64, 3)


def test_uneven_heads_are_rolled_back() -> None:
    model, x = _net(2), torch.rand(1, 64, 3)
    graph = UnitGraph(model, (x,), ("2",))
    stream = next(iter(graph.attention))
    assert graph.remove({stream: [3]}) == {}
    assert "evenly" in graph.refused[stream]
    assert model[1].attn.qkv.to_q.out_features == 8 and model[0].out_features == 8   # rolled back
    with torch.no_grad():
        assert model(x).shape == (1, 64, 3)
