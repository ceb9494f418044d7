"""``irprune sweep``: budget sweep through NNI's experiment launcher, then the Pareto front."""
from __future__ import annotations

import argparse
import json
from typing import Any


def add_parser(subparsers: Any) -> None:
    """Register ``irprune sweep``."""
    from ..integrations.nni.trial import TrialSettings

    d = TrialSettings()
    p = subparsers.add_parser(
        "sweep", help="sweep methods/budgets with an NNI experiment, print the Pareto front",
        description="Starts nni.experiment.Experiment('local') on 127.0.0.1 with the search space file "
                    "(default: the one shipped in ir_prune_plugin/integrations/nni/search_space.json), "
                    "waits for the trials, stops the experiment, prints the PSNR / peak-memory / MACs "
                    "Pareto fronts and writes OUT/pareto.png and OUT/sweep_results.json.")
    p.add_argument("--out", required=True, help="output folder (NNI's experiment directory goes inside)")
    p.add_argument("--search-space", default=None, help="NNI search space JSON")
    p.add_argument("--trials", type=int, default=8)
    p.add_argument("--concurrency", type=int, default=1)
    p.add_argument("--tuner", default="TPE", help="NNI built-in tuner (TPE, Random, Anneal, ...)")
    p.add_argument("--port", type=int, default=8080, help="web UI port on 127.0.0.1")
    p.add_argument("--timeout", type=float, default=3600.0, help="seconds before the sweep is stopped")
    p.add_argument("--task", default=d.task, choices=("denoise", "sr"))
    p.add_argument("--arch", default=d.arch)
    p.add_argument("--arch-kwargs", default=json.dumps(d.arch_kwargs), help="JSON dict for build_arch")
    for name in ("patch", "val_size", "batch_size", "pretrain_steps", "train_steps", "M", "seed"):
        p.add_argument(f"--{name.replace('_', '-')}", type=int, default=getattr(d, name))
    p.add_argument("--memory-size", default="x".join(map(str, d.memory_size)),
                   help="HxW at which peak memory and MACs are reported")
    p.set_defaults(func=run)


def _fmt(rows: list[dict]) -> str:
    lines = [f"  {'method':<6} {'sparse':>6} {'PSNR':>7} {'peak MiB':>9} {'GMACs':>8}"]
    for r in rows:
        lines.append(f"  {str(r.get('method', '?')):<6} {float(r.get('sparse_ratio', float('nan'))):6.2f} "
                     f"{r['default']:7.3f} {r['peak_mb']:9.3f} {r['macs'] / 1e9:8.4f}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    """Run the sweep and print the fronts."""
    from ..integrations.nni.launcher import SweepOptions, run_sweep
    from ..integrations.nni.trial import settings_from_args

    args.threads, args.cache_dir = 0, None
    options = SweepOptions(trials=args.trials, concurrency=args.concurrency, tuner=args.tuner, port=args.port,
                           search_space=args.search_space, timeout_s=args.timeout,
                           trial=settings_from_args(args))
    result = run_sweep(args.out, options)
    ok = sum(1 for r in result.rows if r.get("status") == "SUCCEEDED")
    print(f"experiment {result.experiment_id}: {result.status}, {ok}/{len(result.rows)} trials succeeded")
    print("Pareto front, PSNR vs peak activation memory:")
    print(_fmt(result.front_memory))
    print("Pareto front, PSNR vs MACs:")
    print(_fmt(result.front_macs))
    for kind, path in result.files.items():
        print(f"{kind}: {path}")
    return 0 if ok else 1
