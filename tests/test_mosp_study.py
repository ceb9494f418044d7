"""The quick MOSP study (used by ``irprune demo``): every method at the same memory, files written."""
import json

import pytest

from ir_prune_plugin.studies.mosp_study import run_mosp_study


def test_quick_study_rows_meet_the_budget(tmp_path):
    res = run_mosp_study(tmp_path / "out", quick=True, cache_dir=tmp_path / "cache", progress=False)
    rows = res["rows"]
    methods = {r["method"] for r in rows}
    assert {"dense", "mosp", "mosp-no-compactor", "global-magnitude", "uniform-width"} <= methods
    dense = next(r for r in rows if r["method"] == "dense")
    assert dense["peak_mb_est"] == pytest.approx(res["dense_peak_mb"])
    for r in rows:
        if r["method"] == "dense" or "unreachable" in r:
            continue
        assert r["peak_mb_est"] <= r["budget"] * res["dense_peak_mb"] + 1e-6, r["method"]
        assert r["peak_mb_measured_small"] == pytest.approx(r["peak_mb_est_small"], rel=0.02)
        assert r["params"] < dense["params"] and 5 < r["psnr"] < 60
    assert (tmp_path / "out" / "mosp_psnr_vs_peak.png").stat().st_size > 1000
    saved = json.loads((tmp_path / "out" / "mosp_study.json").read_text())
    assert [r["method"] for r in saved["rows"]] == [r["method"] for r in rows]
    assert list((tmp_path / "cache").glob("sid_unet-*.pt")), "pretrained weights are cached by config"
