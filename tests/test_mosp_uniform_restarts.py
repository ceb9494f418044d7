"""benchmarks/mosp_uniform_restarts.py: every restart scored, the kept one marked, missing ones never trained."""
from dataclasses import replace

import pytest
from conftest import load_benchmark


@pytest.fixture(scope="module")
def restarts():
    return load_benchmark("mosp_uniform_restarts")


def test_restarts_are_scored_and_the_kept_one_is_the_lowest_selection_loss(restarts, tmp_path):
    from ir_prune_plugin.studies.mosp_study import QUICK, uniform_unet

    cfg = replace(QUICK, pretrain_steps=4, finetune_steps=2, uniform_restarts=2)
    kept_net, _ = uniform_unet(cfg, 0.5, tmp_path, seed=1, progress=False, shipped=False)
    files = sorted(tmp_path.iterdir())
    got = restarts.score_restarts(cfg, tmp_path, 1, 0.5, extra={})
    assert [x["seed"] for x in got["restarts"]] == [1, 1001]
    losses = [x["selection_l1"] for x in got["restarts"]]
    assert got["kept"] == losses.index(min(losses))
    assert all(15.0 < x["psnr"] < 40.0 for x in got["restarts"])
    missing = restarts.score_restarts(cfg, tmp_path, 2, 0.5, extra={})   # seed 2 was never trained
    assert missing["seed"] == 2 and len(missing["missing"]) == 2
    assert sorted(tmp_path.iterdir()) == files   # nothing trained or cached here
    second = {**got, "seed": 3, "restarts": list(reversed(got["restarts"])), "kept": 1 - got["kept"]}
    summ = restarts.summary([got, second, missing], ["psnr"])["0.5"]
    assert summ["seeds"] == 2
    kept_psnr = got["restarts"][got["kept"]]["psnr"]
    assert summ["psnr"]["kept"]["mean"] == pytest.approx(kept_psnr)
    assert summ["psnr"]["one_training"]["mean"] == pytest.approx(
        (got["restarts"][0]["psnr"] + got["restarts"][1]["psnr"]) / 2)
    md = restarts.markdown([got, missing], ["psnr"])
    assert md.count("(kept)") == 1 and "| 0.5 | 2 | not cached:" in md
    assert "| 0.5 | held-out photos |" in md


def test_fewer_than_two_restarts_is_refused_before_anything_runs(restarts, tmp_path, capsys):
    with pytest.raises(SystemExit):
        restarts.main(["--cache-dir", str(tmp_path), "--out", str(tmp_path / "o"), "--restarts", "1"])
    assert "--restarts must be >= 2 to compare restarts, got 1" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
