"""SLS vs one-shot N:M vs SR-STE vs L1 filter pruning at equal MACs, x2 SR, evaluated on Set5/Set14.

Usage (from the repository root):
    python benchmarks/sls.py --out /tmp/sls_bench [--data ../shared/data] [--budget 0.25] [--seed 0]
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

from ir_prune_plugin.data.degrade import bicubic_down, mod_crop
from ir_prune_plugin.data.images import load_folder
from ir_prune_plugin.studies.sls_study import FULL, run_study

ROOT = Path(__file__).resolve().parents[1]


class FolderSR(Dataset):
    """HR images of a folder (mod-cropped) with MATLAB-bicubic x``scale`` LR inputs."""

    def __init__(self, folder: Path, scale: int = 2) -> None:
        self.items = []
        for img in load_folder(folder):
            hr = mod_crop(img.astype(np.float32) / 255.0, scale)
            lr = bicubic_down(hr, scale)
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
    ap.add_argument("--budget", type=float, default=FULL.budget)
    ap.add_argument("--M", type=int, default=FULL.M)
    ap.add_argument("--finetune-steps", type=int, default=FULL.finetune_steps)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    sets = {name: FolderSR(args.data / name) for name in ("Set5", "Set14")}
    cfg = replace(FULL, budget=args.budget, M=args.M, finetune_steps=args.finetune_steps)
    result = run_study(cfg, args.out, seed=args.seed, cache_dir=args.out / "cache", eval_sets=sets, progress=True)
    for row in result["rows"]:
        print(json.dumps(row))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
