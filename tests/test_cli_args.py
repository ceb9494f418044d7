"""``irprune``: every bad argument stops before any work with exit 2, one line naming the flag, no traceback."""
from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from ir_prune_plugin.cli import main

PRUNE = ["prune", "--method", "mosp", "--arch", "sid_unet", "--arch-args", '{"width": 0.125}',
         "--memory-size", "64x64", "--steps", "1", "--no-progress"]


def _prune(out: Path, *extra: str, method: str = "mosp", budget: str = "0.7") -> list[str]:
    argv = list(PRUNE) + ["--budget", budget, "--out", str(out), *extra]
    argv[argv.index("--method") + 1] = method
    return argv


def _bad_weights(tmp: Path) -> Path:
    f = tmp / "weights.pt"
    f.write_bytes(b"not a checkpoint")
    return f


def _wrong_weights(tmp: Path) -> Path:
    f = tmp / "wrong.pt"
    torch.save({"conv.weight": torch.zeros(1)}, f)
    return f


CASES = {  # name -> (argv builder, text the one error line must contain)
    "negative budget": (lambda t: _prune(t / "o.pt", budget="-0.2"), "--budget"),
    "ratio above 1": (lambda t: _prune(t / "o.pt", budget="1.5"), "--budget"),
    "bad arch-args JSON": (lambda t: _prune(t / "o.pt", "--arch-args", "{bad"), "--arch-args"),
    "arch-args not an object": (lambda t: _prune(t / "o.pt", "--arch-args", "[1]"), "--arch-args"),
    "sls budget above 100%": (lambda t: _prune(t / "o.pt", method="sls", budget="150%"), "--budget"),
    "sls budget as a size": (lambda t: _prune(t / "o.pt", method="sls", budget="384MB"), "--budget"),
    "out in a missing folder": (lambda t: _prune(t / "missing" / "o.pt"), "--out"),
    "out on /proc": (lambda t: _prune(Path("/proc/irprune-test.pt")), "--out"),
    "out is a folder": (lambda t: _prune(t), "--out"),
    "weights not a checkpoint": (lambda t: _prune(t / "o.pt", "--weights", str(_bad_weights(t))), "--weights"),
    "weights of another net": (lambda t: _prune(t / "o.pt", "--weights", str(_wrong_weights(t))), "--weights"),
    "weights missing": (lambda t: _prune(t / "o.pt", "--weights", str(t / "nope.pt")), "--weights"),
    "model not a save_pruned file": (
        lambda t: ["prune", "--method", "sls", "--model", str(_bad_weights(t)), "--budget", "0.5",
                   "--out", str(t / "o.pt")], "--model"),
    "mosp negative steps": (lambda t: _prune(t / "o.pt", "--steps", "-5"), "--steps"),
    "sls M of 1": (lambda t: _prune(t / "o.pt", "--M", "1", method="sls", budget="0.5"), "--M"),
    "memory size not HxW": (lambda t: _prune(t / "o.pt", "--memory-size", "2048"), "HEIGHTxWIDTH"),
    "memory: wrong input channels": (lambda t: ["memory", "sid_unet", "--size", "32x32", "--channels", "4"],
                                     "--channels 4"),
    "memory: zero size": (lambda t: ["memory", "sid_unet", "--size", "0x16"], "HEIGHTxWIDTH"),
    "memory: plot not png": (lambda t: ["memory", "sid_unet", "--plot", str(t / "x.jpg")], ".png"),
    "memory: unknown arch": (lambda t: ["memory", "nosuchnet", "--size", "16x16"], "nosuchnet"),
}


@pytest.mark.parametrize("name", list(CASES))
def test_bad_argument_is_one_line_exit_2_before_any_work(name, tmp_path, capsys):
    build, needle = CASES[name]
    argv = build(tmp_path)
    before = sorted(p.name for p in tmp_path.iterdir())
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith("irprune ") and "error:" in err and needle in err, err
    assert "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing written


def test_console_script_prints_no_traceback(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.run([sys.executable, "-m", "ir_prune_plugin.cli", *_prune(tmp_path / "o.pt", budget="-0.2")],
                          capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()] and "Traceback" not in proc.stderr
    assert "--budget" in proc.stderr and "-0.2" in proc.stderr


def test_every_help_shows_defaults_and_the_size_convention(capsys):
    for cmd in ("prune", "memory"):
        assert main([cmd, "--help"]) == 0
        text = capsys.readouterr().out
        assert "HEIGHTxWIDTH" in text and "(default: 1080x2048)" in text


def test_top_level_help_lists_every_command_without_importing_torch():
    """``irprune --help`` imports no subcommand module (they import torch): it stays fast."""
    code = ("import sys; from ir_prune_plugin.cli import main; from ir_prune_plugin.commands import SUMMARIES; "
            "rc = main(['--help']); assert rc == 0, rc; "
            "loaded = sorted(m for m in sys.modules if m == 'torch' or m.startswith('ir_prune_plugin.commands.')); "
            "assert not loaded, loaded")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    for name in ("demo", "export", "memory", "pretrain", "prune", "report", "sweep"):
        assert f"    {name} " in proc.stdout, name


def test_pruning_random_weights_warns_and_mosp_explains_compactor_params(tmp_path, capsys, caplog):
    caplog.set_level(logging.WARNING)
    argv = _prune(tmp_path / "o.pt", "--arch-args", '{"width": 0.25}', "--memory-size", "128x256", budget="0.8")
    assert main(argv) == 0
    assert any("randomly initialised" in r.getMessage() and "--weights" in r.getMessage() for r in caplog.records)
    out = capsys.readouterr().out
    import json
    rep = json.loads(out[out.index("{"):])
    assert rep["compactor_params"] > 0 and "compactors" in rep["note"]
    assert rep["params_after"] - rep["compactor_params"] < rep["params_before"]
    assert rep["memory_size_hw"] == [128, 256]
