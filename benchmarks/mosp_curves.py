"""Learning curves of the MOSP benchmark's nets: held-out PSNR every ``--every`` training steps.

Trains the benchmark's dense SID U-Net (x0.625) or its uniform-width baseline at a budget exactly
as ``benchmarks/mosp.py`` does (same data, seed, rate, cosine schedule, gradient clip; only the
step count may differ) and scores the held-out photos of that seed along the way, then CBSD68 /
Kodak24 at the end. A run is ``KIND:BUDGET:STEPS:SEED`` (KIND ``dense``, ``uniform``, ``slice`` or
``dense-ft``; BUDGET is ignored for dense and dense-ft): ``uniform:0.5:1500:1`` is the 50 %
uniform-width net of benchmark seed 1; ``slice:0.5:600:1`` is that seed's uniform slice of the dense
net (the benchmark's ``uniform-slice``) and ``dense-ft::600:1`` the dense net itself (the
benchmark's ``dense-finetuned`` control), each finetuned STEPS exactly as the benchmark finetunes
every pruned model; their dense net comes from ``--cache-dir``, or the shipped weights for seed 0.
``--lr``, ``--patch`` and ``--batch-size`` change each run's own training (a dense net trained
otherwise is cached under another key), for stability checks.
The trained weights go to ``--cache-dir`` under the benchmark's own key, so a later
``benchmarks/mosp.py --cache-dir`` run reuses them (the shipped weights are never used here:
seed 0 retrains them, a check that they reproduce).

    python benchmarks/mosp_curves.py --out DIR --cache-dir C --runs uniform:0.5:1500:1 dense::1200:0
        [--every 150] [--limit 12 --crop 192] [--threads 1]

Writes ``<out>/<KIND>_<BUDGET>_<STEPS>_s<SEED>.json`` per run and ``<out>/curves.md`` (every run's
curve so far) after each run.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from mosp import DEFAULT_DATA, standard_test_sets  # noqa: E402

from ir_prune_plugin.data import DenoiseDataset  # noqa: E402
from ir_prune_plugin.loops import evaluate  # noqa: E402
from ir_prune_plugin.channels.memory_baselines import estimate_peak  # noqa: E402
from ir_prune_plugin.studies.mosp_study import (FULL, dense_unet, finetune_model, finetune_set,  # noqa: E402
                                                memory_blind_baseline, uniform_unet)


KINDS = ("dense", "uniform", "slice", "dense-ft")


def parse_run(text: str) -> dict:
    """``KIND:BUDGET:STEPS:SEED`` -> dict (ValueError naming the bad part)."""
    parts = text.split(":")
    if len(parts) != 4 or parts[0] not in KINDS:
        raise ValueError(f"run {text!r}: expected KIND:BUDGET:STEPS:SEED with KIND one of {', '.join(KINDS)}")
    kind, budget, steps, seed = parts
    if kind in ("uniform", "slice") and not budget:
        raise ValueError(f"run {text!r}: a {kind} run needs a budget, e.g. {kind}:0.5:1500:0")
    return {"kind": kind, "budget": float(budget) if budget else None, "steps": int(steps), "seed": int(seed)}


def run_curve(run: dict, cache_dir: Path, every: int, extra: dict, lr: float | None = None,
              patch: int | None = None, batch_size: int | None = None) -> dict:
    """Train one net as the benchmark does, scoring the seed's held-out photos every ``every`` steps
    (``lr``, ``patch``, ``batch_size``: this run's own training, pretraining or finetune; default the
    benchmark's)."""
    seed, steps = run["seed"], run["steps"]
    changes = {k: v for k, v in (("pretrain_lr", lr), ("uniform_lr", lr), ("finetune_lr", lr), ("patch", patch),
                                 ("batch_size", batch_size)) if v is not None}
    tuned = replace(FULL, uniform_restarts=1, **changes)   # a curve follows one training (restart: its seed)
    val = DenoiseDataset("val", sigma=FULL.sigma, val_size=FULL.val_size, seed=seed)
    curve: list[tuple[int, float]] = []
    t0 = time.time()

    def after_step(model: torch.nn.Module, i: int) -> None:
        if (i + 1) % every == 0 or i + 1 == steps:
            with torch.no_grad():
                curve.append((i + 1, round(evaluate(model, val)["psnr"], 3)))
            model.train()
            logging.info("%s step %d: %.2f dB", run["kind"], i + 1, curve[-1][1])

    if run["kind"] == "dense":
        model = dense_unet(replace(tuned, pretrain_steps=steps), cache_dir, seed, shipped=False,
                           after_step=after_step)
        width = FULL.width
    elif run["kind"] == "dense-ft":
        model = finetune_model(tuned, dense_unet(FULL, cache_dir, seed), finetune_set(tuned, seed, steps), seed,
                               steps, desc="finetune dense", after_step=after_step)
        width = FULL.width
    elif run["kind"] == "slice":
        dense = dense_unet(FULL, cache_dir, seed)
        budget_bytes = int(run["budget"] * estimate_peak(dense, (1, 3, *FULL.memory_size)))
        blind = memory_blind_baseline(FULL, dense, torch.rand(2, 3, FULL.patch, FULL.patch), budget_bytes,
                                      uniform=True)
        model = finetune_model(tuned, blind.model, finetune_set(tuned, seed, steps), seed, steps,
                               desc="finetune uniform-slice", after_step=after_step)
        width = FULL.width * (1 - blind.knob)
    else:
        cfg = replace(tuned, pretrain_steps=steps - FULL.finetune_steps)
        model, knob = uniform_unet(cfg, run["budget"], cache_dir, seed, shipped=False, after_step=after_step)
        width = FULL.width * knob
    if not curve:
        logging.warning("%s: weights already in %s, no curve recorded", run, cache_dir)
    final = {"psnr": evaluate(model, val)["psnr"],
             **{f"psnr_{k}": evaluate(model, d)["psnr"] for k, d in extra.items()}}
    run = {**run, **{k: v for k, v in (("lr", lr), ("patch", patch), ("batch_size", batch_size)) if v is not None}}
    return {**run, "width": width, "params": sum(p.numel() for p in model.parameters()),
            "curve": curve, "final": final, "seconds": round(time.time() - t0, 1)}


def curves_markdown(results: list[dict]) -> str:
    """One row per run: its held-out PSNR at each recorded step, then the final test-set scores."""
    lines = ["| net | budget | seed | steps | params | held-out PSNR along training (step: dB) | "
             "final held-out | CBSD68 | Kodak24 |", "|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        pts = ", ".join(f"{s}: {p:.2f}" for s, p in r["curve"]) or "(cached)"
        f = r["final"]
        lr = "".join(f", {k} {r[k]:g}" for k in ("lr", "patch", "batch_size") if k in r)
        lines.append(f"| {r['kind']} x{r['width']:.3f}{lr} | {r['budget'] or '-'} | {r['seed']} | {r['steps']} | "
                     f"{r['params']:,} | {pts} | {f['psnr']:.2f} | {f.get('psnr_CBSD68', float('nan')):.2f} | "
                     f"{f.get('psnr_Kodak24', float('nan')):.2f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--cache-dir", required=True, type=Path)
    parser.add_argument("--runs", required=True, nargs="+", type=parse_run)
    parser.add_argument("--every", type=int, default=150)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--crop", type=int, default=256)
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--lr", type=float, default=None,
                        help="rate of every run's training (dense / uniform: pretraining, slice / dense-ft: "
                             f"finetune); default the benchmark's {FULL.pretrain_lr:g} (dense), "
                             f"{FULL.uniform_lr:g} (uniform), {FULL.finetune_lr:g} (finetunes)")
    parser.add_argument("--patch", type=int, default=None, help=f"training patch (default {FULL.patch})")
    parser.add_argument("--batch-size", type=int, default=None, help=f"training batch (default {FULL.batch_size})")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    torch.set_num_threads(args.threads)
    extra = standard_test_sets(args.data, FULL.sigma, args.crop, args.limit)
    args.out.mkdir(parents=True, exist_ok=True)
    results = []
    for run in args.runs:
        result = run_curve(run, args.cache_dir, args.every, extra, args.lr, args.patch, args.batch_size)
        lr = "".join(f"_{k}{v:g}" for k, v in (("lr", args.lr), ("p", args.patch), ("bs", args.batch_size))
                     if v is not None)
        name = f"{run['kind']}_{run['budget'] or ''}_{run['steps']}_s{run['seed']}{lr}.json"
        (args.out / name).write_text(json.dumps(result, indent=2))
        results.append(result)
        (args.out / "curves.md").write_text(curves_markdown(results))
    print(curves_markdown(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
