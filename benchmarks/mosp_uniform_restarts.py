"""Does keeping the best of several trainings make the uniform-width baseline a steadier model?

The MOSP benchmark's uniform-width net is the best of ``uniform_restarts`` trainings from scratch,
ranked by their L1 on fresh-noise crops of the *training* photos (``selection_loss``). This script
scores every restart of every seed and budget on the held-out photos and CBSD68 / Kodak24 (the
benchmark's test sets, which played no part in the choice), marks the one kept, and summarises:
the spread of one training (restart 0, the net of the one-training recipe), the kept net's, and
how often the restart it keeps is the seed's best on each test set.

    python benchmarks/mosp_uniform_restarts.py --cache-dir C --out DIR [--seeds 0 1 2]
        [--budgets 0.5 0.43] [--limit 12 --crop 192] [--threads 1]

Only cached (or shipped) restarts are scored: a missing one is reported, never trained here
(``benchmarks/mosp.py --cache-dir C`` trains them).
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from mosp import DEFAULT_DATA, standard_test_sets  # noqa: E402

from ir_prune_plugin.data import DenoiseDataset  # noqa: E402
from ir_prune_plugin.loops import evaluate  # noqa: E402
from ir_prune_plugin.studies.mosp_study import (FULL, RESTART_SEED_STRIDE, MOSPStudyConfig,  # noqa: E402
                                                denoise_key, selection_loss, uniform_training, uniform_unet,
                                                uniform_width)
from ir_prune_plugin.workloads.pretrained import have_weights, weights_name  # noqa: E402


def score_restarts(cfg: MOSPStudyConfig, cache_dir: Path, seed: int, budget: float, extra: dict) -> dict:
    """Every restart's selection L1 and test PSNRs for one (seed, budget), and which one is kept;
    ``{"missing": [file names]}`` when a restart is not cached."""
    width, _ = uniform_width(cfg, budget)
    ucfg = uniform_training(cfg)
    steps = ucfg.pretrain_steps + ucfg.finetune_steps
    seeds = [seed + RESTART_SEED_STRIDE * j for j in range(cfg.uniform_restarts)]
    names = [weights_name({"type": "sid_unet", "width": width}, denoise_key(ucfg, s, steps)) for s in seeds]
    missing = [n for n in names if not have_weights(n, cache_dir)]
    if missing:
        return {"seed": seed, "budget": budget, "missing": missing}
    loss = selection_loss(cfg, seed)
    val = DenoiseDataset("val", sigma=cfg.sigma, val_size=cfg.val_size, seed=seed)
    restarts = []
    for s in seeds:   # each restart is the one-training net of its own seed
        net, _ = uniform_unet(replace(cfg, uniform_restarts=1), budget, cache_dir, s, progress=False)
        with torch.no_grad():
            restarts.append({"seed": s, "selection_l1": loss(net), "psnr": evaluate(net, val)["psnr"],
                             **{f"psnr_{k}": evaluate(net, d)["psnr"] for k, d in extra.items()}})
    kept = min(range(len(restarts)), key=lambda i: restarts[i]["selection_l1"])
    return {"seed": seed, "budget": budget, "restarts": restarts, "kept": kept}


def summary(results: list[dict], columns: list[str]) -> dict:
    """Per budget and test set: restart 0 (one training) and the kept restart, mean ± std over
    seeds; the within-seed spread of the restarts; how often the kept restart is a seed's best."""
    out = {}
    for budget in sorted({r["budget"] for r in results if "restarts" in r}, reverse=True):
        rs = [r for r in results if r["budget"] == budget and "restarts" in r]
        entry = {"seeds": len(rs)}
        for col in columns:
            first = [r["restarts"][0][col] for r in rs]
            kept = [r["restarts"][r["kept"]][col] for r in rs]
            spread = [float(np.std([x[col] for x in r["restarts"]], ddof=1)) for r in rs]
            entry[col] = {"one_training": _ms(first), "kept": _ms(kept),
                          "within_seed_std": float(np.mean(spread)),
                          "kept_is_best": sum(r["kept"] == int(np.argmax([x[col] for x in r["restarts"]]))
                                              for r in rs)}
        out[str(budget)] = entry
    return out


def _ms(values: list[float]) -> dict:
    return {"mean": float(np.mean(values)), "std": float(np.std(values, ddof=1)) if len(values) > 1 else 0.0}


def markdown(results: list[dict], columns: list[str]) -> str:
    """A row per restart (the kept one in bold), then the summary per budget."""
    names = {"psnr": "held-out photos"} | {c: c.removeprefix("psnr_") for c in columns if c != "psnr"}
    head = ["budget", "seed", "restart seed", "selection L1 (train photos)", *[names[c] for c in columns]]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in results:
        if "missing" in r:
            lines.append(f"| {r['budget']:g} | {r['seed']} | not cached: {', '.join(r['missing'])} |"
                         + " |" * (len(head) - 3))
            continue
        for i, x in enumerate(r["restarts"]):
            mark = "**" if i == r["kept"] else ""
            cells = [f"{x['selection_l1']:.5f}", *[f"{x[c]:.2f}" for c in columns]]
            lines.append(f"| {r['budget']:g} | {r['seed']} | {mark}{x['seed']}{' (kept)' if mark else ''}{mark} | "
                         + " | ".join(cells) + " |")
    lines += ["", "| budget | test set | one training (restart 0) | kept (best selection L1) | "
              "spread of one seed's restarts (std) | kept = the seed's best on this set |",
              "|---|---|---|---|---|---|"]
    for budget, entry in summary(results, columns).items():
        for c in columns:
            e = entry[c]
            lines.append(f"| {float(budget):g} | {names[c]} | {e['one_training']['mean']:.2f} ± "
                         f"{e['one_training']['std']:.2f} | {e['kept']['mean']:.2f} ± {e['kept']['std']:.2f} | "
                         f"{e['within_seed_std']:.2f} | {e['kept_is_best']} of {entry['seeds']} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cache-dir", required=True, type=Path)
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--budgets", type=float, nargs="+", default=[0.5, 0.43])
    parser.add_argument("--restarts", type=int, default=FULL.uniform_restarts)
    parser.add_argument("--finetune-steps", type=int, default=FULL.finetune_steps,
                        help="the finetune budget the nets were trained for (pretrain + this steps)")
    parser.add_argument("--uniform-lr", type=float, default=FULL.uniform_lr,
                        help="the rate the uniform-width nets were trained at")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--crop", type=int, default=256)
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args(argv)
    if args.restarts < 2:
        parser.error(f"--restarts must be >= 2 to compare restarts, got {args.restarts}")
    torch.set_num_threads(args.threads)
    cfg = replace(FULL, uniform_restarts=args.restarts, finetune_steps=args.finetune_steps, uniform_lr=args.uniform_lr)
    extra = standard_test_sets(args.data, cfg.sigma, args.crop, args.limit)
    columns = ["psnr", *[f"psnr_{k}" for k in extra]]
    results = [score_restarts(cfg, args.cache_dir, s, b, extra) for b in args.budgets for s in args.seeds]
    args.out.mkdir(parents=True, exist_ok=True)
    md = markdown(results, columns)
    (args.out / "restarts.json").write_text(json.dumps(
        {"command": " ".join(["python benchmarks/mosp_uniform_restarts.py", *(argv or sys.argv[1:])]),
         "results": results, "summary": summary(results, columns)}, indent=2))
    (args.out / "restarts.md").write_text(md)
    print(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
