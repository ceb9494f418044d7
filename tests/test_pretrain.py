"""`irprune pretrain` still trains (tiny size) and the weights shipped in the package reach their PSNR."""
import json

import pytest
import torch

from ir_prune_plugin.archs import build_arch
from ir_prune_plugin.cli import main
from ir_prune_plugin.data import DenoiseDataset
from ir_prune_plugin.loops import evaluate
from ir_prune_plugin.workloads.shipped import SHIPPED_DIR, load_state, read_manifest, record


def test_pretrain_command_trains_and_records_what_it_ships(tmp_path, capsys):
    out = tmp_path / "weights"
    rc = main(["pretrain", "--preset", "quick", "--pretrain-steps", "3", "--finetune-steps", "2",
               "--out", str(out), "--no-progress"])
    assert rc == 0
    manifest = json.loads((out / "manifest.json").read_text())
    roles = sorted(e["role"] for e in manifest.values())
    assert roles == ["dense", "uniform-width"]
    for filename, entry in manifest.items():
        state = torch.load(out / filename, weights_only=True)
        assert all(v.dtype == torch.float16 for v in state.values() if v.is_floating_point())
        assert entry["key"]["steps"] == (3 if entry["role"] == "dense" else 5)
        model = load_state(build_arch("sid_unet", width=entry["arch"]["width"]), out / filename)
        val = DenoiseDataset("val", sigma=entry["val"]["sigma"], val_size=entry["val"]["val_size"],
                             seed=entry["val"]["seed"])
        assert evaluate(model, val)["psnr"] == pytest.approx(entry["psnr"], abs=1e-3)
    uniform = next(e for e in manifest.values() if e["role"] == "uniform-width")
    dense = next(e for e in manifest.values() if e["role"] == "dense")
    assert uniform["arch"]["width"] < dense["arch"]["width"]
    assert "irprune pretrain --preset=quick" in dense["command"]


def test_pretrain_replaces_the_weights_of_an_older_recipe(tmp_path, capsys):
    out = tmp_path / "weights"
    out.mkdir()
    older = {"sid_unet-old.pt": ("quick", 0), "sid_unet-seed1.pt": ("quick", 1), "sid_unet-default.pt": ("default", 0)}
    for name, (preset, seed) in older.items():   # entries as an older `irprune pretrain` wrote them
        (out / name).write_bytes(b"weights")
        record(out, name, {"preset": preset, "role": "dense", "budget": None, "key": {"seed": seed}})
    (out / "notes.txt").write_text("a user's file")
    assert main(["pretrain", "--preset", "quick", "--no-uniform", "--out", str(out), "--no-progress"]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    new = [name for name, e in manifest.items() if e.get("psnr") is not None]
    assert len(new) == 1 and "sid_unet-old.pt" not in manifest and not (out / "sid_unet-old.pt").exists()
    assert "removed sid_unet-old.pt" in capsys.readouterr().out
    kept = {"sid_unet-seed1.pt", "sid_unet-default.pt"}   # another seed, another preset
    assert set(manifest) == kept | set(new)
    assert sorted(p.name for p in out.iterdir()) == sorted([*kept, *new, "manifest.json", "notes.txt"])
    # a run with overridden steps is an experiment beside the preset's nets, not their replacement
    assert main(["pretrain", "--preset", "quick", "--no-uniform", "--pretrain-steps", "2", "--out", str(out),
                 "--no-progress"]) == 0
    assert set(new) < set(json.loads((out / "manifest.json").read_text())) and (out / new[0]).exists()


def test_pretrain_can_retrain_only_the_uniform_width_nets(tmp_path, capsys):
    out = tmp_path / "weights"
    out.mkdir()
    (out / "sid_unet-dense.pt").write_bytes(b"weights")
    record(out, "sid_unet-dense.pt", {"preset": "quick", "role": "dense", "budget": None, "key": {"seed": 0}})
    assert main(["pretrain", "--preset", "quick", "--no-dense", "--pretrain-steps", "3", "--finetune-steps", "2",
                 "--out", str(out), "--no-progress"]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    new = {name: e for name, e in manifest.items() if name != "sid_unet-dense.pt"}
    assert [(e["role"], e["key"]["steps"]) for e in new.values()] == [("uniform-width", 5)]
    assert (out / "sid_unet-dense.pt").read_bytes() == b"weights"   # the dense net is left as it was
    assert main(["pretrain", "--preset", "quick", "--no-dense", "--no-uniform", "--out", str(out)]) == 2
    assert "not allowed with argument" in capsys.readouterr().err


def test_pretrain_records_each_restart_of_the_uniform_width_net_and_ships_the_kept_one(tmp_path, monkeypatch):
    from dataclasses import replace

    from ir_prune_plugin.demo import run as demo_run

    monkeypatch.setattr(demo_run, "QUICK", replace(demo_run.QUICK, uniform_restarts=2))
    out = tmp_path / "weights"
    assert main(["pretrain", "--preset", "quick", "--no-dense", "--pretrain-steps", "3", "--finetune-steps", "2",
                 "--out", str(out), "--no-progress"]) == 0
    (name, entry), = json.loads((out / "manifest.json").read_text()).items()
    assert entry["key"]["restarts"] == 2 and [r["seed"] for r in entry["restarts"]] == [0, 1000]
    kept = min(entry["restarts"], key=lambda r: r["selection_l1"])
    assert entry["restarts"][0]["selection_l1"] != entry["restarts"][1]["selection_l1"]
    assert entry["psnr"] == pytest.approx(kept["psnr"], abs=0.02)   # the shipped (fp16) net is the kept one
    assert sorted(p.name for p in out.iterdir()) == sorted(["manifest.json", name])   # restarts are not shipped


def test_pretrain_rejects_a_bad_step_count(tmp_path, capsys):
    assert main(["pretrain", "--preset", "quick", "--pretrain-steps", "0", "--out", str(tmp_path)]) == 2
    assert "argument --pretrain-steps: must be >= 1, got 0" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


SHIPPED = read_manifest()


@pytest.mark.parametrize("preset", ["quick", "default"])
def test_the_demo_presets_ship_the_weights_of_their_current_recipe(preset):
    # a preset whose steps or rates change without `irprune pretrain` would train for minutes in the demo
    from ir_prune_plugin.demo import DemoConfig
    from ir_prune_plugin.demo.run import study_config
    from ir_prune_plugin.studies.mosp_study import denoise_key, uniform_key

    demo = DemoConfig.preset_named(preset)
    cfg = study_config(demo)
    keys = {(e["role"], e["budget"]): e["key"] for e in SHIPPED.values() if e["preset"] == preset}
    assert keys[("dense", None)] == denoise_key(cfg, demo.seed, cfg.pretrain_steps)
    for budget in cfg.budgets:
        assert keys[("uniform-width", budget)] == uniform_key(cfg, demo.seed)
        assert keys[("uniform-width", budget)]["steps"] == cfg.pretrain_steps + cfg.finetune_steps


@pytest.mark.parametrize("filename", sorted(SHIPPED))
def test_shipped_weights_load_and_reach_their_recorded_psnr(filename):
    entry = SHIPPED[filename]
    model = load_state(build_arch("sid_unet", width=entry["arch"]["width"]), SHIPPED_DIR / filename)
    val = DenoiseDataset("val", sigma=entry["val"]["sigma"], val_size=entry["val"]["val_size"],
                         seed=entry["val"]["seed"])
    psnr = evaluate(model, val)["psnr"]
    assert psnr == pytest.approx(entry["psnr"], abs=0.01)
    if entry["role"] == "dense":   # a real denoiser, so the demo's tables compare real models
        assert psnr >= entry["noisy_psnr"] + 3.0
    if "restarts" in entry:   # the best of several trainings: the one with the lowest training-photo loss
        kept = min(entry["restarts"], key=lambda r: r["selection_l1"])
        assert len(entry["restarts"]) == entry["key"]["restarts"]
        assert psnr == pytest.approx(kept["psnr"], abs=0.02)   # (fp16 as shipped, fp32 as trained)



def test_fit_clips_the_gradient_norm_and_rejects_a_bad_clip(monkeypatch):
    from ir_prune_plugin.loops import fit

    torch.manual_seed(0)
    model = build_arch("sid_unet", width=0.125)
    x = torch.rand(2, 3, 16, 16)
    batch = [(x, x + 10.0)]   # a far target: the gradient norm is well above the clip
    with pytest.raises(ValueError, match="clip_grad_norm must be None or a positive number, got 0"):
        fit(model, batch, 1, clip_grad_norm=0, progress=False)
    norms, step = [], torch.optim.Adam.step

    def recording_step(self, *args, **kwargs):   # the gradient norm Adam is given, then the real step
        grads = [p.grad.norm() for g in self.param_groups for p in g["params"] if p.grad is not None]
        norms.append(float(torch.linalg.vector_norm(torch.stack(grads))))
        return step(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.Adam, "step", recording_step)
    fit(model, batch, 2, clip_grad_norm=1e-3, progress=False)
    fit(model, batch, 1, progress=False)
    assert len(norms) == 3
    assert max(norms[:2]) <= 1e-3 * 1.0001 < 1e-2 < norms[2]


def test_pretrain_never_writes_a_net_worse_than_the_noisy_input(tmp_path, capsys, monkeypatch):
    """A collapsed training (fault injected: the trained dense net's weights blown up x30) stops the
    command with the PSNRs; nothing is written, not even the output folder."""
    import ir_prune_plugin.commands.pretrain as pretrain

    real = pretrain.dense_unet

    def collapsed(*args, **kwargs):
        model = real(*args, **kwargs)
        with torch.no_grad():
            for p in model.parameters():
                p.mul_(30.0)
        return model

    monkeypatch.setattr(pretrain, "dense_unet", collapsed)
    out = tmp_path / "weights"
    rc = main(["pretrain", "--preset", "quick", "--pretrain-steps", "3", "--out", str(out), "--no-progress"])
    err = capsys.readouterr().err
    assert rc != 0
    assert "the dense net" in err and "for the noisy input itself: its training collapsed" in err
    assert "Try another --seed" in err and not out.exists()
