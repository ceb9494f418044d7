"""`irprune prune` end to end: the saved model reloads, meets its budget and keeps N:M exactly."""
import json

import torch

from ir_prune_plugin import check_nm, estimate_peak_memory, load_pruned
from ir_prune_plugin.archs import build_arch
from ir_prune_plugin.cli import main


def _report(capsys) -> dict:
    out = capsys.readouterr().out
    return json.loads(out[out.index("{"):])


def test_prune_mosp_meets_the_memory_budget(tmp_path, capsys):
    out = tmp_path / "unet.pt"
    rc = main(["prune", "--method", "mosp", "--arch", "sid_unet", "--arch-args", '{"width": 0.25}',
               "--budget", "0.7", "--memory-size", "128x256", "--steps", "4", "--out", str(out), "--no-progress"])
    assert rc == 0
    rep = _report(capsys)
    assert rep["peak_after_mb"] <= rep["budget_mb"] < rep["peak_before_mb"]
    model = load_pruned(out)
    dense = build_arch("sid_unet", width=0.25)
    peak = estimate_peak_memory(model, (1, 3, 128, 256)).peak_bytes
    assert peak <= 0.7 * estimate_peak_memory(dense, (1, 3, 128, 256)).peak_bytes
    assert model(torch.rand(1, 3, 20, 30)).shape == (1, 3, 20, 30)


def test_prune_sls_keeps_n_m_and_the_macs_budget(tmp_path, capsys):
    out = tmp_path / "edsr.pt"
    rc = main(["prune", "--method", "sls", "--arch", "edsr", "--arch-args",
               '{"num_feat": 16, "num_block": 1, "upscale": 2}', "--budget", "0.3", "--M", "8",
               "--steps", "6", "--out", str(out), "--no-progress"])
    assert rc == 0
    rep = _report(capsys)
    assert rep["kept_macs_ratio"] <= 0.3
    assert rep["params_after_nm_effective"] < rep["params_after"] == rep["params_before"]
    model = load_pruned(out)
    plan = check_nm(model).plan
    assert plan and all(m == 8 and 1 <= n <= 8 for n, m in plan.values())


def test_prune_rejects_a_bad_budget_before_anything_is_written(tmp_path, capsys):
    out = tmp_path / "x.pt"
    rc = main(["prune", "--method", "sls", "--arch", "edsr", "--arch-args", '{"num_feat": 8, "num_block": 1}',
               "--budget", "1.5", "--out", str(out), "--no-progress"])
    assert rc == 2 and not out.exists()
    assert "--budget" in capsys.readouterr().err
