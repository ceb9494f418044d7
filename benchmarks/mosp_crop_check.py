"""Does a dense net of the MOSP benchmark hold up on inputs larger than its training patches?

Scores the held-out photos of each seed centre-cropped to several sizes (32 px = the benchmark's
training patch, up to the 192 px of its tables) with the cached dense net of that seed, beside the
noisy input at the same crop. A net whose PSNR falls under the noisy input's as the crop grows has
learned features of its small training patches that fail on whole images (the "collapses" of
``benchmarks/results/mosp/INVESTIGATION.md`` (e)); training loss does not show it.

    python benchmarks/mosp_crop_check.py --cache-dir C --seeds 0 1 2 [--patch 64 --batch-size 2]
        [--uniform-budgets 0.5 0.43 [--finetune-steps 1200]]

Only cached (or, for seed 0 at the defaults, shipped) nets are scored: a seed without weights in
``--cache-dir`` is reported missing, never trained here.
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ir_prune_plugin.data import DenoiseDataset  # noqa: E402
from ir_prune_plugin.loops import evaluate  # noqa: E402
from ir_prune_plugin.studies.mosp_study import (FULL, MOSPStudyConfig, denoise_key, dense_unet,  # noqa: E402
                                                uniform_key, uniform_unet, uniform_width)
from ir_prune_plugin.workloads.pretrained import have_weights, weights_name  # noqa: E402


def crop_scores(model: torch.nn.Module | None, sigma: float, seed: int, crops: list[int]) -> dict[int, float]:
    """Mean PSNR on the seed's held-out photos centre-cropped to each size (``None``: the noisy input)."""
    return {c: evaluate(model, DenoiseDataset("val", sigma=sigma, val_size=c, seed=seed))["psnr"] for c in crops}


def check(cfg: MOSPStudyConfig, cache_dir: Path, seeds: list[int], crops: list[int],
          uniform_budgets: tuple[float, ...] = ()) -> str:
    """A Markdown table: per seed, the dense net's PSNR (and the noisy input's) at each crop size,
    then the uniform-width net of each of ``uniform_budgets`` (trained pretrain + finetune steps)."""
    head = "| seed | net | " + " | ".join(f"{c} px: net / noisy" for c in crops) + " |"
    lines = [head, "|" + "---|" * (len(crops) + 2)]
    nets = [("dense", None, cfg.width)] + [(f"uniform width @{b:g}", b, uniform_width(cfg, b)[0])
                                           for b in uniform_budgets]
    for seed in seeds:
        for label, budget, width in nets:
            key = denoise_key(cfg, seed, cfg.pretrain_steps) if budget is None else uniform_key(cfg, seed)
            name = weights_name({"type": "sid_unet", "width": width}, key)
            if not have_weights(name, cache_dir):
                lines.append(f"| {seed} | {label} | no weights in {cache_dir} |" + " |" * (len(crops) - 1))
                continue
            net = (dense_unet(cfg, cache_dir, seed, progress=False) if budget is None
                   else uniform_unet(cfg, budget, cache_dir, seed, progress=False)[0]).eval()
            with torch.no_grad():
                got, noisy = crop_scores(net, cfg.sigma, seed, crops), crop_scores(None, cfg.sigma, seed, crops)
            lines.append(f"| {seed} | {label} | " + " | ".join(f"{got[c]:.2f} / {noisy[c]:.2f}" for c in crops) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cache-dir", required=True, type=Path)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--crops", type=int, nargs="+", default=[32, 64, 96, 192])
    parser.add_argument("--patch", type=int, default=FULL.patch)
    parser.add_argument("--batch-size", type=int, default=FULL.batch_size)
    parser.add_argument("--uniform-budgets", type=float, nargs="*", default=[],
                        help="also score the cached uniform-width nets of these budgets")
    parser.add_argument("--finetune-steps", type=int, default=FULL.finetune_steps,
                        help="the finetune budget the uniform-width nets were trained for (pretrain + this)")
    parser.add_argument("--uniform-lr", type=float, default=FULL.uniform_lr,
                        help="the rate the uniform-width nets were trained at")
    parser.add_argument("--uniform-restarts", type=int, default=FULL.uniform_restarts,
                        help="the restarts the uniform-width nets were chosen from")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    cfg = replace(FULL, patch=args.patch, batch_size=args.batch_size, finetune_steps=args.finetune_steps,
                  uniform_lr=args.uniform_lr, uniform_restarts=args.uniform_restarts)
    print(check(cfg, args.cache_dir, args.seeds, args.crops, tuple(args.uniform_budgets)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
