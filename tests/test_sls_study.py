"""The SLS studies: the demo's quick study, and the benchmark's sweep (budgets, plan ablation, adaptive curve)."""
from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch

from ir_prune_plugin.archs import build_arch
from ir_prune_plugin.data import SRDataset
from ir_prune_plugin.sparsity import FitOptions
from ir_prune_plugin.sparsity.nm_baselines import n_for_budget
from ir_prune_plugin.studies import sls_sweep
from ir_prune_plugin.studies.sls_study import QUICK, StudyConfig, prune_nm, run_sls_study
from ir_prune_plugin.studies.sls_sweep import SweepConfig, markdown_tables, run_seed, summarize
from ir_prune_plugin.tiling import TileOptions

TINY = StudyConfig(num_feat=16, num_block=1, M=16, patch=16, batch_size=2, pretrain_steps=2, finetune_steps=3,
                   search_steps=2, refresh_every=2, val_size=24, train_names=("astronaut",), sls_fixed=False)


@pytest.mark.slow
def test_quick_study(tmp_path):
    cache = tmp_path / "cache"
    res = run_sls_study(tmp_path / "out", quick=True, cache_dir=cache)
    rows = {r["method"]: r for r in res["rows"]}
    assert set(rows) == {"dense", "sls", "one-shot", "sr-ste", "l1-filter"}
    # N:M methods share the same prunable-MACs budget; the filter baseline is matched to SLS's total
    assert rows["sls"]["macs"] <= rows["one-shot"]["macs"] + 1e-6
    assert rows["one-shot"]["macs"] == rows["sr-ste"]["macs"] < rows["dense"]["macs"]
    assert rows["l1-filter"]["macs"] <= rows["sls"]["macs"]
    assert all(0 < r["psnr"] < 60 and 0 < r["ssim"] <= 1 for r in rows.values())
    assert rows["sls"]["plan"].startswith(f"N:{QUICK.M}")
    assert (tmp_path / "out" / "sls_psnr_vs_macs.png").stat().st_size > 1000
    saved = json.loads((tmp_path / "out" / "sls_study.json").read_text())
    assert [r["method"] for r in saved["rows"]] == [r["method"] for r in res["rows"]]
    assert len(list(cache.glob("edsr-*.pt"))) == 1  # pretrained weights cached by config


def test_uniform_plan_arm_is_srste():
    """The plan ablation's uniform arm: SLS's finetuning with a uniform plan is exactly SR-STE at that N.

    So ``sls-plan`` vs ``sr-ste`` differ only in the per-layer N (same masks rule, same decay).
    """
    torch.manual_seed(0)
    dense = build_arch("edsr", num_feat=16, num_block=1, upscale=2)
    x = torch.zeros(1, 3, 16, 16)
    data = SRDataset("train", scale=2, patch=16, seed=0, names=("astronaut",))
    fopts = FitOptions(lr=1e-3, batch_size=2, seed=0, progress=False)
    srste, _ = prune_nm("sr-ste", dense, x, 0.125, TINY, data, fopts)
    uniform = {n: n_for_budget(0.125, TINY.M) for n in ("body.0.conv1", "body.0.conv2", "conv_after_body",
                                                         "upsample.0")}
    plan_model, info = prune_nm("sls-plan", dense, x, 0.125, TINY, data, fopts, plan=uniform)
    assert info["plan_n"] == uniform
    a, b = srste.state_dict(), plan_model.state_dict()
    assert not torch.equal(a["body.0.conv1.weight"], dense.state_dict()["body.0.conv1.weight"])  # it trained
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=1e-6, msg=k)
    with pytest.raises(ValueError, match="plan is required"):
        prune_nm("sls-plan", dense, x, 0.125, TINY, data, fopts)
    with pytest.raises(ValueError, match="unknown N:M method"):
        prune_nm("magnitude", dense, x, 0.125, TINY, data, fopts)


def test_sweep_seed_ablation_adaptive_and_resume(tmp_path, monkeypatch):
    cfg = SweepConfig(study=TINY, budgets=(0.25, 0.125), adaptive_points=(0.5,), tiles=TileOptions(tile=8, overlap=2))
    sets = {"A": SRDataset("val", scale=2, val_size=24), "B": SRDataset("val", scale=2, val_size=16)}
    state = run_seed(cfg, tmp_path / "out", 0, sets, cache_dir=tmp_path / "cache")
    rows = {(r["budget"], r["method"]): r for r in state["rows"]}
    assert set(rows) == {(None, "dense")} | {(b, m) for b in cfg.budgets for m in cfg.methods}
    for b in cfg.budgets:
        by = {m: rows[(b, m)] for m in cfg.methods}
        assert all(r["prunable_ratio"] <= b + 1e-9 and 10 < r["psnr_A"] < 60 for r in by.values())
        # the ablation finetunes exactly the plan SLS searched; the baselines use the uniform N
        assert by["sls-plan"]["plan_n"] == by["sls"]["plan_n"]
        assert by["sls-plan"]["macs"] == by["sls"]["macs"]
        uniform = {n_for_budget(b, TINY.M)}
        assert set(by["sr-ste"]["plan_n"].values()) == uniform == set(by["one-shot"]["plan_n"].values())
        assert by["sls"]["macs"] <= by["sr-ste"]["macs"] < rows[(None, "dense")]["macs"]
    singles = [r for r in state["adaptive"] if r["method"] == "single"]
    mixes = [r for r in state["adaptive"] if r["method"] == "adaptive"]
    assert [r["sls_budget"] for r in singles] == sorted(cfg.budgets)
    assert singles[0]["macs_per_pixel"] < singles[1]["macs_per_pixel"]  # the cheaper budget costs less
    # the mix spends no more than its budget (nominal cost x tile overlap) and lies between the singles
    assert len(mixes) == 1
    overlap = singles[0]["macs_per_pixel"] / singles[0]["macs_per_pixel_nominal"]
    assert singles[0]["macs_per_pixel"] - 1e-6 <= mixes[0]["macs_per_pixel"]
    assert mixes[0]["macs_per_pixel"] <= mixes[0]["budget_per_pixel_nominal"] * overlap * (1 + 1e-6)
    assert (tmp_path / "out" / "models").is_dir() and len(list((tmp_path / "out" / "models").glob("*.pt"))) == 2

    # resume: a finished seed is read back, nothing is trained again
    def no_training(*a, **k):
        raise AssertionError("a finished (budget, method) was trained again")

    monkeypatch.setattr(sls_sweep, "prune_nm", no_training)
    assert run_seed(cfg, tmp_path / "out", 0, sets, cache_dir=tmp_path / "cache") == state
    with pytest.raises(ValueError, match="another configuration"):
        run_seed(replace(cfg, budgets=(0.25, 0.0625)), tmp_path / "out", 0, sets, cache_dir=tmp_path / "cache")

    summary = summarize([state])
    assert summary["sets"] == ["A", "B"] and summary["adaptive"]
    table = markdown_tables(summary)
    assert "sls-plan − sr-ste" in table and "adaptive mix" in table
    assert sls_sweep.plot_sweep(summary, tmp_path / "s.png").stat().st_size > 1000
    assert sls_sweep.plot_adaptive(summary, tmp_path / "a.png").stat().st_size > 1000


def _seed(seed: int, sls: float, srste: float) -> dict:
    row = {"macs": 1.0, "macs_ratio": 0.3, "prunable_ratio": 0.25}
    return {"seed": seed, "rows": [
        {"budget": None, "method": "dense", "psnr_S": 33.0, **row},
        {"budget": 0.25, "method": "sls", "psnr_S": sls, "projected": seed == 0, **row},
        {"budget": 0.25, "method": "sr-ste", "psnr_S": srste, **row}]}


def test_summarize_means_std_and_paired_margins():
    s = summarize([_seed(0, 32.0, 31.0), _seed(1, 31.0, 31.0), _seed(2, 30.0, 29.5)])
    sls = next(e for e in s["table"] if e["method"] == "sls")
    assert sls["psnr_S"] == pytest.approx((31.0, 1.0)) and sls["n"] == 3 and sls["projected"] == 1
    margin = next(m for m in s["margins"] if (m["a"], m["b"]) == ("sls", "sr-ste"))
    assert margin["delta_S"] == pytest.approx((0.5, 0.5))  # per-seed differences 1, 0, 0.5
    with pytest.raises(ValueError, match="no seed results"):
        summarize([])


@pytest.mark.parametrize("kwargs, match", [
    ({"budgets": (0.03,)}, "must be in"), ({"budgets": ()}, "empty"), ({"methods": ("sls", "magic")}, "subset"),
    ({"methods": ("sls-plan", "sr-ste")}, "add 'sls'"), ({"adaptive_points": (1.5,)}, "adaptive_points"),
    ({"budgets": (0.25,)}, "second budget")])
def test_sweep_config_rejects_bad_values(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SweepConfig(study=TINY, **kwargs)


def test_budget_at_one_over_m_warns_that_sls_has_no_choice():
    with pytest.warns(UserWarning, match="N=1"):
        SweepConfig(study=TINY, budgets=(0.25, 1 / 16))
