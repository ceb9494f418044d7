"""A test YAML ships beside every BasicSR training YAML; the demo ones run through BasicSR's test entry."""
from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import pytest
import yaml

if importlib.util.find_spec("basicsr") is None:
    pytest.skip("basicsr is not installed (pip install ir-prune-plugin[basicsr])", allow_module_level=True)

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "basicsr_configs"
TRAINING = sorted(p for p in CONFIGS.glob("*/*.yml") if not p.stem.endswith("_test"))


def test_every_training_yaml_has_a_matching_test_yaml():
    assert len(TRAINING) >= 8
    from ir_prune_plugin.integrations.basicsr import register
    register()
    from basicsr.utils.registry import ARCH_REGISTRY, DATASET_REGISTRY, MODEL_REGISTRY
    for train in TRAINING:
        test_path = train.with_name(f"{train.stem}_test.yml")
        assert test_path.is_file(), f"no test YAML beside {train}"
        opt, test = yaml.safe_load(train.read_text()), yaml.safe_load(test_path.read_text())
        assert test["name"] == f"{opt['name']}_test" and test["model_type"] == opt["model_type"]
        assert test["network_g"] == opt["network_g"] and test.get("scale") == opt.get("scale")
        assert test["path"]["pretrain_network_g"] == f"experiments/{opt['name']}/models/net_g_latest.pth"
        assert "suffix" in test["val"] and test["val"]["suffix"] is None  # BasicSR's test needs the key
        assert test["val"]["metrics"] == opt["val"]["metrics"]
        assert list(test["datasets"]) == ["test_1"] and test["datasets"]["test_1"] == opt["datasets"]["val"]
        assert test["datasets"]["test_1"]["type"] in DATASET_REGISTRY
        assert test["network_g"]["type"] in ARCH_REGISTRY and test["model_type"] in MODEL_REGISTRY
        assert f"-opt basicsr_configs/{train.parent.name}/{test_path.name}" in test_path.read_text()


@pytest.mark.slow
@pytest.mark.parametrize("config", ["mosp_sidunet_denoise", "sls_edsr_x2"])
def test_demo_test_yaml_runs_through_basicsrs_test_entry_and_report(config, tmp_path, capsys):
    sys.path.insert(0, str(Path(__file__).parent))
    from test_basicsr_pipeline import MOSP_FAST, SLS_FAST, _log_text, _psnrs, _run, _yaml

    from ir_prune_plugin.cli import main

    fast = {**(MOSP_FAST if config.startswith("mosp") else SLS_FAST), "logger.use_tb_logger": False}
    fast.pop("datasets.val.val_size")  # validate on the data the shipped test YAML tests on
    train = _yaml(CONFIGS / "demo" / f"{config}.yml", tmp_path / "train.yml", fast)
    _run([sys.executable, "-m", "ir_prune_plugin.train", "-opt", str(train)], tmp_path, timeout=1500)
    name = yaml.safe_load(train.read_text())["name"]
    exp = tmp_path / "experiments" / name
    log = _log_text(exp, "train")
    trained = _psnrs(log)
    if config.startswith("mosp"):  # MOSP's progress reaches BasicSR's log file, not only the console
        assert re.search(r"\[MOSP\] outer step 1: peak [\d.]+ MiB -> budget [\d.]+ MiB", log)
    else:  # N:M-effective figures with the dense ones beside them
        eff, dense = (float(re.findall(rf"{k}: ([\d.e+-]+)", log)[-1]) for k in ("macs_g", "macs_g_dense"))
        assert 0 < eff < dense
    shipped = CONFIGS / "demo" / f"{config}_test.yml"
    _run([sys.executable, "-m", "ir_prune_plugin.integrations.basicsr.entry", "-opt", str(shipped)], tmp_path, timeout=900)
    tested = _psnrs(_log_text(tmp_path / "results" / f"{name}_test", "test"))
    assert trained and tested and abs(tested[-1] - trained[-1]) < 1e-3  # same net, same data, reloaded
    assert main(["report", str(exp)]) == 0
    report = (exp / "report.md").read_text()
    assert "## Validation" in report and re.search(r"\| \d+ \| [\d.]+", report)
    assert ("peak_mb" in report) if config.startswith("mosp") else ("macs_g_dense" in report)
    assert (exp / "training.png").stat().st_size > 0
