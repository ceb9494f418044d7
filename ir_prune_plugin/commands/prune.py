"""``irprune prune``: prune a registered arch or a saved model with MOSP or SLS on an embedded task."""
from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from .._inputs import parse_wh

log = logging.getLogger(__name__)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``prune`` subcommand to ``irprune``."""
    p = subparsers.add_parser(
        "prune", help="prune a network with MOSP (peak memory) or SLS (N:M under a MACs budget)",
        description="Load or build a network, prune it on the embedded photo task of its kind "
                    "(denoising for U-Nets, x2/x4 SR for SR nets) and save it with save_pruned.")
    p.add_argument("--method", choices=("mosp", "sls"), required=True)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--arch", help="registered arch name (irprune: sid_unet, res_unet, edsr, ...)")
    src.add_argument("--model", type=Path, help="a file written by save_pruned")
    p.add_argument("--arch-args", default="{}", help='JSON kwargs for --arch, e.g. \'{"width": 0.25}\'')
    p.add_argument("--weights", type=Path, help="state_dict to load into --arch before pruning")
    p.add_argument("--budget", required=True,
                   help="mosp: ratio of the peak (0.5), '384MB' or bytes; sls: ratio of the MACs (0.25)")
    p.add_argument("--M", type=int, default=16, help="sls: group size M of N:M (default 16)")
    p.add_argument("--memory-size", default="2048x1080", help="mosp: input size the peak is measured at")
    p.add_argument("--steps", type=int, default=200, help="training steps (sls search+finetune; mosp finetune)")
    p.add_argument("--out", type=Path, required=True, help="output file (save_pruned format)")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=run)


def _task(model):
    """The embedded task matching the model: SR at its own scale, or denoising."""
    import torch

    from ..data import DenoiseDataset, SRDataset

    was = model.training
    model.eval()
    with torch.no_grad():
        scale = model(torch.zeros(1, 3, 8, 8)).shape[-1] // 8
    model.train(was)
    if scale > 1:
        return SRDataset("train", scale=scale, patch=16 * scale), SRDataset("val", scale=scale, val_size=96)
    return DenoiseDataset("train", patch=48), DenoiseDataset("val", val_size=96)


def run(args: argparse.Namespace) -> int:
    """Run ``irprune prune``; returns the exit code."""
    import torch

    from .. import load_pruned, save_pruned
    from ..archs import build_arch
    from ..loops import evaluate, fit
    from ..macs import count_params

    if args.model is not None:
        model = load_pruned(args.model)
    else:
        model = build_arch(args.arch, **json.loads(args.arch_args))
        if args.weights is not None:
            model.load_state_dict(torch.load(args.weights, map_location="cpu", weights_only=True))
    train, val = _task(model)
    x = val[0]["lq"][None]
    progress = not args.no_progress
    if args.method == "mosp":  # the pruners validate their budgets here, before any work
        from ..channels.mosp import MOSPOptions, MOSPPruner

        budget = float(args.budget) if args.budget.replace(".", "", 1).isdigit() else args.budget
        opts = MOSPOptions(memory_input_size=(1, x.shape[1], *parse_wh(args.memory_size, "--memory-size")))
        per_outer = max(1, args.steps // 10)
        pruner = MOSPPruner(model, x, budget, options=opts,
                            finetune=lambda m: fit(m, train, per_outer, lr=2e-4, progress=False))
    else:
        from ..sparsity import FitOptions, SLSPruner

        pruner = SLSPruner(model, x, float(args.budget), M=args.M)
    before = evaluate(model, val)
    if args.method == "mosp":
        from ..memory import estimate_peak_memory

        pruned = pruner.prune(progress=progress)
        after_peak = estimate_peak_memory(pruned, torch.empty(opts.memory_input_size, device="meta")).peak_bytes
        extra = {"peak_before_mb": round(pruner.original_peak / 2 ** 20, 1),
                 "peak_after_mb": round(after_peak / 2 ** 20, 1),
                 "budget_mb": round(pruner.budget_bytes / 2 ** 20, 1)}
    else:
        pruner.fit(train, args.steps, FitOptions(progress=progress))
        pruned = pruner.finalize()
        extra = {"kept_macs_ratio": pruner.kept_ratio(), "plan": {k: f"{n}:{m}" for k, (n, m) in pruner.plan.items()}}
    after = evaluate(pruned, val)
    save_pruned(pruned, args.out)
    print(json.dumps({"method": args.method, "params_before": count_params(model),
                      "params_after": count_params(pruned), "psnr_before": round(before["psnr"], 3),
                      "psnr_after": round(after["psnr"], 3), **extra, "saved": str(args.out)}, indent=2))
    return 0
