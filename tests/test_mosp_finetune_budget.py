"""benchmarks/mosp_finetune_budget.py: paired margins vs dense across runs of different finetune budgets."""
import json

import pytest
from conftest import load_benchmark


@pytest.fixture(scope="module")
def fb():
    return load_benchmark("mosp_finetune_budget")


def _run(seed, steps, dense, mosp, slice_, **config):
    return {"seed": seed, "config": {"finetune_steps": steps, "pretrain_lr": 5e-4, "budgets": [0.5], **config},
            "rows": [{"method": "dense", "budget": None, "psnr": dense},
                     {"method": "mosp", "budget": 0.5, "psnr": mosp},
                     {"method": "uniform-slice", "budget": 0.5, "psnr": slice_},
                     {"method": "global-magnitude", "budget": 0.5, "unreachable": "too tight"}]}


def _write(folder, runs):
    for run in runs:
        (folder / f"seed{run['seed']}").mkdir(parents=True)
        (folder / f"seed{run['seed']}" / "mosp_study.json").write_text(json.dumps(run))


def test_margins_are_paired_per_seed_and_laid_out_by_finetune_budget(fb, tmp_path):
    short, long = tmp_path / "ft300", tmp_path / "ft1200"
    _write(short, [_run(0, 300, 30.0, 29.0, 28.0), _run(1, 300, 29.0, 28.8, 27.6)])
    _write(long, [_run(0, 1200, 30.0, 29.9, 29.5), _run(1, 1200, 29.0, 29.1, 28.5)])
    assert fb.main([str(long), str(short), "--out", str(tmp_path / "out")]) == 0
    md = (tmp_path / "out" / "finetune_budget.md").read_text()
    assert "| method − dense (dB) | 300 steps | 1200 steps |" in md
    assert "| mosp | -0.60 ± 0.57 (2) | +0.00 ± 0.14 (2) |" in md      # (-1.0, -0.2) and (-0.1, +0.1)
    assert "| uniform-slice | -1.70 ± 0.42 (2) | -0.50 ± 0.00 (2) |" in md
    assert "| global-magnitude | – | – |" in md                          # unreachable: no margin
    assert (tmp_path / "out" / "finetune_budget.png").stat().st_size > 0


def test_runs_of_another_recipe_or_a_repeated_budget_are_refused(fb, tmp_path):
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    _write(a, [_run(0, 300, 30.0, 29.0, 28.0)])
    _write(b, [_run(0, 600, 30.0, 29.5, 28.5, pretrain_lr=1e-3)])
    _write(c, [_run(0, 300, 30.0, 29.1, 28.1)])
    with pytest.raises(SystemExit, match="pretrain_lr"):
        fb.main([str(a), str(b), "--out", str(tmp_path / "out")])
    assert fb.recipe_mismatch({"pretrain_lr": 5e-4}, {"pretrain_lr": 5e-4, "uniform_lr": 5e-4}) == {}
    assert fb.recipe_mismatch({"pretrain_lr": 5e-4}, {"pretrain_lr": 5e-4, "uniform_lr": 1e-3}) == \
        {"uniform_lr": (5e-4, 1e-3)}    # older runs trained the uniform-width net at the pretraining rate
    with pytest.raises(SystemExit, match="a second run with 300 finetune steps"):
        fb.main([str(a), str(c), "--out", str(tmp_path / "out")])
    assert not (tmp_path / "out" / "finetune_budget.md").exists()    # refused before writing
