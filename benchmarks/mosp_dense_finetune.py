"""The MOSP benchmark's dense net finetuned as a pruned model is (fairness check for longer finetunes).

A pruned model finetuned N steps has had the dense pretraining plus N steps; this gives the dense
net the same N steps (the study's finetune data, seed, rate and clip) and scores the held-out
photos and CBSD68 / Kodak24 as ``benchmarks/mosp.py`` does.

    python benchmarks/mosp_dense_finetune.py --cache-dir C [--seed 0] [--steps 600] [--limit 12 --crop 192]
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from mosp import DEFAULT_DATA, FolderDenoise  # noqa: E402

from ir_prune_plugin.data import DenoiseDataset  # noqa: E402
from ir_prune_plugin.loops import evaluate, fit  # noqa: E402
from ir_prune_plugin.studies import mosp_study  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cache-dir", required=True, type=Path)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--crop", type=int, default=256)
    parser.add_argument("--limit", type=int, default=None)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    cfg = replace(mosp_study.FULL, finetune_steps=args.steps)
    dense = mosp_study.dense_unet(cfg, args.cache_dir, args.seed, progress=False)
    torch.manual_seed(args.seed)   # as the study's finetune of a pruned model
    fit(dense, mosp_study._train_set(cfg, args.seed + 1, args.steps), args.steps, lr=cfg.finetune_lr,
        batch_size=cfg.batch_size, seed=args.seed + 1, progress=False, clip_grad_norm=cfg.grad_clip)
    val = DenoiseDataset("val", sigma=cfg.sigma, val_size=cfg.val_size, seed=args.seed)
    out = {"seed": args.seed, "finetune_steps": args.steps, "psnr": evaluate(dense, val)["psnr"]}
    for name in ("CBSD68", "Kodak24"):
        out[f"psnr_{name}"] = evaluate(dense, FolderDenoise(args.data / name, cfg.sigma, args.crop, args.limit))["psnr"]
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
