"""End to end: `irprune demo --quick` and `irprune report` through the real CLI entry point."""
import json

import pytest

from ir_prune_plugin.cli import main
from ir_prune_plugin.workloads.shipped import read_manifest


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    cache = tmp_path_factory.mktemp("cache")
    rc = main(["demo", "--quick", "--out", str(out), "--cache-dir", str(cache), "--no-progress"])
    assert rc == 0
    return out


def test_quick_demo_writes_a_complete_report(quick_run):
    res = json.loads((quick_run / "results.json").read_text())
    titles = [s["title"] for s in res["sections"]]
    assert titles[0] == "Dense denoising baseline"
    assert any(t.startswith("MOSP") for t in titles) and any(t.startswith("SLS") for t in titles)
    for section in res["sections"]:
        assert section["rows"], section["title"]
        for plot in section.get("plots", []) + section.get("images", []):
            assert (quick_run / plot["file"]).stat().st_size > 1000
    report = (quick_run / "report.md").read_text()
    assert "| method |" in report and "PSNR (dB)" in report
    assert "Scale: SID U-Net" in report and "The MOSP paper" in report


def test_quick_dense_net_is_a_real_denoiser(quick_run):
    res = json.loads((quick_run / "results.json").read_text())
    rows = res["sections"][0]["rows"]
    noisy = next(r["psnr"] for r in rows if r["method"].startswith("noisy input"))
    dense = next(r["psnr"] for r in rows if r["method"].endswith("(dense)"))
    assert dense >= noisy + 3.0   # shipped tiny weights: the quick tables compare real models
    shipped = [e for e in read_manifest().values() if e["preset"] == "quick" and e["role"] == "dense"]
    assert dense == pytest.approx(shipped[0]["psnr"], abs=0.01)   # the shipped weights, not retrained


def test_every_pruned_model_meets_its_budget(quick_run):
    res = json.loads((quick_run / "results.json").read_text())
    pruned = [r for s in res["sections"] for r in s["rows"] if r.get("budget") is not None and "psnr" in r]
    assert len(pruned) >= 6
    for row in pruned:
        assert row["budget_met"] is True, row
    mosp = next(s for s in res["sections"] if s["title"].startswith("MOSP"))
    dense_peak = next(r["peak_mb_est"] for r in mosp["rows"] if r["method"] == "dense")
    for row in mosp["rows"]:
        if row["method"].startswith("mosp"):
            assert row["peak_mb_est"] <= row["budget"] * dense_peak * 1.0001
            # the real (scheduled) measurement agrees with the estimate at the measured size
            assert row["peak_mb_measured_small"] == pytest.approx(row["peak_mb_est_small"], rel=0.02)


def test_combined_model_meets_both_budgets_and_reloads(quick_run):
    from ir_prune_plugin import check_nm, load_pruned

    res = json.loads((quick_run / "results.json").read_text())
    rows = [r for s in res["sections"] for r in s["rows"] if r["method"].startswith("MOSP+SLS")]
    assert len(rows) == 1
    row = rows[0]
    cfg = res["config"]
    assert row["memory_ratio"] <= cfg["combined_memory_budget"] + 1e-6
    assert row["macs_ratio"] <= cfg["combined_macs_budget"] + 1e-6
    assert row["reload_identical"] is True and row["nm_layers"] > 0
    model = load_pruned(quick_run / row["file"])
    assert check_nm(model).plan  # the N:M plan survived the round trip
    assert any(type(m).__name__ == "Compactor" for m in model.modules())


def test_report_reproduces_tables_byte_for_byte(quick_run, capsys):
    before = (quick_run / "report.md").read_bytes()
    (quick_run / "report.md").unlink()
    assert main(["report", str(quick_run)]) == 0
    assert (quick_run / "report.md").read_bytes() == before


def test_report_on_a_folder_without_results_is_a_clear_error(tmp_path, capsys):
    assert main(["report", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "results.json" in err and "sweep_results.json" in err and "BasicSR" in err


def test_default_report_quotes_the_benchmark_beside_its_one_seed():
    from ir_prune_plugin.demo.presets import DemoConfig
    from ir_prune_plugin.demo.run import BENCHMARK_50, claims_text

    rows = [{"method": "dense", "budget": None, "psnr": 29.7}, {"method": "mosp", "budget": 0.5, "psnr": 29.5},
            {"method": "mosp-no-compactor", "budget": 0.5, "psnr": 29.2},
            {"method": "uniform-width", "budget": 0.5, "psnr": 28.6}]
    text = claims_text(DemoConfig(), rows)
    assert "MOSP -0.20 dB vs dense, +0.90 dB vs the best uniform baseline" in text and BENCHMARK_50 in text
    assert BENCHMARK_50 not in claims_text(DemoConfig.preset_named("quick"), rows)


def test_the_benchmark_figures_the_demo_quotes_are_those_of_the_committed_benchmark_run():
    # BENCHMARK_50 is text; recompute each of its figures from the seed files of the run it names
    from pathlib import Path

    from conftest import load_benchmark

    from ir_prune_plugin.demo.run import BENCHMARK_50

    folder = Path(__file__).resolve().parents[1] / "benchmarks" / "results" / "mosp" / "finetune1200-v5"
    runs = [json.loads(p.read_text()) for p in sorted(folder.glob("seed*.json"))]
    assert [r["seed"] for r in runs] == [0, 1, 2]
    assert all(r["config"]["uniform_restarts"] == 3 and r["config"]["finetune_steps"] == 1200 for r in runs)
    got = {(m["margin"], m["budget"]): m for m in load_benchmark("mosp").margins(runs, ["psnr", "psnr_CBSD68"])}

    def quoted(mean, std):
        return f"{mean:+.2f} +- {std:.2f}"

    for name, col in (("MOSP − dense", "psnr"), ("MOSP − dense finetuned the same steps", "psnr"),
                      ("MOSP − best uniform", "psnr"), ("MOSP − best uniform", "psnr_CBSD68"),
                      ("compactors on − off", "psnr")):
        m = got[(name, 0.5)]
        assert quoted(m[col], m[col + "_std"]) in BENCHMARK_50, name
    vs_dense = {}
    for method in ("uniform-width", "uniform-slice"):
        diffs = []
        for run in runs:
            rows = {(r["method"], r["budget"]): r["psnr"] for r in run["rows"] if "psnr" in r}
            diffs.append(rows[(method, 0.5)] - rows[("dense", None)])
        mean = sum(diffs) / len(diffs)
        vs_dense[method] = quoted(mean, (sum((d - mean) ** 2 for d in diffs) / (len(diffs) - 1)) ** 0.5)
    assert (f"uniform width {vs_dense['uniform-width']} and uniform slice {vs_dense['uniform-slice']} dB vs "
            "dense") in BENCHMARK_50
    words = {1: "1 of 3", 2: "2 of 3", 3: "all 3"}
    leads = {}
    for col in ("psnr", "psnr_CBSD68"):   # seeds where MOSP leads the best uniform baseline by >= 0.25 dB
        for run in runs:
            rows = {(r["method"], r["budget"]): r[col] for r in run["rows"] if col in r}
            best = max(rows[("uniform-width", 0.5)], rows[("uniform-slice", 0.5)])
            leads[col] = leads.get(col, 0) + (rows[("mosp", 0.5)] - best >= 0.25)
    assert (f"a lead >= 0.25 dB in {words[leads['psnr']]} seeds on the two held-out photos, in "
            f"{words[leads['psnr_CBSD68']]} on CBSD68") in BENCHMARK_50
