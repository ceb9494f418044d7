"""BasicSR integration, in-process parts: registration, datasets, the pruning: block, shims."""
from __future__ import annotations

import dataclasses
import importlib.util

import pytest
import torch

if importlib.util.find_spec("basicsr") is None:
    pytest.skip("basicsr is not installed (pip install ir-prune-plugin[basicsr])", allow_module_level=True)

from ir_prune_plugin.integrations.basicsr import parse_pruning_block, register  # noqa: E402
from ir_prune_plugin.integrations.basicsr.options import pruning_config  # noqa: E402


def test_register_is_explicit_and_idempotent() -> None:
    from ir_prune_plugin.compat import apply_basicsr_shims
    apply_basicsr_shims()
    from basicsr.utils.registry import ARCH_REGISTRY, DATASET_REGISTRY, MODEL_REGISTRY
    register()
    assert register() == []  # second call adds nothing and does not assert like BasicSR would
    assert "IRPruneSIDUNet" in ARCH_REGISTRY and "IRPruneResUNet" in ARCH_REGISTRY
    assert "IRPruneDenoiseDataset" in DATASET_REGISTRY and "IRPruneSRDataset" in DATASET_REGISTRY
    assert "IRPruneModel" in MODEL_REGISTRY
    from basicsr.archs import build_network
    net = build_network({"type": "IRPruneSIDUNet", "width": 0.125})
    assert net.irprune_arch == {"type": "sid_unet", "width": 0.125}
    x = torch.rand(1, 3, 20, 28)
    assert net(x).shape == x.shape


def test_datasets_follow_basicsr_item_convention() -> None:
    register()
    from basicsr.data import build_dataset
    sr = build_dataset({"name": "t", "type": "IRPruneSRDataset", "phase": "train", "scale": 2,
                        "gt_size": 32, "length": 3})
    item = sr[1]
    assert set(item) == {"lq", "gt", "lq_path", "gt_path"}
    assert item["lq"].shape == (3, 16, 16) and item["gt"].shape == (3, 32, 32)
    assert 0 <= float(item["lq"].min()) and float(item["gt"].max()) <= 1
    dn = build_dataset({"name": "v", "type": "IRPruneDenoiseDataset", "phase": "val", "sigma": 25,
                        "val_size": 40})
    v = dn[0]
    assert v["lq"].shape == v["gt"].shape == (3, 40, 40)
    noise = (v["lq"] - v["gt"]).std().item() * 255
    assert 15 < noise < 30  # sigma=25 noise (clipped at the borders of [0, 1])
    with pytest.raises(ValueError, match="scale"):
        build_dataset({"name": "t", "type": "IRPruneSRDataset", "phase": "train", "gt_size": 32})


@pytest.mark.parametrize("block, key", [
    ({"method": "prune_all", "budget": 0.5}, "pruning.method"),
    ({"budget": 0.5}, "pruning.method"),
    ({"method": "sls"}, "pruning.budget"),
    ({"method": "mosp"}, "pruning.budget"),
    ({"method": "sls", "budget": 1.5}, "pruning.budget"),
    ({"method": "sls", "budget": 0.0}, "pruning.budget"),
    ({"method": "mosp", "budget": -0.5}, "pruning.budget"),
    ({"method": "mosp", "budget": 1.5}, "pruning.budget"),
    ({"method": "mosp", "budget": "12 parsecs"}, "pruning.budget"),
    ({"method": "sls", "budget": 0.25, "options": {"M": 8, "warp_speed": 9}}, "pruning.options.warp_speed"),
    ({"method": "sls", "budget": 0.25, "options": {"M": 1}}, "pruning.options.M"),
    ({"method": "sls", "budget": 0.01, "options": {"M": 8}}, "pruning.budget"),
    ({"method": "mosp", "budget": 0.5, "options": {"outer_stride": -3}}, "pruning.options"),
    ({"method": "mosp", "budget": 0.5, "start_iter": -1}, "pruning.start_iter"),
    ({"method": "mosp", "budget": 0.5, "input_size": [0, 8]}, "pruning.input_size"),
    ({"method": "mosp", "budget": 0.5, "budgett": 0.4}, "pruning.budgett"),
])
def test_bad_pruning_blocks_name_the_key(block: dict, key: str) -> None:
    with pytest.raises((ValueError, TypeError)) as info:
        parse_pruning_block(block)
    assert key in str(info.value)


def test_good_blocks_parse_to_frozen_config() -> None:
    cfg = parse_pruning_block({"method": "MOSP", "budget": "384MB", "start_iter": 5,
                               "options": {"memory_input_size": [1, 3, 64, 64]}})
    assert cfg.method == "mosp" and cfg.budget == "384MB" and cfg.start_iter == 5
    assert cfg.options["memory_input_size"] == (1, 3, 64, 64)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.budget = 0.1  # frozen
    sls = parse_pruning_block({"method": "sls", "budget": 0.25,
                               "options": {"M": 16, "schedule": {"start": 1.0, "end": 10.0}}})
    from ir_prune_plugin.integrations.basicsr.options import sls_options
    M, options = sls_options(sls)
    assert M == 16 and options.schedule(1.0) == pytest.approx(10.0)
    with pytest.raises(ValueError, match="pruning:"):
        pruning_config({"name": "x"})


def test_dist_shims_patch_basicsr_by_explicit_call_only() -> None:
    from ir_prune_plugin.compat import apply_basicsr_shims
    apply_basicsr_shims()
    import basicsr.utils.options as options
    from basicsr.models.base_model import BaseModel
    from ir_prune_plugin.compat import apply_dist_shims
    apply_dist_shims()
    first = (options.init_dist, BaseModel.model_to_device)
    apply_dist_shims()  # idempotent: no double wrapping
    assert (options.init_dist, BaseModel.model_to_device) == first
    assert options.init_dist.__module__ == "ir_prune_plugin.compat"
    assert BaseModel.model_to_device.__wrapped__ is not None


def test_shipped_yaml_configs_parse_and_name_known_types() -> None:
    from pathlib import Path

    import yaml
    from ir_prune_plugin.compat import apply_basicsr_shims
    apply_basicsr_shims()
    from basicsr.utils.options import ordered_yaml
    from basicsr.utils.registry import ARCH_REGISTRY, DATASET_REGISTRY, MODEL_REGISTRY

    from ir_prune_plugin.integrations.basicsr.archs import arch_name
    register()
    import basicsr.archs  # noqa: F401  (fills BasicSR's own registries)
    import basicsr.data  # noqa: F401
    import basicsr.models  # noqa: F401
    configs = sorted((Path(__file__).resolve().parents[1] / "basicsr_configs").glob("*/*.yml"))
    assert len(configs) >= 8
    methods = set()
    for path in configs:
        opt = yaml.load(path.read_text(), Loader=ordered_yaml()[0])
        assert opt["model_type"] in MODEL_REGISTRY and opt["network_g"]["type"] in ARCH_REGISTRY, path
        assert all(d["type"] in DATASET_REGISTRY for d in opt["datasets"].values()), path
        if opt["model_type"] == "IRPruneModel" and "pruning" in opt:  # not the *_test.yml files
            arch_name(opt["network_g"])
            cfg = pruning_config(opt)
            assert cfg.start_iter < int(opt["train"]["total_iter"]), path
            methods.add(cfg.method)
    assert methods == {"mosp", "sls"}
