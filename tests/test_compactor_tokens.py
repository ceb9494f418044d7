"""Token-layout compactors: ``(B, L, C)`` skips concatenated on channels (Uformer-style U-Nets)
get a TokenCompactor that is an exact identity, prunes as its own channel group and replays."""
from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ir_prune_plugin import MOSPPruner, load_pruned, save_pruned
from ir_prune_plugin.channels.compactor import find_skip_connections, insert_compactors, replay_compactors
from ir_prune_plugin.channels.mosp import MOSPOptions
from ir_prune_plugin.channels.tp_graph import build_dependency_graph
from ir_prune_plugin.memory.measure import measure_peak_memory
from ir_prune_plugin.vocabulary import Compactor, TokenCompactor, channel_dim


class TokenUNet(nn.Module):
    """Two-level U-Net on tokens: a token residual inside the encoder, a (B, L, C) concat skip;
    tokens are made contiguous before each Linear, as Uformer does (on strided tokens ``linear``
    runs as a matmul, which the channel rules read as attention)."""

    def __init__(self, c: int = 8) -> None:
        super().__init__()
        self.embed = nn.Conv2d(3, c, 3, padding=1)
        self.enc = nn.Linear(c, c)
        self.down = nn.Conv2d(c, 2 * c, 2, stride=2)
        self.mid = nn.Linear(2 * c, 4 * c)
        self.up = nn.ConvTranspose2d(4 * c, c, 2, stride=2)
        self.dec = nn.Linear(2 * c, c)
        self.out = nn.Conv2d(c, 3, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        t = self.embed(x).flatten(2).transpose(1, 2).contiguous()
        e = t + F.gelu(self.enc(t))   # a token residual: not a compactor site
        d = self.down(e.transpose(1, 2).reshape(b, -1, h, w))
        m = F.gelu(self.mid(d.flatten(2).transpose(1, 2).contiguous()))
        u = self.up(m.transpose(1, 2).reshape(b, -1, h // 2, w // 2)).flatten(2).transpose(1, 2).contiguous()
        y = F.gelu(self.dec(torch.cat([u, e], -1)))
        return x + self.out(y.transpose(1, 2).reshape(b, -1, h, w))


def test_token_compactor_is_identity_on_the_last_dim() -> None:
    c = TokenCompactor(5)
    x = torch.randn(2, 7, 5)
    assert torch.equal(c(x), x) and isinstance(c, Compactor)
    assert (channel_dim(c), channel_dim(Compactor(5)), channel_dim(nn.Linear(2, 2))) == (-1, 1, -1)


def test_token_skip_gets_a_token_compactor_exactly() -> None:
    torch.manual_seed(0)
    net, x = TokenUNet().double().eval(), torch.rand(1, 3, 16, 16, dtype=torch.float64)
    tokens = [s for s in find_skip_connections(net, x) if s.layout == "tokens"]
    assert [(s.source, s.kind, s.channels, s.rescaled) for s in tokens] == [("add", "concat", 8, True)]
    model = insert_compactors(net, x)
    assert [s["layout"] for s in model.irprune_compactors] == ["tokens"]
    assert isinstance(model.compactors.add, TokenCompactor)
    with torch.no_grad():
        assert (model(x) - net(x)).abs().max() <= 1e-6
    again = replay_compactors(TokenUNet().double(), model.irprune_compactors)
    assert isinstance(again.compactors.add, TokenCompactor) and again.code == model.code


def test_removing_token_compactor_channels_equals_zeroing_them() -> None:
    """Its channels form their own group, mapped through the token concat onto ``dec``'s inputs."""
    torch.manual_seed(0)
    net, x = TokenUNet().eval(), torch.rand(1, 3, 16, 16)
    model = insert_compactors(net, x)
    ref = copy.deepcopy(model)
    with torch.no_grad():
        ref.compactors.add.weight[[0, 3]] = 0
    graph = build_dependency_graph(model, x)
    pruner = graph.CUSTOMIZED_PRUNERS[TokenCompactor]
    graph.get_pruning_group(model.compactors.add, pruner.prune_out_channels, [0, 3]).prune()
    assert (model.compactors.add.out_channels, model.dec.in_features) == (6, 14)
    with torch.no_grad():
        assert (model(x) - ref(x)).abs().max() <= 1e-5


def test_mosp_prunes_a_token_compactor_and_it_round_trips(tmp_path: Path) -> None:
    torch.manual_seed(0)
    net, x = TokenUNet().eval(), torch.rand(1, 3, 16, 16)
    model = insert_compactors(net, x)
    with torch.no_grad():
        model.compactors.add.weight[:4] *= 1e-3   # channels MOSP should drop first
    pruner = MOSPPruner(model, x, 0.8, options=MOSPOptions(memory_input_size=(1, 3, 16, 16), min_channels=1))
    small = pruner.prune(progress=False)
    assert small.compactors.add.out_channels < 8
    assert measure_peak_memory(small, x, mode="scheduled") <= pruner.budget_bytes
    with torch.no_grad():
        assert small(x).shape == x.shape
    save_pruned(small, tmp_path / "m.pt", init_kwargs={"c": 8})
    loaded = load_pruned(tmp_path / "m.pt").eval()
    assert isinstance(loaded.compactors.add, TokenCompactor)
    with torch.no_grad():
        assert torch.equal(loaded(x), small.eval()(x))


def test_replay_rejects_an_unknown_layout() -> None:
    site = {"source": "add", "target": "cat", "kind": "concat", "distance": 9, "channels": 8, "layout": "rows"}
    with pytest.raises(ValueError, match="layout must be 'channels' or 'tokens'"):
        replay_compactors(TokenUNet(), [site])
