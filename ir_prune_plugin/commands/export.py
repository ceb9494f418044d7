"""``irprune export``: a network (pruned or not) -> ONNX with dynamic height/width, checked with ONNX Runtime."""
from __future__ import annotations

import argparse

import torch

from ..deploy.onnx_export import export_onnx
from ..deploy.ort_memory import peak_rss
from ..deploy.ort_options import MEMORY_PLAN
from ..deploy.ort_plan import ort_liveness
from ..memory import estimate_peak_memory
from ..vocabulary import MIB
from . import add_command
from ._args import existing_file, hw_size, json_object, output_file_ending
from .prune import load_model


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text!r}")
    return value


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``irprune export``."""
    p = add_command(
        subparsers, "export",
        "Export a save_pruned file or a registered arch to ONNX with dynamic height and width "
        "(compactors and pruned widths as they are, N:M layers as dense weights with zeros); "
        "ONNX Runtime's output must equal PyTorch's within --atol. With --measure-size, also "
        "ONNX Runtime's real peak memory (RSS rise) for one inference beside the estimate.")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--model", type=existing_file, help="a file written by save_pruned (e.g. by irprune prune)")
    src.add_argument("--arch", help="registered arch name (sid_unet, res_unet, edsr, ...)")
    p.add_argument("--arch-args", type=json_object, default="{}", help='JSON kwargs for --arch, e.g. \'{"width": 0.25}\'')
    p.add_argument("--weights", type=existing_file, help="trained state_dict for --arch")
    p.add_argument("--out", type=output_file_ending(".onnx"), required=True, help="the .onnx file to write")
    p.add_argument("--size", type=hw_size, default="64x64", help="HEIGHTxWIDTH of the check input")
    p.add_argument("--exporter", choices=("dynamo", "torchscript"), default="dynamo",
                   help="torch.export-based (PyTorch's default) or the legacy, faster TorchScript tracer")
    p.add_argument("--static", action="store_true",
                   help="fixed height and width (--size): for nets whose pooling output follows the input (SAFMN)")
    p.add_argument("--atol", type=_positive, default=1e-4, help="max |ONNX Runtime - PyTorch| allowed")
    p.add_argument("--measure-size", type=hw_size, default=None,
                   help="HEIGHTxWIDTH at which to measure ONNX Runtime's peak memory (e.g. 1080x2048)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run ``irprune export``; returns the exit code."""
    model = load_model(args).eval()
    first = next((m for m in model.modules() if isinstance(m, torch.nn.Conv2d)), None)
    channels = first.in_channels if first is not None else 3
    res = export_onnx(model, args.out, torch.rand(1, channels, *args.size), exporter=args.exporter, atol=args.atol,
                      dynamic_hw=not args.static)
    diffs = ", ".join(f"{h}x{w}: {d:.2e}" for (h, w), d in res.max_abs_diff.items())
    print(f"wrote {res.path} ({res.nbytes / MIB:.2f} MiB, {res.exporter}, {res.seconds:.1f} s); "
          f"ONNX Runtime vs PyTorch max |diff| {diffs}")
    if args.measure_size is not None:
        est = estimate_peak_memory(model, (1, channels, *args.measure_size)).peak_bytes
        ort = peak_rss("onnxruntime", res.path, args.measure_size, in_channels=channels, repeats=1)
        h, w = args.measure_size
        print(f"peak memory at {h}x{w}: ONNX Runtime RSS rise {ort.rise / MIB:.1f} MiB (first run "
              f"{ort.first_rise / MIB:.1f} MiB, {ort.latency_s:.2f} s); estimate {est / MIB:.1f} MiB")
        plans = {name: ort_liveness(res.path, args.measure_size, in_channels=channels, **opts).peak_bytes / MIB
                 for name, opts in (("default settings", {}), ("MEMORY_PLAN", MEMORY_PLAN))}
        print("ONNX Runtime's plan, activations without the input: "
              + "; ".join(f"{name} {mib:.1f} MiB" for name, mib in plans.items()))
    return 0
