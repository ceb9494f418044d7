"""SLS vs one-shot N:M vs SR-STE vs L1 filter pruning at equal MACs, x2 SR, evaluated on Set5/Set14.

Usage (from the repository root):
    python benchmarks/sls.py --out /tmp/sls_bench [--data ../shared/data] [--budget 0.25 0.125] [--seed 0]
        [--threads 1] [--adaptive]
Pretraining is cached under <out>/cache. Writes sls_study.json, sls_psnr_vs_macs.png and the
adaptive-inference rows (adaptive.json) into --out.
"""
from __future__ import annotations

import argparse
import json
import logging
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from ir_prune_plugin.data.degrade import mod_crop
from ir_prune_plugin.data.images import load_folder
from ir_prune_plugin.studies.sls_study import FULL, plot_sweep, run_adaptive_study, run_study

ROOT = Path(__file__).resolve().parents[1]


class FolderSR(Dataset):
    """A standard SR set laid out as ``HR/`` + ``LR_bicubic/X<s>/`` (MATLAB-bicubic LR files)."""

    def __init__(self, folder: Path, scale: int = 2) -> None:
        self.items = []
        hrs, lrs = load_folder(folder / "HR"), load_folder(folder / "LR_bicubic" / f"X{scale}")
        if len(hrs) != len(lrs):
            raise ValueError(f"{folder}: {len(hrs)} HR images but {len(lrs)} x{scale} LR images")
        for img, low in zip(hrs, lrs):
            lr = low.astype(np.float32) / 255.0
            hr = mod_crop(img.astype(np.float32) / 255.0, scale)[: lr.shape[0] * scale, : lr.shape[1] * scale]
            self.items.append({"lq": torch.from_numpy(lr.transpose(2, 0, 1).copy()),
                               "gt": torch.from_numpy(hr.transpose(2, 0, 1).copy())})

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict:
        return self.items[i]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--budget", type=float, nargs="+", default=[FULL.budget])
    ap.add_argument("--M", type=int, default=FULL.M)
    ap.add_argument("--finetune-steps", type=int, default=FULL.finetune_steps)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (1 is fastest on a busy CPU)")
    ap.add_argument("--adaptive", action="store_true", help="also run the adaptive per-tile study on Set5")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    sets = {name: FolderSR(args.data / name) for name in ("Set5", "Set14")}
    results = []
    for budget in args.budget:
        cfg = replace(FULL, budget=budget, M=args.M, finetune_steps=args.finetune_steps)
        out = args.out / f"budget_{budget:g}" if len(args.budget) > 1 else args.out
        results.append(run_study(cfg, out, seed=args.seed, cache_dir=args.out / "cache", eval_sets=sets,
                                 progress=True))
        for row in results[-1]["rows"]:
            print(json.dumps(row))
    for name in sets:
        plot_sweep(results, args.out / f"sweep_{name}.png", metric=f"psnr_{name}")
    if args.adaptive:
        images = [(it["lq"][None], it["gt"][None]) for it in sets["Set5"].items]
        for row in run_adaptive_study(cfg, args.out, images, seed=args.seed, cache_dir=args.out / "cache"):
            print(json.dumps(row))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
