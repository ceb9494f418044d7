"""``irprune demo``: the main job (see ir_prune_plugin.demo)."""
from __future__ import annotations

import argparse
from pathlib import Path

from ..demo import DemoConfig, run_demo
from ..demo.render import table
from . import add_command


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``demo`` subcommand to ``irprune``."""
    p = add_command(subparsers, "demo", "Pretrain small IR nets on embedded photos, prune them with MOSP/SLS "
                                        "and baselines at matched budgets, and write a report.")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--quick", action="store_true",
                   help="tiny sizes, shipped tiny weights, for tests (about 80 s on 2 lightly loaded cores)")
    g.add_argument("--full", action="store_true", help="longer, larger run")
    p.add_argument("--out", type=Path, default=Path("runs/demo"), help="output folder (default: runs/demo)")
    p.add_argument("--cache-dir", type=Path, default=None,
                   help="pretrained-weight cache (default: ~/.cache/ir-prune-plugin/weights or $IRPRUNE_CACHE)")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run ``irprune demo``; returns the exit code."""
    preset = "quick" if args.quick else "full" if args.full else "default"
    cfg = DemoConfig.preset_named(preset, seed=args.seed)
    results = run_demo(cfg, args.out, cache_dir=args.cache_dir, progress=not args.no_progress)
    for section in results["sections"]:
        print(f"\n== {section['title']}")
        print(table(section.get("rows", [])))
    print(f"\nDone in {results['timings']['total_s']:.0f} s. Report: {args.out / 'report.md'} "
          f"(figures and results.json in {args.out}/)")
    return 0
