"""Name -> builder registry for the networks the plugin knows how to rebuild."""
from __future__ import annotations

import importlib
from typing import Any, Callable

from torch import nn

from ..compat import apply_basicsr_shims
from ..vocabulary import SPEC_ATTR


def _ours(cls_name: str) -> Callable[..., nn.Module]:
    def build(**kw: Any) -> nn.Module:
        return getattr(importlib.import_module("ir_prune_plugin.archs"), cls_name)(**kw)
    return build


def _basicsr(module: str, cls_name: str, defaults: dict[str, Any]) -> Callable[..., nn.Module]:
    def build(**kw: Any) -> nn.Module:
        apply_basicsr_shims()  # basicsr's archs are imported only when one is built (heavy)
        cls = getattr(importlib.import_module(f"basicsr.archs.{module}"), cls_name)
        return cls(**{**defaults, **kw})
    return build


_RGB = {"num_in_ch": 3, "num_out_ch": 3}
ARCHS: dict[str, Callable[..., nn.Module]] = {
    "sid_unet": _ours("SIDUNet"),
    "res_unet": _ours("ResUNet"),
    "edsr": _basicsr("edsr_arch", "EDSR", {**_RGB, "num_feat": 64, "num_block": 16, "upscale": 2}),
    "msrresnet": _basicsr("srresnet_arch", "MSRResNet", {**_RGB, "num_feat": 64, "num_block": 16, "upscale": 4}),
    "rcan": _basicsr("rcan_arch", "RCAN", {**_RGB, "num_feat": 64, "num_group": 10, "num_block": 20, "upscale": 4}),
    "rrdbnet": _basicsr("rrdbnet_arch", "RRDBNet", {**_RGB, "num_feat": 64, "num_block": 23, "scale": 4}),
    "srvgg": _basicsr("srvgg_arch", "SRVGGNetCompact", {**_RGB, "num_feat": 64, "num_conv": 16, "upscale": 4}),
}


def list_archs() -> list[str]:
    """Names accepted by :func:`build_arch`."""
    return sorted(ARCHS)


def build_arch(name: str, **kwargs: Any) -> nn.Module:
    """Build a registered network by name; the module remembers ``{'type': name, **kwargs}``."""
    key = name.lower()
    if key not in ARCHS:
        raise ValueError(f"unknown arch {name!r}; known archs: {', '.join(list_archs())}")
    model = ARCHS[key](**kwargs)
    setattr(model, SPEC_ATTR, {"type": key, **kwargs})
    return model


def arch_spec(model: nn.Module) -> dict[str, Any] | None:
    """The ``{'type': ..., **kwargs}`` spec a model was built from, or ``None``."""
    spec = getattr(model, SPEC_ATTR, None)
    return dict(spec) if spec is not None else None
