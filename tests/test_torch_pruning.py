"""Torch-Pruning rules: Compactor / PixelShuffle pruners, importance, groups, physical pruning."""
from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
import torch_pruning as tp
from torch import nn

from ir_prune_plugin.archs import build_arch
from ir_prune_plugin.channels.compactor import Compactor, insert_compactors
from ir_prune_plugin.channels.tp_graph import build_dependency_graph, channel_groups, output_layers, prune_channels
from ir_prune_plugin.integrations.torch_pruning import (
    CompactorMagnitudeImportance, UnsupportedArchitectureError, tp_kwargs)

X16 = torch.rand(1, 3, 16, 16)

TINY = {
    "sid_unet": {"width": 0.25},
    "res_unet": {"width": 0.25},
    "edsr": {"num_feat": 16, "num_block": 2, "upscale": 4},
    "msrresnet": {"num_feat": 16, "num_block": 2, "upscale": 4},
    "rcan": {"num_feat": 16, "num_group": 2, "num_block": 2, "upscale": 2, "squeeze_factor": 4},
    "rrdbnet": {"num_feat": 16, "num_block": 1, "num_grow_ch": 8, "scale": 4},
    "srvgg": {"num_feat": 16, "num_conv": 4, "upscale": 4},
}
#: convs that upsample (feed a PixelShuffle, or follow an interpolation) and must get thinner
UPSAMPLERS = {"edsr": ["upsample.0", "upsample.2"], "msrresnet": ["upconv1", "upconv2"],
              "rcan": ["upsample.0"], "rrdbnet": ["conv_up1", "conv_up2"]}


def _params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _widths(model: nn.Module) -> dict[str, tuple[int, ...]]:
    return {n: tuple(m.weight.shape) for n, m in model.named_modules()
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, Compactor))}


def _unet(name: str = "sid_unet") -> nn.Module:
    model = build_arch(name, width=0.25)
    nn.init.normal_(model.out.weight, std=0.1)  # the reference nets zero-init their head
    return insert_compactors(model, X16).eval()


@pytest.mark.parametrize("name", sorted(TINY))
def test_metapruner_half_width_with_our_rules(name: str) -> None:
    model = build_arch(name, **TINY[name]).eval()
    x = torch.rand(1, 3, 12, 12)
    out_shape = model(x).shape
    before, widths = _params(model), _widths(model)
    kwargs = tp_kwargs(model, x)
    pruner = tp.pruner.MetaPruner(model, x, CompactorMagnitudeImportance(), pruning_ratio=0.5, **kwargs)
    pruner.step()
    with torch.no_grad():
        assert model(x).shape == out_shape
    assert _params(model) < 0.5 * before
    after = _widths(model)
    for layer in set(output_layers(build_arch(name, **TINY[name]), x)) & set(widths):
        assert after[layer][0] == widths[layer][0]  # output channels kept
    for layer in UPSAMPLERS.get(name, []):
        assert after[layer][0] == widths[layer][0] // 2, layer


def test_pixel_shuffle_group_moves_whole_blocks() -> None:
    model = build_arch("edsr", **TINY["edsr"]).eval()
    groups = {g.root: g for g in channel_groups(model, X16)}
    g = groups["upsample.1"]  # the first PixelShuffle
    assert g.channels == 16 and g.out_layers == {"upsample.0": 4, "upsample.1": 1} and g.in_layers == ("upsample.2",)
    assert groups["conv_last"].prunable is False


def test_masked_equals_physically_pruned_pixel_shuffle() -> None:
    model = build_arch("edsr", **TINY["edsr"]).eval()
    drop = [1, 5, 6]
    masked = copy.deepcopy(model)
    conv = masked.upsample[0]
    rows = [c * 4 + k for c in drop for k in range(4)]
    with torch.no_grad():
        conv.weight[rows] = 0
        conv.bias[rows] = 0
    pruned = prune_channels(model, X16, {"upsample.1": drop})
    assert pruned.upsample[0].out_channels == 64 - 12 and pruned.upsample[2].in_channels == 13
    with torch.no_grad():
        assert (masked(X16) - pruned(X16)).abs().max().item() <= 1e-4
    assert _params(pruned) < _params(model)
    assert model.upsample[0].out_channels == 64  # the caller's model is untouched


def test_pruning_compactor_outputs_leaves_encoder_widths() -> None:
    model = _unet()
    before = _widths(model)
    plan = {"compactors.enc1_3": [0, 2, 3, 7], "compactors.enc4_3": list(range(0, 64, 2))}
    pruned = prune_channels(model, X16, plan)
    after = _widths(pruned)
    changed = {n for n in before if before[n] != after[n]}
    assert changed == {"compactors.enc1_3", "compactors.enc4_3", "dec1.0", "dec4.0"}
    assert after["compactors.enc1_3"] == (4, 8, 1, 1) and after["dec1.0"][1] == 8 + 4
    assert after["enc1.2"] == before["enc1.2"] and after["up1"] == before["up1"]
    assert _params(pruned) < _params(model)
    masked = copy.deepcopy(model)
    with torch.no_grad():
        for name, idxs in plan.items():
            masked.get_submodule(name).weight[idxs] = 0
        assert (masked(X16) - pruned(X16)).abs().max().item() <= 1e-4


def test_masked_equals_pruned_for_an_encoder_conv() -> None:
    model = _unet()
    drop = [1, 4]
    masked = copy.deepcopy(model)
    with torch.no_grad():
        conv = masked.get_submodule("enc1.2")
        conv.weight[drop] = 0
        conv.bias[drop] = 0
    pruned = prune_channels(model, X16, {"enc1.2": drop})
    assert pruned.get_submodule("compactors.enc1_3").in_channels == 6
    assert pruned.get_submodule("compactors.enc1_3").out_channels == 8  # skip width decoupled
    with torch.no_grad():
        assert (masked(X16) - pruned(X16)).abs().max().item() <= 1e-4


def test_without_compactors_the_skip_is_coupled() -> None:
    model = build_arch("sid_unet", width=0.25)
    groups = {g.root: g for g in channel_groups(model, X16)}
    assert "dec1.0" in groups["enc1.2"].in_layers  # encoder conv, skip and decoder in one group
    pruned = prune_channels(model, X16, {"enc1.2": [0]})
    assert pruned.dec1[0].in_channels == 15


def test_importance_scores_compactor_channels() -> None:
    model = _unet()
    comp = model.get_submodule("compactors.enc2_3")
    with torch.no_grad():
        comp.weight[3, 3] = 10.0
        comp.weight[5, 5] = 0.01
    graph = build_dependency_graph(model, X16)
    group = graph.get_pruning_group(comp, graph.get_pruner_of_module(comp).prune_out_channels,
                                    list(range(16)))
    imp = CompactorMagnitudeImportance()(group)
    assert imp.shape == (16,)
    assert imp.argmax().item() == 3 and imp.argmin().item() == 5


def test_build_dependency_graph_restores_train_mode() -> None:
    model = build_arch("sid_unet", width=0.25).train()
    with torch.no_grad():  # DG needs autograd: the helper enables it itself
        build_dependency_graph(model, X16)
    assert model.training


def test_prune_channels_rejects_bad_plans_and_leaves_model_unchanged() -> None:
    model = build_arch("edsr", **TINY["edsr"]).eval()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ValueError, match="not a module"):
        prune_channels(model, X16, {"nope": [0]})
    with pytest.raises(ValueError, match="all 16 output channels"):
        prune_channels(model, X16, {"conv_first": list(range(16))})
    with pytest.raises(ValueError, match=r"must lie in \[0, 16\)"):
        prune_channels(model, X16, {"conv_first": [16]})
    with pytest.raises(ValueError, match="coupled"):  # residual stream: one group
        prune_channels(model, X16, {"conv_first": [0], "conv_after_body": [0]})
    with pytest.raises(ValueError, match="move as a block"):
        prune_channels(model, X16, {"upsample.0": [0]})
    with pytest.raises(ValueError, match="output channels of the network"):
        prune_channels(model, X16, {"conv_last": [0]})
    with pytest.raises(ValueError, match="only the output channels"):
        prune_channels(model, X16, {"body.0.relu": [0]})
    with pytest.raises(ValueError, match="duplicates"):
        prune_channels(model, X16, {"conv_first": [1, 1]})
    with pytest.raises(TypeError, match="example_inputs"):
        prune_channels(model, "x", {"conv_first": [1]})
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())


def test_tp_kwargs_lists_output_layers_and_validates_names() -> None:
    model = build_arch("srvgg", **TINY["srvgg"])
    kw = tp_kwargs(model, X16, ignored_layers=["body.0"])
    names = {n for n, m in model.named_modules() if any(m is i for i in kw["ignored_layers"])}
    assert names == {"body.0", "body.10", "upsampler"}
    assert Compactor in kw["root_module_types"] and nn.PixelShuffle in kw["root_module_types"]
    with pytest.raises(ValueError, match="not a module"):
        tp_kwargs(model, X16, ignored_layers=["conv_nope"])


class _Attention(nn.Module):
    """conv -> self-attention over pixels -> conv: channels are mixed through a matmul."""

    def __init__(self) -> None:
        super().__init__()
        self.qkv = nn.Conv2d(3, 24, 1)
        self.proj = nn.Conv2d(8, 3, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        q, k, v = self.qkv(x).flatten(2).chunk(3, dim=1)
        att = torch.softmax(q.transpose(1, 2) @ k, dim=-1)
        return self.proj((v @ att.transpose(1, 2)).view(b, 8, h, w))


class _FunctionalShuffle(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.up = nn.Conv2d(3, 12, 3, padding=1)
        self.out = nn.Conv2d(3, 3, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(F.pixel_shuffle(self.up(x), 2))


@pytest.mark.parametrize("net", [_Attention, _FunctionalShuffle])
def test_unsupported_architectures_fail_clearly(net: type) -> None:
    model = net()
    with pytest.raises(UnsupportedArchitectureError, match="cannot prune this network safely"):
        tp_kwargs(model, torch.rand(1, 3, 8, 8))
    tp_kwargs(model, torch.rand(1, 3, 8, 8), check=False)  # the user may opt out


def test_hand_registered_pruners_work_without_tp_kwargs() -> None:
    from ir_prune_plugin.integrations.torch_pruning import CompactorPruner, PixelShufflePruner
    model = build_arch("edsr", num_feat=16, num_block=1, upscale=2).eval()
    pruner = tp.pruner.MetaPruner(
        model, X16, CompactorMagnitudeImportance(), pruning_ratio=0.5, ignored_layers=[model.conv_last],
        customized_pruners={nn.PixelShuffle: PixelShufflePruner(), Compactor: CompactorPruner()},
        root_module_types=[nn.Conv2d, nn.PixelShuffle, Compactor])
    pruner.step()
    assert model.upsample[0].out_channels == 32 and model.conv_last.in_channels == 8
    with torch.no_grad():
        assert model(X16).shape == (1, 3, 32, 32)
