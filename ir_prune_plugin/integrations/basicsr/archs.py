"""Our reference networks under BasicSR names, and the BasicSR-type -> ``build_arch`` mapping."""
from __future__ import annotations

from typing import Any, Mapping

from torch import nn

from ...archs import ResUNet, SIDUNet, build_arch
from ...vocabulary import SPEC_ATTR


class IRPruneSIDUNet(SIDUNet):
    """:class:`~ir_prune_plugin.archs.SIDUNet` for BasicSR YAML (``type: IRPruneSIDUNet``)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        setattr(self, SPEC_ATTR, {"type": "sid_unet", **kwargs})


class IRPruneResUNet(ResUNet):
    """:class:`~ir_prune_plugin.archs.ResUNet` for BasicSR YAML (``type: IRPruneResUNet``)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        setattr(self, SPEC_ATTR, {"type": "res_unet", **kwargs})


# BasicSR ``network_g.type`` -> name in ir_prune_plugin.archs (so pruned nets can be rebuilt).
BASICSR_TO_ARCH = {
    "IRPruneSIDUNet": "sid_unet", "IRPruneResUNet": "res_unet", "EDSR": "edsr",
    "MSRResNet": "msrresnet", "RCAN": "rcan", "RRDBNet": "rrdbnet", "SRVGGNetCompact": "srvgg",
}


def arch_name(network_opt: Mapping[str, Any]) -> str:
    """Our arch name for a ``network_g`` block, or a ValueError listing the supported types."""
    net_type = network_opt.get("type") if isinstance(network_opt, Mapping) else None
    if net_type not in BASICSR_TO_ARCH:
        raise ValueError(f"network_g.type {net_type!r} cannot be pruned by IRPruneModel; supported: "
                         f"{', '.join(sorted(BASICSR_TO_ARCH))}")
    return BASICSR_TO_ARCH[net_type]


def build_network_g(network_opt: Mapping[str, Any]) -> nn.Module:
    """Build ``network_g`` through :func:`build_arch` so the module carries its rebuild spec."""
    kwargs = {k: v for k, v in network_opt.items() if k != "type"}
    return build_arch(arch_name(network_opt), **kwargs)
