"""``irprune report RUN_DIR``: re-render the report of a finished demo, sweep or BasicSR run."""
from __future__ import annotations

import argparse
from pathlib import Path

from ..demo.render import render
from ..integrations.basicsr.run_report import is_basicsr_run, render_basicsr_run
from ..integrations.nni.sweep_report import render_sweep
from . import add_command

KINDS = ("results.json (irprune demo)", "sweep_results.json (irprune sweep)",
         "train_*.log + models/ (a BasicSR experiments/<name> folder trained with IRPruneModel)")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``report`` subcommand to ``irprune``."""
    p = add_command(
        subparsers, "report",
        "Writes RUN_DIR/report.md and its plots from what the run saved (nothing is re-run). "
        "RUN_DIR holds one of: " + "; ".join(KINDS) + ".")
    p.add_argument("run_dir", type=Path, help="a finished `irprune demo` or `irprune sweep` --out folder, "
                                              "or a BasicSR experiments/<name> folder")
    p.set_defaults(func=run)


def render_any(run_dir: Path) -> Path:
    """Render ``run_dir`` by what it holds; ``FileNotFoundError`` naming the three kinds otherwise."""
    if not run_dir.is_dir():
        raise FileNotFoundError(f"{str(run_dir)!r} is not a folder; RUN_DIR holds one of: " + "; ".join(KINDS))
    if (run_dir / "results.json").is_file():
        return render(run_dir)
    if (run_dir / "sweep_results.json").is_file():
        return render_sweep(run_dir)
    if is_basicsr_run(run_dir):
        return render_basicsr_run(run_dir)
    raise FileNotFoundError(f"{str(run_dir)!r} holds none of: " + "; ".join(KINDS))


def run(args: argparse.Namespace) -> int:
    """Run ``irprune report``; returns the exit code."""
    print(render_any(args.run_dir))
    return 0
