"""SLS and MOSP as NNI 3.0 pruners on the CPU-sized U-Net and a tiny EDSR."""
from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

pytest.importorskip("nni")

from nni.compression.pruning import LevelPruner  # noqa: E402

from ir_prune_plugin.archs import build_arch  # noqa: E402
from ir_prune_plugin.channels.mosp import MOSPOptions  # noqa: E402
from ir_prune_plugin.data import DenoiseDataset, SRDataset  # noqa: E402
from ir_prune_plugin.integrations.nni import (NNIMOSPPruner, NNISLSPruner, apply_masks, speedup,  # noqa: E402
                                              task_evaluator)
from ir_prune_plugin.memory import estimate_peak_memory  # noqa: E402
from ir_prune_plugin.sparsity import SLSOptions, check_nm  # noqa: E402

NETS = {
    "sid_unet": (lambda: build_arch("sid_unet", width=0.125), "out", lambda: DenoiseDataset("train", patch=16, length=8)),
    "edsr": (lambda: build_arch("edsr", num_feat=16, num_block=2, upscale=2), "conv_last",
             lambda: SRDataset("train", scale=2, patch=16, length=8)),
}


def _net(name: str, seed: int = 0) -> tuple[nn.Module, str, torch.utils.data.Dataset]:
    build, last, data = NETS[name]
    torch.manual_seed(seed)
    model = build()
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():  # non-trivial weights (the reference nets zero-init their heads)
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.1)
    return model, last, data()


def _wrapped(model: nn.Module) -> bool:
    return any(hasattr(m, "_nni_wrapper") for m in model.modules())


def _check_nni_accepts(pruner, model: nn.Module, masks, config_list) -> None:
    """Masks round-trip through NNI's own get_masks()/update_masks(), also of a stock NNI pruner."""
    pruner.update_masks(masks)
    again = pruner.get_masks()
    assert set(again) == set(masks)
    for name, targets in masks.items():
        for t, m in targets.items():
            assert torch.equal(again[name][t], m)
    other = copy.deepcopy(pruner.pure_copy())
    stock = LevelPruner(other, config_list)
    stock.update_masks(masks)
    got = stock.get_masks()
    for name, targets in masks.items():
        assert torch.equal(got[name]["weight"], targets["weight"])
    stock.unwrap_model()


def _nm_groups(weight: torch.Tensor, M: int, transposed: bool) -> torch.Tensor:
    """Independent N:M view: M consecutive input channels at fixed (out, kh, kw)."""
    w = weight.transpose(0, 1) if transposed else weight  # -> (out, in, kh, kw)
    cin = w.shape[1]
    return w.permute(2, 3, 0, 1).reshape(-1, cin).reshape(-1, M)


@pytest.mark.parametrize("net", ["sid_unet", "edsr"])
def test_sls_nni_pruner_returns_nm_masks_nni_accepts(net):
    model, last, data = _net(net)
    original = copy.deepcopy(model)
    x = data[0]["lq"].unsqueeze(0)
    cfg = [{"op_types": ["Conv2d", "ConvTranspose2d"], "exclude_op_names": [last], "sparse_ratio": 0.5}]
    ev = task_evaluator(model, data, lr=1e-3, batch_size=2)
    pruner = NNISLSPruner(model, cfg, ev, example_inputs=x, M=4, training_steps=4,
                          options=SLSOptions(search_steps=2, refresh_every=2))
    returned, masks = pruner.compress()

    assert returned is model and _wrapped(model)
    assert set(pruner.plan) and set(pruner.plan) <= set(masks)
    assert set(pruner.dense_layers) == set(masks) - set(pruner.plan)
    for name in pruner.dense_layers:  # selected but left dense (reduction size not divisible by M)
        assert torch.all(masks[name]["weight"] == 1)
    assert pruner.macs["ratio"] <= 0.5 + 1e-9
    for name, targets in masks.items():
        w = dict(original.named_modules())[name].weight
        assert targets["weight"].shape == w.shape
        assert set(targets["weight"].unique().tolist()) <= {0.0, 1.0}
    _check_nni_accepts(pruner, model, masks, cfg)
    with torch.no_grad():  # NNI's wrappers apply exactly our masks
        y_wrapped = model(x)
    pruner.unwrap_model()
    assert not _wrapped(model)
    assert all(isinstance(p, nn.Parameter) for p in model.parameters())
    masked = copy.deepcopy(model)
    apply_masks(masked, masks)
    with torch.no_grad():
        assert torch.allclose(masked(x), y_wrapped, atol=1e-5)
    check_nm(masked, pruner.plan)  # the project's checker ...
    for name, (n, m) in pruner.plan.items():  # ... and an independent count per group
        layer = masked.get_submodule(name)
        counts = _nm_groups(masks[name]["weight"], m, isinstance(layer, nn.ConvTranspose2d)).sum(dim=1)
        assert torch.all(counts == n), name
        assert torch.all((_nm_groups(layer.weight, m, isinstance(layer, nn.ConvTranspose2d)) != 0).sum(1) <= n)
    # the evaluator's training reached the model (weights synced back through NNI's wrappers)
    assert not torch.equal(dict(model.named_parameters())[f"{last}.weight"],
                           dict(original.named_parameters())[f"{last}.weight"])


@pytest.mark.parametrize("net", ["sid_unet", "edsr"])
def test_mosp_nni_pruner_masks_meet_the_memory_budget_after_speedup(net):
    model, last, data = _net(net)
    x = data[0]["lq"].unsqueeze(0)
    size = (1, 3, 32, 32)
    cfg = [{"op_types": ["Conv2d", "ConvTranspose2d"], "exclude_op_names": [last], "sparse_ratio": 0.4}]
    ev = task_evaluator(model, data, lr=1e-4, batch_size=2) if net == "sid_unet" else None
    pruner = NNIMOSPPruner(model, cfg, ev, example_inputs=x, memory_input_size=size,
                           finetune_steps=1 if ev else 0,
                           options=MOSPOptions(outer_stride=8192, min_channels=1))
    budget = pruner._core.budget_bytes
    returned, masks = pruner.compress()

    assert returned is model and masks
    shrunk = 0
    for name, targets in masks.items():  # channel masks: whole output channels on or off
        w = targets["weight"]
        od = 1 if isinstance(model.get_submodule(name), nn.ConvTranspose2d) else 0
        per_channel = w.movedim(od, 0).reshape(w.shape[od], -1)
        assert torch.all(per_channel.amin(1) == per_channel.amax(1))
        assert float(per_channel[:, 0].sum()) > 0
        shrunk += float(per_channel[:, 0].sum()) < w.shape[od]
    assert shrunk > 0
    _check_nni_accepts(pruner, model, masks, cfg)
    pruner.unwrap_model()

    small = speedup(model, masks, x)
    peak = estimate_peak_memory(small, torch.empty(size, device="meta")).peak_bytes
    assert peak <= budget
    masked = copy.deepcopy(model)
    apply_masks(masked, masks)
    with torch.no_grad():
        y_small, y_masked, y_mosp = small(x), masked(x), pruner.pruned_model.eval()(x)
    assert torch.allclose(y_small, y_masked, atol=1e-4)
    assert torch.allclose(y_small, y_mosp, atol=1e-4)  # same net as the MOSP core's own result
    assert sum(p.numel() for p in small.parameters()) == sum(p.numel() for p in pruner.pruned_model.parameters())


def test_mosp_nni_pruner_rejects_an_unreachable_budget_without_wrapping():
    model, last, data = _net("sid_unet")
    x = data[0]["lq"].unsqueeze(0)
    cfg = [{"op_names": ["enc1.0"], "sparse_ratio": 0.9}]  # one small layer cannot cut 90 %
    with pytest.raises(ValueError, match="cannot be reached"):
        NNIMOSPPruner(model, cfg, example_inputs=x, memory_input_size=(1, 3, 32, 32))
    assert not _wrapped(model)


def test_compactors_are_nni_targets_for_mosp_and_for_nni_own_pruners():
    from nni.compression.pruning import L1NormPruner

    from ir_prune_plugin.channels.compactor import Compactor, insert_compactors
    from ir_prune_plugin.integrations.nni import register_compactor

    model, _, data = _net("sid_unet")
    x = torch.rand(1, 3, 16, 16)
    model = insert_compactors(model, x)
    names = [n for n, m in model.named_modules() if isinstance(m, Compactor)]
    assert len(names) == 4
    cfg = [{"op_types": ["Conv2d", "ConvTranspose2d", "Compactor"], "exclude_op_names": ["out"], "sparse_ratio": 0.4}]
    pruner = NNIMOSPPruner(model, cfg, example_inputs=x, memory_input_size=(1, 3, 32, 32),
                           options=MOSPOptions(outer_stride=8192, min_channels=1))
    _, masks = pruner.compress()
    assert set(names) <= set(masks)  # NNI wrapped the compactors
    pruner.unwrap_model()
    small = speedup(model, masks, x)
    shrunk = [n for n in names if small.get_submodule(n).out_channels < model.get_submodule(n).out_channels]
    assert shrunk  # MOSP cut a skip through its compactor
    masked = copy.deepcopy(model)
    apply_masks(masked, masks)
    with torch.no_grad():
        assert torch.allclose(small(x), masked(x), atol=1e-4)

    register_compactor()  # NNI's own pruners can target Compactor once registered
    stock = L1NormPruner(copy.deepcopy(model), [{"op_types": ["Compactor"], "sparse_ratio": 0.5}])
    _, l1_masks = stock.compress()
    assert set(l1_masks) == set(names)
    stock.unwrap_model()
    small = speedup(stock.bound_model, l1_masks, x)
    assert all(small.get_submodule(n).out_channels == model.get_submodule(n).out_channels // 2 for n in names)
    masked = copy.deepcopy(stock.bound_model)
    apply_masks(masked, l1_masks)
    with torch.no_grad():
        assert torch.allclose(small(x), masked(x), atol=1e-4)
