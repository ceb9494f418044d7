"""benchmarks/mosp.py: mean +- std over seeds per (method, budget), and the standard test sets."""
import json

import pytest
from conftest import load_benchmark


@pytest.fixture(scope="module")
def bench():
    return load_benchmark("mosp")


def _run(seed, mosp, uniform):
    return {"seed": seed, "config": {}, "rows": [
        {"method": "dense", "budget": None, "psnr": 30.0, "peak_mb_est": 100.0, "macs_g": 10.0, "params": 9},
        {"method": "mosp", "budget": 0.5, "psnr": mosp, "psnr_Kodak24": mosp - 1, "peak_mb_est": 50.0,
         "macs_g": 8.0, "params": 7, "full_res_channels": 12},
        {"method": "uniform-width", "budget": 0.5, "psnr": uniform, "peak_mb_est": 49.0, "macs_g": 3.0,
         "params": 3, "full_res_channels": 9},
        {"method": "global-magnitude", "budget": 0.25, "unreachable": "too tight"}]}


def test_aggregate_gives_mean_and_sample_std_per_method_and_budget(bench):
    summary = bench.aggregate([_run(0, 29.0, 28.0), _run(1, 29.5, 27.0), _run(2, 30.0, 29.0)],
                              ["psnr", "psnr_Kodak24"])
    by = {(e["method"], e["budget"]): e for e in summary}
    assert by[("mosp", 0.5)]["psnr"] == pytest.approx(29.5)
    assert by[("mosp", 0.5)]["psnr_std"] == pytest.approx(0.5)        # ddof=1
    assert by[("mosp", 0.5)]["psnr_Kodak24"] == pytest.approx(28.5)
    assert by[("uniform-width", 0.5)]["psnr_std"] == pytest.approx(1.0)
    assert by[("dense", None)]["psnr_std"] == 0.0 and by[("dense", None)]["n"] == 3
    assert "unreachable" in by[("global-magnitude", 0.25)]
    md = bench.markdown(summary, ["psnr", "psnr_Kodak24"], "python benchmarks/mosp.py", 3)
    assert "| mosp | 0.5 | 29.50 ± 0.50 | 28.50 ± 0.50 |" in md
    assert "| global-magnitude | 0.25 | cannot reach the budget |" in md


def test_a_budget_reached_in_some_seeds_only_says_over_how_many_the_mean_is(bench):
    runs = [_run(0, 29.0, 28.0), _run(1, 29.5, 27.0)]
    runs[1]["rows"][-1] = {"method": "global-magnitude", "budget": 0.25, "psnr": 27.0, "peak_mb_est": 25.0,
                           "macs_g": 2.0, "params": 2}
    summary = bench.aggregate(runs, ["psnr"])
    entry = next(e for e in summary if e["method"] == "global-magnitude")
    assert entry["unreachable_n"] == 1 and entry["psnr"] == 27.0
    md = bench.markdown(summary, ["psnr"], "python benchmarks/mosp.py", 2)
    assert "| global-magnitude | 0.25 | 27.00 ± 0.00 (1 of 2 seeds reach the budget) |" in md


def test_margins_are_paired_per_seed_against_the_best_uniform_baseline(bench):
    runs = [_run(0, 29.0, 28.0), _run(1, 29.5, 27.0), _run(2, 30.0, 29.0)]
    runs[0]["rows"].append({"method": "uniform-slice", "budget": 0.5, "psnr": 28.6})   # seed 0's best uniform
    by = {(e["margin"], e["budget"]): e for e in bench.margins(runs, ["psnr"])}
    vs_uniform = by[("MOSP − best uniform", 0.5)]
    assert vs_uniform["n"] == 3
    assert vs_uniform["psnr"] == pytest.approx((0.4 + 2.5 + 1.0) / 3)
    assert by[("MOSP − dense", 0.5)]["psnr"] == pytest.approx(-0.5)
    assert ("compactors on − off", 0.5) not in by      # no such rows: no margin
    md = bench.margins_markdown(list(by.values()), ["psnr"])
    assert "| MOSP − dense | 0.5 | -0.50 ± 0.50 | 3 |" in md


def test_aggregate_mode_summarises_seed_folders(bench, tmp_path):
    for seed, (m, u) in enumerate([(29.0, 28.0), (30.0, 28.0)]):
        (tmp_path / f"seed{seed}").mkdir()
        (tmp_path / f"seed{seed}" / "mosp_study.json").write_text(json.dumps(_run(seed, m, u)))
    assert bench.main(["--out", str(tmp_path), "--aggregate"]) == 0
    report = json.loads((tmp_path / "mosp_benchmark.json").read_text())
    assert report["seeds"] == [0, 1]
    assert "29.50 ± 0.71" in (tmp_path / "mosp_benchmark.md").read_text()
    assert "| MOSP − best uniform | 0.5 | +1.50 ± 0.71 | - | 2 |" in (tmp_path / "mosp_benchmark.md").read_text()
    assert (tmp_path / "mosp_benchmark.png").stat().st_size > 1000


def test_budgets_run_as_separate_processes_merge_per_seed(bench, tmp_path):
    for seed, budget, mosp in [(0, 0.5, 29.0), (0, 0.43, 28.5), (1, 0.5, 29.4), (1, 0.43, 28.7)]:
        run = _run(seed, mosp, 27.0)
        for row in run["rows"]:
            row["budget"] = budget if row["budget"] is not None else None
        run["rows"].insert(1, {"method": "dense-finetuned", "budget": None, "psnr": 29.2 + seed,
                               "peak_mb_est": 100.0, "macs_g": 10.0, "params": 9})
        folder = tmp_path / ("seed%d" % seed if budget == 0.5 else "parts/b%g/seed%d" % (budget, seed))
        folder.mkdir(parents=True)
        (folder / "mosp_study.json").write_text(json.dumps(run))
    assert bench.main(["--out", str(tmp_path), "--aggregate"]) == 0
    report = json.loads((tmp_path / "mosp_benchmark.json").read_text())
    assert report["seeds"] == [0, 1]
    per_seed = [[(r["method"], r["budget"]) for r in run["rows"]] for run in report["runs"]]
    assert all(keys.count(("dense", None)) == 1 and ("mosp", 0.43) in keys and ("mosp", 0.5) in keys
               for keys in per_seed)
    by = {(e["margin"], e["budget"]): e for e in report["margins"]}
    # against the dense net given the same finetune steps: seed 0 29.0 - 29.2, seed 1 29.4 - 30.2
    assert by[("MOSP − dense finetuned the same steps", 0.5)]["psnr"] == pytest.approx((-0.2 - 0.8) / 2)
    assert by[("MOSP − dense finetuned the same steps", 0.43)]["psnr"] == pytest.approx((-0.7 - 1.5) / 2)
    assert by[("MOSP − dense", 0.43)]["n"] == 2


def test_standard_test_sets_load_as_noisy_pairs(bench, shared_data):
    data = bench.FolderDenoise(shared_data / "Kodak24", 25.0, crop=64, limit=3)
    assert len(data) == 3
    item = data[0]
    assert item["lq"].shape == item["gt"].shape == (3, 64, 64)
    noise = (item["lq"] - item["gt"]).std().item() * 255
    assert 20 < noise < 30   # sigma = 25 on the 0-255 scale
    sets = bench.standard_test_sets(shared_data, 25.0, crop=64, limit=2)   # what every MOSP script scores
    assert sorted(sets) == ["CBSD68", "Kodak24"] and all(len(d) == 2 for d in sets.values())
    assert bench.standard_test_sets(shared_data / "nowhere", 25.0, crop=64, limit=2) == {}


def test_a_collapsed_training_is_counted_not_averaged(bench):
    """A row under the noisy input (a failed training) is named in the table and left out of the
    means and of the paired margins instead of dragging them by 10 dB."""
    runs = []
    for seed, ft in enumerate([30.4, 20.1, 30.0]):
        run = _run(seed, 30.2, 29.0)
        run["noisy_psnr"] = 20.2
        run["rows"].insert(1, {"method": "dense-finetuned", "budget": None, "psnr": ft, "peak_mb_est": 100.0,
                               "macs_g": 10.0, "params": 9})
        runs.append(run)
    by = {(e["method"], e["budget"]): e for e in bench.aggregate(runs, ["psnr"])}
    assert by[("dense-finetuned", None)]["psnr"] == pytest.approx(30.2)
    assert by[("dense-finetuned", None)]["collapsed_n"] == 1 and by[("dense-finetuned", None)]["n"] == 3
    assert "collapsed_n" not in by[("mosp", 0.5)]
    md = bench.markdown(list(by.values()), ["psnr"], "cmd", 3)
    assert "| dense-finetuned | - | 30.20 ± 0.28 (1 of 3 seeds collapsed under the noisy input, not averaged) |" in md
    margin = {(e["margin"], e["budget"]): e for e in bench.margins(runs, ["psnr"])}
    assert margin[("MOSP − dense finetuned the same steps", 0.5)]["n"] == 2
    assert margin[("MOSP − dense finetuned the same steps", 0.5)]["psnr"] == pytest.approx((-0.2 + 0.2) / 2)
    # without noisy_psnr, the noise level of the run's sigma decides (25: 20.17 dB)
    old = {"seed": 0, "config": {"sigma": 25.0}, "rows": [{"method": "dense", "budget": None, "psnr": 20.1}]}
    assert bench.collapsed(old, old["rows"][0])
    assert not bench.collapsed({**old, "config": {}}, old["rows"][0])
