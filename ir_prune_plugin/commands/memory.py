"""``irprune memory ARCH_OR_YAML --size 2048x1080``: peak activation memory, groups, a plot."""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .._inputs import parse_wh

_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def build_model(target: str, arch_args: dict[str, Any]) -> tuple[nn.Module, str, dict[str, Any]]:
    """A registered arch name or a BasicSR YAML path -> (model, arch name, kwargs)."""
    from ..archs import build_arch, list_archs

    path = Path(target)
    if path.suffix.lower() in (".yml", ".yaml"):
        if not path.is_file():
            raise FileNotFoundError(f"no such YAML file: {target}")
        import yaml

        from ..integrations.basicsr.archs import BASICSR_TO_ARCH
        opt = yaml.safe_load(path.read_text()) or {}
        net = dict(opt.get("network_g") or {}) if isinstance(opt, dict) else {}
        if "type" not in net:
            raise ValueError(f"{target} has no network_g.type; expected e.g. 'type: EDSR'")
        net_type = str(net.pop("type"))
        name = BASICSR_TO_ARCH.get(net_type, net_type.lower())
        if name not in list_archs():
            raise ValueError(f"network_g.type {net_type!r} in {target} is not supported; known: "
                             f"{', '.join(sorted(BASICSR_TO_ARCH))}")
        kwargs = {**net, **arch_args}
    else:
        name, kwargs = target, dict(arch_args)
    return build_arch(name, **kwargs), name.lower(), kwargs


def _in_channels(model: nn.Module, kwargs: dict[str, Any]) -> int:
    for key in ("in_ch", "num_in_ch", "in_channels"):
        if key in kwargs:
            return int(kwargs[key])
    first = next((m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Conv1d))), None)
    return int(first.in_channels) if first is not None else 3


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``irprune memory``."""
    p = subparsers.add_parser(
        "memory", help="peak activation memory of a network at a given input size",
        description="Estimate the peak activation memory of one inference forward (exact liveness "
                    "over the torch.export operator order, on the meta device: nothing is "
                    "allocated), the MOSP pruning groups and the tensors live at the peak.")
    p.add_argument("target", metavar="ARCH_OR_YAML",
                   help="a registered arch (sid_unet, res_unet, edsr, ...) or a BasicSR YAML with network_g")
    p.add_argument("--size", default="2048x1080", help="input WIDTHxHEIGHT (default 2048x1080)")
    p.add_argument("--batch", type=int, default=1, help="batch size (default 1)")
    p.add_argument("--channels", type=int, default=None, help="input channels (default: from the arch)")
    p.add_argument("--arch-args", default="{}", help="JSON kwargs for the arch, e.g. '{\"width\": 0.5}'")
    p.add_argument("--dtype", choices=sorted(_DTYPES), default="float32", help="activation dtype")
    p.add_argument("--top", type=int, default=5, help="how many pruning groups to list (default 5)")
    p.add_argument("--plot", type=Path, default=None, help="write a PNG of live MB over steps here")
    p.add_argument("--measure", action="store_true",
                   help="also run the model for real and measure (scheduled and eager); allocates memory")
    p.add_argument("--json", type=Path, default=None, help="write the figures as JSON here")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Print the peak, the top groups and the tensors at the peak; optionally plot/measure."""
    from ..memory import estimate_peak_memory, fmt_mb, measure_both

    h, w = parse_wh(args.size)
    if args.batch < 1 or args.top < 1:
        raise ValueError(f"--batch and --top must be >= 1, got {args.batch} and {args.top}")
    try:
        arch_args = json.loads(args.arch_args)
    except json.JSONDecodeError as exc:
        raise ValueError(f"--arch-args must be a JSON object, got {args.arch_args!r} ({exc})") from None
    if not isinstance(arch_args, dict):
        raise ValueError(f"--arch-args must be a JSON object such as '{{\"width\": 0.5}}', got {args.arch_args!r}")
    if args.plot is not None and args.plot.suffix.lower() != ".png":
        raise ValueError(f"--plot must name a .png file, got {str(args.plot)!r}")
    model, name, kwargs = build_model(args.target, arch_args)
    c = args.channels or _in_channels(model, kwargs)
    shape = (args.batch, c, h, w)
    profile = estimate_peak_memory(model, shape, dtype=_DTYPES[args.dtype])
    print(f"{name} {kwargs or ''} input {list(shape)} {args.dtype}: "
          f"{sum(p.numel() for p in model.parameters()):,} params; "
          f"estimated in {profile.extra['export_s'] + profile.extra['analysis_s']:.2f} s")
    print(profile.summary(top=args.top))
    result: dict[str, Any] = {"arch": name, "arch_args": kwargs, "input_shape": list(shape),
                              "dtype": args.dtype, "peak_bytes": profile.peak_bytes,
                              "peak_step": profile.peak_step, "steps": len(profile.steps)}
    if args.measure:
        if args.dtype != "float32":
            raise ValueError("--measure runs float32 only; drop --dtype or --measure")
        measured = measure_both(model, torch.rand(shape))
        print(f"measured: scheduled {fmt_mb(measured.scheduled)}, eager (as written) "
              f"{fmt_mb(measured.eager)} (+{fmt_mb(measured.eager_overhead)} held by Python locals)")
        result.update(measured_scheduled=measured.scheduled, measured_eager=measured.eager)
    if args.plot is not None:
        print(f"plot: {profile.plot(args.plot, title=f'{name} at {w}x{h} ({args.dtype})')}")
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2))
    return 0
