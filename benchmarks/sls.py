"""SLS vs SR-STE vs one-shot N:M at 1/4, 1/8, 1/16 of the MACs, the plan ablation and adaptive inference.

x2 SR with a BasicSR EDSR (default 32 features x 8 blocks), evaluated on Set5/Set14 (Y PSNR,
border 2) from ../shared/data. Usage (from the repository root):
    python benchmarks/sls.py --out DIR [--seeds 0 1 2] [--budgets 0.25 0.125 0.0625] [--threads 1]
        [--pretrain-steps 1200] [--finetune-steps 150] [--num-block 8] [--no-adaptive]
    python benchmarks/sls.py --out DIR --summarize      # only combine DIR/seed*.json
Seeds may run as separate processes on the same --out (one --seeds S each), then --summarize.
Writes DIR/seed<S>.json (resumable), summary.json, tables.md, sls_sweep.png, sls_adaptive.png.
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
from ir_prune_plugin.studies.sls_study import DEEP
from ir_prune_plugin.studies.sls_sweep import (ADAPTIVE_POINTS, BUDGETS, SweepConfig, markdown_tables, plot_adaptive,
                                               plot_sweep, run_seed, summarize)

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


def summarize_dir(out: Path) -> dict:
    """Combine ``out/seed*.json`` into summary.json, tables.md and the two plots."""
    seeds = [json.loads(p.read_text()) for p in sorted(out.glob("seed*.json"))]
    summary = summarize(seeds)
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    (out / "tables.md").write_text(markdown_tables(summary))
    plot_sweep(summary, out / "sls_sweep.png")
    if summary["adaptive"]:
        plot_adaptive(summary, out / "sls_adaptive.png")
    return summary


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--budgets", type=float, nargs="+", default=list(BUDGETS))
    ap.add_argument("--num-feat", type=int, default=DEEP.num_feat)
    ap.add_argument("--num-block", type=int, default=DEEP.num_block)
    ap.add_argument("--pretrain-steps", type=int, default=DEEP.pretrain_steps)
    ap.add_argument("--finetune-steps", type=int, default=DEEP.finetune_steps)
    ap.add_argument("--search-steps", type=int, default=DEEP.search_steps)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (1 is fastest on a busy CPU)")
    ap.add_argument("--no-adaptive", action="store_true", help="skip the adaptive per-tile study")
    ap.add_argument("--summarize", action="store_true", help="only combine the seed files in --out")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    if not args.summarize:
        study = replace(DEEP, num_feat=args.num_feat, num_block=args.num_block, pretrain_steps=args.pretrain_steps,
                        finetune_steps=args.finetune_steps, search_steps=args.search_steps)
        cfg = SweepConfig(study=study, budgets=tuple(args.budgets),
                          adaptive_points=() if args.no_adaptive else ADAPTIVE_POINTS)
        sets = {name: FolderSR(args.data / name) for name in ("Set5", "Set14")}
        for seed in args.seeds:
            run_seed(cfg, args.out, seed, sets, cache_dir=args.out / "cache", progress=True)
    print(markdown_tables(summarize_dir(args.out)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
