"""``irprune memory ARCH_OR_YAML --size 1080x2048``: peak activation memory, groups, a plot."""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import nn

from ..archs import build_arch, list_archs
from ..integrations.basicsr.archs import BASICSR_TO_ARCH
from ..memory import TraceError, estimate_peak_memory, measure_both
from ..vocabulary import format_bytes
from . import add_command
from ._args import hw_size, int_at_least, json_object, output_file, output_file_ending

_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def build_model(target: str, arch_args: dict[str, Any]) -> tuple[nn.Module, str, dict[str, Any]]:
    """A registered arch name or a BasicSR YAML path -> (model, arch name, kwargs)."""
    path = Path(target)
    if path.suffix.lower() in (".yml", ".yaml"):
        if not path.is_file():
            raise FileNotFoundError(f"no such YAML file: {target}")
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
    p = add_command(
        subparsers, "memory",
        "Estimate the peak activation memory of one inference forward (exact liveness "
        "over the torch.export operator order, on the meta device: nothing is "
        "allocated), the MOSP pruning groups and the tensors live at the peak.")
    p.add_argument("target", metavar="ARCH_OR_YAML",
                   help="a registered arch (sid_unet, res_unet, edsr, ...) or a BasicSR YAML with network_g")
    p.add_argument("--size", type=hw_size, default="1080x2048", help="input HEIGHTxWIDTH")
    p.add_argument("--batch", type=int_at_least(1), default=1, help="batch size")
    p.add_argument("--channels", type=int_at_least(1), default=None, help="input channels (default: from the arch)")
    p.add_argument("--arch-args", type=json_object, default="{}",
                   help="JSON kwargs for the arch, e.g. '{\"width\": 0.5}'")
    p.add_argument("--dtype", choices=sorted(_DTYPES), default="float32", help="activation dtype")
    p.add_argument("--top", type=int_at_least(1), default=5, help="how many pruning groups to list")
    p.add_argument("--plot", type=output_file_ending(".png"), default=None, help="write a PNG of live MiB over steps here")
    p.add_argument("--measure", action="store_true",
                   help="also run the model for real and measure (scheduled and eager); allocates memory")
    p.add_argument("--json", type=output_file, default=None, help="write the figures as JSON here")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Print the peak, the top groups and the tensors at the peak; optionally plot/measure."""
    h, w = args.size
    if args.measure and args.dtype != "float32":
        raise ValueError("--measure runs float32 only; drop --dtype or --measure")
    model, name, kwargs = build_model(args.target, args.arch_args)
    expected = _in_channels(model, kwargs)
    c = args.channels or expected
    shape = (args.batch, c, h, w)
    try:
        profile = estimate_peak_memory(model, shape, dtype=_DTYPES[args.dtype])
    except (TraceError, ValueError) as exc:
        if c != expected:
            raise ValueError(f"--channels {c}: {name} takes {expected}-channel inputs; drop --channels "
                             f"or pass --channels {expected}") from None
        raise ValueError(f"{name} at input {list(shape)} cannot be analysed: {exc}") from None
    print(f"{name} {kwargs or ''} input {list(shape)} {args.dtype}: "
          f"{sum(p.numel() for p in model.parameters()):,} params; "
          f"estimated in {profile.extra['export_s'] + profile.extra['analysis_s']:.2f} s")
    print(profile.summary(top=args.top))
    result: dict[str, Any] = {"arch": name, "arch_args": kwargs, "input_shape": list(shape),
                              "dtype": args.dtype, "peak_bytes": profile.peak_bytes,
                              "peak_step": profile.peak_step, "steps": len(profile.steps)}
    if args.measure:
        measured = measure_both(model, torch.rand(shape))
        print(f"measured: scheduled {format_bytes(measured.scheduled)}, eager (as written) "
              f"{format_bytes(measured.eager)} (+{format_bytes(measured.eager_overhead)} held by Python locals)")
        result.update(measured_scheduled=measured.scheduled, measured_eager=measured.eager)
    if args.plot is not None:
        title = f"{name}: live activations of one forward, input HxW {h}x{w}, batch {args.batch}, {args.dtype}"
        print(f"plot: {profile.plot(args.plot, title=title)}")
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=2))
    return 0
