"""IRPruneModel in-process (real BasicSR model class, tiny EDSR): search checkpoints reload exactly."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

if importlib.util.find_spec("basicsr") is None:
    pytest.skip("basicsr is not installed (pip install ir-prune-plugin[basicsr])", allow_module_level=True)


def _opt(root: Path, **path: object) -> dict:
    models, states = root / "models", root / "training_states"
    models.mkdir(parents=True, exist_ok=True)
    states.mkdir(exist_ok=True)
    return {
        "name": "unit", "model_type": "IRPruneModel", "is_train": True, "dist": False, "rank": 0,
        "world_size": 1, "num_gpu": 0, "manual_seed": 0, "scale": 2,
        "network_g": {"type": "EDSR", "num_in_ch": 3, "num_out_ch": 3, "num_feat": 16, "num_block": 2,
                      "upscale": 2},
        "path": {"pretrain_network_g": None, "strict_load_g": True, "models": str(models),
                 "training_states": str(states), "experiments_root": str(root), **path},
        "train": {"ema_decay": 0.5, "optim_g": {"type": "Adam", "lr": 1e-3},
                  "scheduler": {"type": "MultiStepLR", "milestones": [3], "gamma": 0.5},
                  "total_iter": 100, "pixel_opt": {"type": "L1Loss", "loss_weight": 1.0}},
        "pruning": {"method": "sls", "budget": 0.25, "start_iter": 1, "input_size": [12, 12],
                    "options": {"M": 8, "search_steps": 50, "refresh_every": 2}},
    }


def test_search_checkpoint_reloads_to_identical_outputs_and_optimizer_state(tmp_path: Path) -> None:
    from ir_prune_plugin.integrations.basicsr import register
    register()
    from basicsr.models import build_model
    torch.manual_seed(0)
    model = build_model(_opt(tmp_path))
    batches = [{"lq": torch.rand(2, 3, 12, 12), "gt": torch.rand(2, 3, 24, 24)} for _ in range(5)]
    for i, batch in enumerate(batches, start=1):
        model.update_learning_rate(i)
        model.feed_data(batch)
        model.optimize_parameters(i)
    assert model.phase == "search" and "l_macs" in model.log_dict
    assert model.get_current_learning_rate()[0] == pytest.approx(5e-4)  # the milestone survived the rebuild
    model.save(0, 5)

    probe = {"lq": torch.rand(1, 3, 12, 12)}
    model.feed_data(probe)
    model.test()
    expected = model.output.clone()

    # a fresh model resuming from that checkpoint: same masks (ranks as last refreshed), same EMA outputs
    opt = _opt(tmp_path, pretrain_network_g=str(tmp_path / "models" / "net_g_5.pth"))
    resumed = build_model(opt)
    state = torch.load(tmp_path / "training_states" / "5.state", weights_only=True)
    resumed.resume_training(state)
    assert resumed.phase == "search" and resumed._sls.pruner.steps_done == 4
    resumed.feed_data(probe)
    resumed.test()
    torch.testing.assert_close(resumed.output, expected, rtol=0, atol=0)
    bare = resumed.get_bare_model(resumed.net_g)
    with torch.no_grad():
        torch.testing.assert_close(bare(probe["lq"]), model.get_bare_model(model.net_g)(probe["lq"]),
                                   rtol=0, atol=0)
