"""NNI masks -> physically smaller models through Torch-Pruning (``speedup``)."""
from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

pytest.importorskip("nni")

from nni.compression.pruning import L1NormPruner, LevelPruner  # noqa: E402

from ir_prune_plugin.archs import build_arch  # noqa: E402
from ir_prune_plugin.channels.safety import BrokenForwardError  # noqa: E402
from ir_prune_plugin.integrations.nni import apply_masks, removable_channels, speedup  # noqa: E402

from thirdparty_nets import build  # noqa: E402


def _params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _randomize(model: nn.Module, seed: int = 0) -> nn.Module:
    """Non-trivial weights (the reference nets zero-init their heads)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.1)
    return model


def _masked(model: nn.Module, masks) -> nn.Module:
    ref = copy.deepcopy(model)
    apply_masks(ref, masks)
    return ref


def _close(a: nn.Module, b: nn.Module, x: torch.Tensor, atol: float = 1e-4) -> float:
    with torch.no_grad():
        ya, yb = a.eval()(x), b.eval()(x)
    assert ya.shape == yb.shape
    diff = float((ya - yb).abs().max())
    assert diff <= atol, diff
    return diff


def test_nni_l1_masks_on_reference_unet_become_a_smaller_model():
    torch.manual_seed(0)
    model = _randomize(build_arch("sid_unet", width=0.125))
    x = torch.rand(1, 3, 24, 24)  # not a multiple of 16: the U-Net pads and crops
    pruner = L1NormPruner(model, [{"op_types": ["Conv2d"], "exclude_op_names": ["out"], "sparse_ratio": 0.5}])
    _, masks = pruner.compress()
    pruner.unwrap_model()
    before = {k: v.clone() for k, v in model.state_dict().items()}

    small = speedup(model, masks, x)

    assert _params(small) < 0.5 * _params(model)
    assert small.enc1[0].out_channels == 2 and model.enc1[0].out_channels == 4
    assert small.dec1[0].in_channels == model.up1.out_channels + 2  # concat: skip half removed
    _close(small, _masked(model, masks), x)
    _close(small, _masked(model, masks), torch.rand(2, 3, 40, 33))  # any size after pruning
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # caller untouched
    assert model.enc1[0].out_channels == 4


def test_pixel_shuffle_net_edsr_speeds_up():
    torch.manual_seed(0)
    model = _randomize(build_arch("edsr", num_feat=16, num_block=2, upscale=2))
    x = torch.rand(1, 3, 12, 12)
    pruner = L1NormPruner(model, [{"op_names_re": [r"body\.\d+\.conv1"], "sparse_ratio": 0.5}])
    _, masks = pruner.compress()
    pruner.unwrap_model()
    up = model.upsample[0]  # 16 -> 64 channels, PixelShuffle(2): blocks of 4 channels
    keep = torch.ones(64)
    keep[[0, 1, 2, 3, 8, 9, 10, 11, 20, 21, 22, 23]] = 0  # three whole blocks
    keep[13] = 0  # and one channel of a block: not removable on its own
    masks = {**masks, "upsample.0": {"weight": keep.reshape(-1, 1, 1, 1).expand_as(up.weight).clone(),
                                     "bias": keep.clone()}}
    small = speedup(model, masks, x)
    assert small.body[0].conv1.out_channels == 8
    assert small.upsample[0].out_channels == 52
    assert small.conv_last.in_channels == 13  # the shuffle's output lost 3 of 16 channels
    assert _params(small) < _params(model)
    _close(small, _masked(model, masks), x)


def test_coupled_channels_need_every_producer_masked():
    torch.manual_seed(0)
    model = _randomize(build_arch("res_unet", width=0.125))
    x = torch.rand(1, 3, 16, 16)
    conv, short = model.block2.block[2], model.block2.shortcut  # added together: one channel group
    half = {"weight": torch.ones_like(conv.weight), "bias": torch.ones_like(conv.bias)}
    half["weight"][:3] = 0
    half["bias"][:3] = 0
    only_one = {"block2.block.2": half}
    assert "block2.block.2" not in removable_channels(model, only_one, x)
    assert "block2.shortcut" not in removable_channels(model, only_one, x)
    small = speedup(model, only_one, x)
    assert small.block2.block[2].out_channels == conv.out_channels  # kept (zeroed): not removable
    _close(small, _masked(model, only_one), x)

    other = {"weight": torch.ones_like(short.weight), "bias": torch.ones_like(short.bias)}
    other["weight"][1:3] = 0
    other["bias"][1:3] = 0
    both = {"block2.block.2": half, "block2.shortcut": other}
    removed = {i for idxs in removable_channels(model, both, x).values() for i in idxs}
    assert removed == {1, 2}  # masked in both addends
    small = speedup(model, both, x)
    assert small.block2.block[2].out_channels == conv.out_channels - 2
    _close(small, _masked(model, both), x)


def test_fine_grained_masks_are_baked_in_without_removal():
    torch.manual_seed(0)
    model = _randomize(build_arch("sid_unet", width=0.125))
    x = torch.rand(1, 3, 16, 16)
    pruner = LevelPruner(model, [{"op_types": ["Conv2d"], "sparse_ratio": 0.5}])
    _, masks = pruner.compress()
    pruner.unwrap_model()
    small = speedup(model, masks, x)
    assert _params(small) == _params(model)
    assert float((small.enc2[0].weight == 0).float().mean()) >= 0.5
    _close(small, _masked(model, masks), x)


def test_bad_masks_are_rejected_before_any_change():
    model = build_arch("sid_unet", width=0.125)
    x = torch.rand(1, 3, 16, 16)
    w = torch.ones_like(model.enc1[0].weight)
    with pytest.raises(ValueError, match="'enc1.9'.*not in the model"):
        speedup(model, {"enc1.9": {"weight": w}}, x)
    with pytest.raises(ValueError, match=r"masks\['enc2.0'\]\['weight'\] has shape"):
        speedup(model, {"enc2.0": {"weight": w}}, x)
    with pytest.raises(ValueError, match="'gamma'"):
        speedup(model, {"enc1.0": {"gamma": w}}, x)
    with pytest.raises(TypeError, match="masks must be a dict"):
        speedup(model, [w], x)
    pruner = L1NormPruner(model, [{"op_types": ["Conv2d"], "sparse_ratio": 0.5}])
    _, masks = pruner.compress()
    with pytest.raises(ValueError, match="unwrap_model"):
        speedup(model, masks, x)


def test_removal_that_breaks_a_real_net_is_rolled_back_and_named():
    """SPAN (spandrel): removing the masked channels of the groups feeding its ``torch.cat`` breaks
    ``conv_cat``; those removals are rolled back (channels kept, zeroed), the others go through, and
    the result runs in train and eval mode and computes the masked net. ``strict`` names layer and op."""
    pytest.importorskip("spandrel")
    model, x = build("span")
    model.eval()
    shape = model(x).shape
    pruner = L1NormPruner(model, [{"op_types": ["Conv2d"], "sparse_ratio": 0.5}])
    _, masks = pruner.compress()
    pruner.unwrap_model()
    before = {k: v.clone() for k, v in model.state_dict().items()}

    small = speedup(model, masks, x)

    assert _params(small) < _params(model)
    assert small.conv_2.eval_conv.out_channels == model.conv_2.eval_conv.out_channels  # rolled back
    for mode in (True, False):
        with torch.no_grad():
            assert small.train(mode)(x).shape == shape
    _close(small, _masked(model, masks), x)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # caller untouched
    with pytest.raises(BrokenForwardError, match=r"in layer 'conv_cat' \(Conv2d\) at `out = self.conv_cat") as err:
        speedup(model, masks, x, strict=True)
    assert err.value.layer == "conv_cat" and err.value.mode == "eval" and "torch.cat" in err.value.op


def test_attention_groups_keep_their_masked_channels_instead_of_refusing():
    """SwinIR (spandrel): the masked MLP hidden widths are removed, the masked q/k/v channels of
    the attention stay (zeroed) instead of the whole network being refused; same output."""
    pytest.importorskip("spandrel")
    model, x = build("swinir")
    model.eval()
    pruner = L1NormPruner(model, [{"op_types": ["Linear"], "sparse_ratio": 0.5}])
    _, masks = pruner.compress()
    pruner.unwrap_model()
    small = speedup(model, masks, x)
    block = "layers.0.residual_group.blocks.0"
    assert small.get_submodule(f"{block}.mlp.fc1").out_features == model.get_submodule(f"{block}.mlp.fc1").out_features // 2
    assert small.get_submodule(f"{block}.attn.qkv").out_features == model.get_submodule(f"{block}.attn.qkv").out_features
    _close(small, _masked(model, masks), x)
