"""The quick MOSP study (used by ``irprune demo``): every method at the same memory, files written."""
import json

import pytest
import torch

from ir_prune_plugin.studies.mosp_study import run_mosp_study
from ir_prune_plugin.workloads.shipped import read_manifest


def test_quick_study_rows_meet_the_budget(tmp_path):
    res = run_mosp_study(tmp_path / "out", quick=True, cache_dir=tmp_path / "cache", progress=False,
                         compactor_ablation=True)
    rows = res["rows"]
    methods = {r["method"] for r in rows}
    assert {"dense", "mosp", "mosp-compactor-no-prefinetune", "mosp-no-compactor", "global-magnitude",
            "uniform-slice", "uniform-width"} <= methods
    cfg = res["config"]
    by = {r["method"]: r for r in rows}
    # the paper's protocol: compactors finetuned before pruning, inside the same finetune budget
    assert by["mosp"]["prefinetune_steps"] == cfg["compactor_finetune_steps"] > 0
    assert by["mosp-compactor-no-prefinetune"]["prefinetune_steps"] == 0
    assert {r["finetune_steps"] for r in rows if r["method"] not in ("dense", "uniform-width")} \
        == {cfg["finetune_steps"]}
    assert by["uniform-width"]["finetune_steps"] == cfg["pretrain_steps"] + cfg["finetune_steps"]
    assert cfg["min_channels"] >= 2   # every method keeps the floor at full resolution (MOSP, magnitude cap)
    assert all(r["full_res_channels"] >= cfg["min_channels"] for r in rows
               if r["method"] != "dense" and "unreachable" not in r)
    dense = next(r for r in rows if r["method"] == "dense")
    assert dense["peak_mb_est"] == pytest.approx(res["dense_peak_mb"])
    for r in rows:
        if r["method"] == "dense" or "unreachable" in r:
            continue
        assert r["peak_mb_est"] <= r["budget"] * res["dense_peak_mb"] + 1e-6, r["method"]
        assert r["peak_mb_measured_small"] == pytest.approx(r["peak_mb_est_small"], rel=0.02)
        # MOSP cuts memory, not parameters: the compactors' 1x1 convs may outweigh what it removed
        with_compactors = r["method"] in ("mosp", "mosp-compactor-no-prefinetune")
        assert r["params"] < dense["params"] * (1.01 if with_compactors else 1.0) and 5 < r["psnr"] < 60
    assert (tmp_path / "out" / "mosp_psnr_vs_peak.png").stat().st_size > 1000
    saved = json.loads((tmp_path / "out" / "mosp_study.json").read_text())
    assert [r["method"] for r in saved["rows"]] == [r["method"] for r in rows]
    shipped = [e for e in read_manifest().values() if e["preset"] == "quick" and e["role"] == "dense"]
    assert dense["psnr"] == pytest.approx(shipped[0]["psnr"], abs=0.01), "the shipped quick weights were used"


def test_training_hook_sees_every_step_of_a_fresh_training_only(tmp_path):
    from dataclasses import replace

    from ir_prune_plugin.studies.mosp_study import QUICK, dense_unet

    cfg = replace(QUICK, pretrain_steps=3)
    seen = []
    model = dense_unet(cfg, tmp_path, seed=4, progress=False, shipped=False,
                       after_step=lambda m, i: seen.append((m, i)))
    assert [i for _, i in seen] == [0, 1, 2] and all(m is model for m, _ in seen)
    seen.clear()   # the second call loads the cached weights: nothing trains, the hook never runs
    again = dense_unet(cfg, tmp_path, seed=4, progress=False, shipped=False, after_step=lambda m, i: seen.append(i))
    assert seen == [] and all(torch.equal(a, b) for a, b in zip(model.state_dict().values(),
                                                                  again.state_dict().values()))


def test_uniform_width_baseline_keeps_the_restart_with_the_lowest_training_photo_loss(tmp_path):
    from dataclasses import replace

    from ir_prune_plugin.data import DenoiseDataset
    from ir_prune_plugin.studies.mosp_study import (QUICK, denoise_key, selection_loss, selection_set,
                                                    uniform_candidates, uniform_key, uniform_training,
                                                    uniform_unet)

    cfg = replace(QUICK, pretrain_steps=6, finetune_steps=2, uniform_restarts=3)
    model, factor = uniform_unet(cfg, 0.5, tmp_path, seed=3, progress=False, shipped=False)
    files = sorted(tmp_path.iterdir())
    assert len(files) == 4   # three trainings, each under its own key, and the one kept
    cands = uniform_candidates(cfg, 0.5, tmp_path, seed=3, progress=False, shipped=False)
    assert sorted(tmp_path.iterdir()) == files   # loaded from the cache, nothing retrained
    assert [c.seed for c in cands] == [3, 1003, 2003]
    assert len({round(c.loss, 9) for c in cands}) == 3   # three different trainings
    best = min(cands, key=lambda c: c.loss)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), best.model.state_dict().values()))
    assert selection_loss(cfg, 3)(model) == pytest.approx(best.loss)
    # ranked on the training photos, never on the held-out ones every table scores
    sel = selection_set(cfg, 3)
    assert sel.split == "train" and not set(sel.names) & set(DenoiseDataset("val").names)
    assert len(sel) == cfg.selection_crops and sel[0]["gt"].shape[-1] == cfg.val_size
    # restart 0 is the one-training net of the same seed, under the key it always had
    one = replace(cfg, uniform_restarts=1)
    assert uniform_key(one, 3) == denoise_key(uniform_training(cfg), 3, 8)
    assert uniform_key(cfg, 3) == {**uniform_key(one, 3), "restarts": 3, "stride": 1000,
                                   "select": f"l1-train-crops-{cfg.selection_crops}x{cfg.val_size}"}
    single, _ = uniform_unet(one, 0.5, tmp_path, seed=3, progress=False, shipped=False)
    assert sorted(tmp_path.iterdir()) == files
    assert all(torch.equal(a, b) for a, b in zip(single.state_dict().values(), cands[0].model.state_dict().values()))
    with pytest.raises(ValueError, match="uniform_restarts=1"):   # a learning curve follows one training
        uniform_unet(cfg, 0.5, tmp_path, seed=3, progress=False, after_step=lambda m, i: None)
    for field, bad in (("uniform_restarts", 0), ("uniform_restarts", 2.0), ("selection_crops", 0)):
        with pytest.raises(ValueError, match=f"{field} must be an int >= 1, got {bad}"):   # the config refuses it
            uniform_unet(replace(cfg, **{field: bad}), 0.5, tmp_path, seed=3, progress=False)
    assert sorted(tmp_path.iterdir()) == files   # refused before anything trained


def test_dense_finetuned_control_is_the_dense_net_given_the_pruned_models_finetune(tmp_path):
    res = run_mosp_study(tmp_path / "out", quick=True, cache_dir=tmp_path / "cache", progress=False,
                         budgets=(), dense_finetune=True)
    rows = {r["method"]: r for r in res["rows"]}
    assert set(rows) == {"dense", "dense-finetuned"}   # no budget: no pruned model
    assert rows["dense-finetuned"]["finetune_steps"] == res["config"]["finetune_steps"] > 0
    assert rows["dense-finetuned"]["psnr"] != rows["dense"]["psnr"]
    assert rows["dense-finetuned"]["params"] == rows["dense"]["params"]
    shipped = [e for e in read_manifest().values() if e["preset"] == "quick" and e["role"] == "dense"]
    # the control finetunes a copy: the dense row (scored first) is still the shipped net
    assert rows["dense"]["psnr"] == pytest.approx(shipped[0]["psnr"], abs=0.01)


def test_slice_baseline_and_finetune_helpers_reproduce_the_studys_recipe(tmp_path):
    """``memory_blind_baseline`` + ``finetune_model`` on ``finetune_set`` (what benchmarks/mosp_curves.py's
    slice runs use) give the study's uniform-slice row, and leave the dense net untouched."""
    from dataclasses import replace

    from ir_prune_plugin.channels.memory_baselines import estimate_peak
    from ir_prune_plugin.studies.mosp_study import (QUICK, dense_unet, finetune_model, finetune_set,
                                                    memory_blind_baseline)

    cfg = replace(QUICK, finetune_steps=4)
    res = run_mosp_study(tmp_path / "out", quick=True, cache_dir=tmp_path / "cache", progress=False,
                         finetune_steps=4)
    row = next(r for r in res["rows"] if r["method"] == "uniform-slice")
    dense = dense_unet(cfg, tmp_path / "cache", 0, progress=False)
    before = [t.clone() for t in dense.state_dict().values()]
    budget = int(0.5 * estimate_peak(dense, (1, 3, *cfg.memory_size)))
    blind = memory_blind_baseline(cfg, dense, torch.rand(2, 3, cfg.patch, cfg.patch), budget, uniform=True)
    assert all(torch.equal(a, b) for a, b in zip(before, dense.state_dict().values()))
    assert estimate_peak(blind.model, (1, 3, *cfg.memory_size)) <= budget
    assert len(finetune_set(cfg, 0)) == len(finetune_set(cfg, 0, 2)) < len(finetune_set(cfg, 0, 9))
    model = finetune_model(cfg, blind.model, finetune_set(cfg, 0), 0, cfg.finetune_steps, progress=False)
    assert not model.training
    assert sum(p.numel() for p in model.parameters()) == row["params"]
    from ir_prune_plugin.data import DenoiseDataset
    from ir_prune_plugin.loops import evaluate
    val = DenoiseDataset("val", sigma=cfg.sigma, val_size=cfg.val_size, seed=0)
    assert evaluate(model, val)["psnr"] == pytest.approx(row["psnr"], abs=0.02)


def test_a_dense_net_that_does_not_beat_the_noisy_input_is_refused_before_any_pruning(tmp_path):
    """A failed dense training (here: one step) stops the study with the PSNRs and what to do."""
    with pytest.raises(RuntimeError, match=r"dense net \(pretrain seed 3, 1 steps.*noisy input.*training failed"):
        run_mosp_study(tmp_path / "out", quick=True, seed=3, cache_dir=tmp_path / "cache", progress=False,
                       pretrain_steps=1)
    assert not (tmp_path / "out" / "mosp_study.json").exists()
