"""``irprune report RUN_DIR``: re-render tables and plots of a finished run."""
from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``report`` subcommand to ``irprune``."""
    p = subparsers.add_parser("report", help="re-render report.md and plots from a run's results.json")
    p.add_argument("run_dir", type=Path, help="a finished demo/sweep/BasicSR run folder")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run ``irprune report``; returns the exit code."""
    from ..demo.report import render

    print(render(args.run_dir))
    return 0
