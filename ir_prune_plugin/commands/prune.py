"""``irprune prune``: prune a registered arch or a saved model with MOSP or SLS on an embedded task."""
from __future__ import annotations

import argparse
import json
import logging

import torch

from ..archs import build_arch
from ..channels.mosp import MOSPOptions, MOSPPruner
from ..data import DenoiseDataset, SRDataset
from ..io import load_pruned, save_pruned
from ..loops import evaluate, fit
from ..macs import count_params
from ..memory import estimate_peak_memory
from ..sparsity import FitOptions, SLSPruner
from ..sparsity.masks import kept_params
from ..vocabulary import MIB, Compactor
from . import add_command
from ._args import existing_file, hw_size, int_at_least, json_object, macs_ratio, memory_budget, output_file

log = logging.getLogger(__name__)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``prune`` subcommand to ``irprune``."""
    p = add_command(
        subparsers, "prune",
        "Load or build a network, prune it on the embedded photo task of its kind "
        "(denoising for U-Nets, x2/x4 SR for SR nets) and save it with save_pruned.")
    p.add_argument("--method", choices=("mosp", "sls"), required=True)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--arch", help="registered arch name (irprune: sid_unet, res_unet, edsr, ...)")
    src.add_argument("--model", type=existing_file, help="a file written by save_pruned")
    p.add_argument("--arch-args", type=json_object, default="{}",
                   help='JSON kwargs for --arch, e.g. \'{"width": 0.25}\'')
    p.add_argument("--weights", type=existing_file,
                   help="trained state_dict for --arch (without it a randomly initialised net is pruned)")
    p.add_argument("--budget", required=True,
                   help="mosp: share of the dense peak memory (0.5 or 50%%), bytes (40000000) or a size "
                        "(384MB, 1.5GiB); sls: kept share of the prunable MACs (0.25 or 25%%)")
    p.add_argument("--M", type=int_at_least(2), default=16, help="sls: group size M of N:M")
    p.add_argument("--memory-size", type=hw_size, default="1080x2048",
                   help="mosp: input HEIGHTxWIDTH the peak memory is measured at")
    p.add_argument("--steps", type=int_at_least(1), default=200,
                   help="training steps (sls: search + finetune; mosp: finetune, spread over the outer steps)")
    p.add_argument("--out", type=output_file, required=True, help="output file (save_pruned format)")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    p.set_defaults(func=run)


def _task(model):
    """The embedded task matching the model: SR at its own scale, or denoising."""
    was = model.training
    model.eval()
    with torch.no_grad():
        scale = model(torch.zeros(1, 3, 8, 8)).shape[-1] // 8
    model.train(was)
    if scale > 1:
        return SRDataset("train", scale=scale, patch=16 * scale), SRDataset("val", scale=scale, val_size=96)
    return DenoiseDataset("train", patch=48), DenoiseDataset("val", val_size=96)


def _budget(args: argparse.Namespace) -> float | int | str:
    """--budget checked for the chosen method (argparse cannot: its meaning depends on --method)."""
    parse = memory_budget if args.method == "mosp" else macs_ratio
    try:
        return parse(args.budget)
    except argparse.ArgumentTypeError as exc:
        raise ValueError(f"argument --budget: {exc}") from None


def load_model(args: argparse.Namespace) -> torch.nn.Module:
    """The network to prune (or export), from --model or --arch (+ --weights); errors name the flag and file."""
    if args.model is not None:
        try:
            return load_pruned(args.model)
        except Exception as exc:  # a corrupt or foreign file: torch/pickle raise many types
            raise ValueError(f"argument --model: cannot load {str(args.model)!r}: {exc}") from None
    if args.weights is None:
        log.warning("pruning a randomly initialised %s: no --weights given, so PSNR before and after "
                    "says nothing about a trained net; pass --weights state_dict.pt", args.arch)
    model = build_arch(args.arch, **args.arch_args)
    if args.weights is not None:
        try:
            state = torch.load(args.weights, map_location="cpu", weights_only=True)
        except Exception as exc:
            raise ValueError(f"argument --weights: cannot load {str(args.weights)!r} as a state_dict: "
                             f"{exc}") from None
        if isinstance(state, dict) and isinstance(state.get("params_ema", state.get("params")), dict):
            state = state.get("params_ema", state.get("params"))  # a BasicSR checkpoint
        try:
            model.load_state_dict(state)
        except Exception as exc:
            raise ValueError(f"argument --weights: {str(args.weights)!r} does not fit {args.arch} "
                             f"{args.arch_args}: {exc}") from None
    return model


def run(args: argparse.Namespace) -> int:
    """Run ``irprune prune``; returns the exit code."""
    budget = _budget(args)
    model = load_model(args)
    train, val = _task(model)
    x = val[0]["lq"][None]
    progress = not args.no_progress
    if args.method == "mosp":  # the pruner checks the budget against the net here, before any work
        opts = MOSPOptions(memory_input_size=(1, x.shape[1], *args.memory_size))
        per_outer = max(1, args.steps // 10)

        def finetune(m: torch.nn.Module) -> None:  # trains in place (MOSP refuses other return values)
            fit(m, train, per_outer, lr=2e-4, progress=False)

        pruner = MOSPPruner(model, x, budget, options=opts, finetune=finetune)
    else:
        pruner = SLSPruner(model, x, budget, M=args.M)
    before = evaluate(model, val)
    if args.method == "mosp":
        pruned = pruner.prune(progress=progress)
        after_peak = estimate_peak_memory(pruned, torch.empty(opts.memory_input_size, device="meta")).peak_bytes
        compactor_params = sum(count_params(m) for m in pruned.modules() if isinstance(m, Compactor))
        extra = {"peak_before_mb": round(pruner.original_peak / MIB, 1),
                 "peak_after_mb": round(after_peak / MIB, 1),
                 "budget_mb": round(pruner.budget_bytes / MIB, 1),
                 "memory_size_hw": list(args.memory_size),
                 "compactor_params": compactor_params,
                 "note": "params_after includes the compactors (identity-initialised 1x1 convs MOSP adds "
                         "on long skips); they cost parameters, not peak memory"}
    else:
        pruner.fit(train, args.steps, FitOptions(progress=progress))
        pruned = pruner.finalize()
        extra = {"kept_macs_ratio": pruner.kept_ratio(), "params_after_nm_effective": int(kept_params(pruned, pruner.plan)),
                 "plan": {k: f"{n}:{m}" for k, (n, m) in pruner.plan.items()},
                 "note": "params_after counts the zeros of the N:M layers; params_after_nm_effective counts "
                         "N/M of each N:M layer's weights"}
    after = evaluate(pruned, val)
    save_pruned(pruned, args.out)
    print(json.dumps({"method": args.method, "params_before": count_params(model),
                      "params_after": count_params(pruned), "psnr_before": round(before["psnr"], 3),
                      "psnr_after": round(after["psnr"], 3), **extra, "saved": str(args.out)}, indent=2))
    return 0
