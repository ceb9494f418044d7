"""The SLS study in quick mode (what ``irprune demo`` runs): rows, equal MACs, plot, cached pretraining."""
from __future__ import annotations

import json

import pytest

from ir_prune_plugin.studies.sls_study import QUICK, run_sls_study


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
