"""``irprune sweep``: budget sweep through NNI's experiment launcher, then the Pareto front."""
from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path
from typing import Any

from ..integrations.nni.launcher import SweepOptions, run_sweep
from ..integrations.nni.sweep_report import render_sweep
from ..integrations.nni.trial import TrialSettings
from ..vocabulary import format_hw
from . import add_command
from ._args import existing_file, hw_size, int_at_least, json_object


def add_parser(subparsers: Any) -> None:
    """Register ``irprune sweep``."""
    d = TrialSettings()
    p = add_command(
        subparsers, "sweep",
        "Starts nni.experiment.Experiment('local') on 127.0.0.1, runs the trials (each pre-trains "
        "the net once per sweep, prunes it with sls, mosp or NNI's L1 at the tuner's "
        "sparse_ratio, fine-tunes and measures), stops the experiment, prints the PSNR / "
        "peak-memory / MACs Pareto fronts and any failed trial with its reason, and writes "
        "OUT/pareto.png, OUT/report.md and OUT/sweep_results.json (irprune report OUT re-renders "
        "them).")
    p.add_argument("--out", type=Path, required=True, help="output folder (NNI's experiment directory goes inside)")
    p.add_argument("--search-space", type=existing_file, default=None,
                   help="NNI search space JSON (default: method x sparse_ratio x lr, with sparse_ratio limited "
                        "to what every method reaches on --arch at --memory-size)")
    p.add_argument("--trials", type=int_at_least(1), default=8, help="number of trials")
    p.add_argument("--concurrency", type=int_at_least(1), default=1, help="trials run at the same time")
    p.add_argument("--tuner", default="TPE", help="NNI built-in tuner (TPE, Random, Anneal, ...)")
    p.add_argument("--port", type=int, default=8080,
                   help="web UI port on 127.0.0.1 (another free port is taken when this one is in use)")
    p.add_argument("--timeout", type=float, default=3600.0, help="seconds before the sweep is stopped")
    p.add_argument("--task", default=d.task, choices=("denoise", "sr"), help="embedded photo task")
    p.add_argument("--arch", default=d.arch, help="registered arch the trials prune")
    p.add_argument("--arch-kwargs", type=json_object, default=json.dumps(d.arch_kwargs),
                   help="JSON dict for build_arch")
    helps = {"patch": "training patch size", "val_size": "validation crop size", "batch_size": "batch size",
             "pretrain_steps": "pre-training steps (once per sweep, cached)",
             "train_steps": "training steps after pruning, every method", "M": "SLS group size M of N:M",
             "seed": "seed of data and training"}
    for name, text in helps.items():
        low = 0 if name in ("pretrain_steps", "train_steps", "seed") else 1
        p.add_argument(f"--{name.replace('_', '-')}", type=int_at_least(low), default=getattr(d, name), help=text)
    p.add_argument("--memory-size", type=hw_size, default=format_hw(d.memory_size),
                   help="input HEIGHTxWIDTH at which peak memory and MACs are reported")
    p.add_argument("--no-progress", action="store_true", help="hide the trial progress bar")
    p.set_defaults(func=run)


def _fmt(rows: list[dict]) -> str:
    lines = [f"  {'method':<6} {'sparse':>6} {'PSNR':>7} {'peak MiB':>9} {'GMACs':>8}"]
    for r in rows:
        lines.append(f"  {str(r.get('method', '?')):<6} {float(r.get('sparse_ratio', float('nan'))):6.2f} "
                     f"{r['default']:7.3f} {r['peak_mb']:9.3f} {r['macs'] / 1e9:8.4f}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    """Run the sweep and print the fronts and the failed trials."""
    if not args.timeout > 0:
        raise ValueError(f"--timeout must be > 0 seconds, got {args.timeout}")
    fixed = {f.name: getattr(args, f.name) for f in dataclasses.fields(TrialSettings)
             if f.name not in ("arch_kwargs", "memory_size", "threads", "cache_dir")}
    trial = TrialSettings(**fixed, arch_kwargs=args.arch_kwargs, memory_size=args.memory_size)
    options = SweepOptions(trials=args.trials, concurrency=args.concurrency, tuner=args.tuner, port=args.port,
                           search_space=str(args.search_space) if args.search_space else None,
                           timeout_s=args.timeout, trial=trial)
    result = run_sweep(args.out, options, progress=not args.no_progress)
    ok = sum(1 for r in result.rows if r.get("status") == "SUCCEEDED")
    print(f"experiment {result.experiment_id}: {result.status}, {ok}/{len(result.rows)} trials succeeded")
    for r in result.rows:
        if r.get("status") != "SUCCEEDED":
            print(f"  trial {r['trial']} ({r.get('method')}, sparse_ratio {r.get('sparse_ratio')}) "
                  f"{r.get('status')}: {r.get('reason', '?')}")
    print("Pareto front, PSNR vs peak activation memory:")
    print(_fmt(result.front_memory))
    print("Pareto front, PSNR vs MACs:")
    print(_fmt(result.front_macs))
    result.files["report"] = str(render_sweep(args.out))
    for kind, path in result.files.items():
        print(f"{kind}: {path}")
    return 0 if ok else 1
