"""Numbers logged by IRPruneModel after each structural change (text log and tensorboard)."""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .options import PruningConfig


def nm_plan(net: nn.Module) -> dict[str, tuple[int, int]]:
    """``{layer: (N, M)}`` of the N:M masks currently on ``net`` (empty when there are none)."""
    from ...sparsity import masks as mk
    plan = {}
    for name, m in net.named_modules():
        mask = mk.mask_module(m)
        if mask is not None:
            plan[name] = (int(mask.N), int(mask.M))
    return plan


def nm_macs_ratio(net: nn.Module, example: torch.Tensor) -> float | None:
    """Kept / dense MACs of the N:M layers of ``net`` (None when it has no N:M mask)."""
    from ...sparsity import kept_macs, layer_macs
    plan = nm_plan(net)
    if not plan:
        return None
    dense = layer_macs(net, example, names=list(plan))
    return kept_macs(dense, plan) / float(sum(dense.values()))


def peak_memory_mb(net: nn.Module, size: tuple[int, ...]) -> float:
    """Estimated peak activation memory (MiB) of one forward at ``size`` (meta tensors, no allocation)."""
    from ...memory import estimate_peak_memory
    return estimate_peak_memory(net, torch.empty(size, device="meta")).peak_bytes / 2 ** 20


def network_stats(net: nn.Module, cfg: PruningConfig, example: torch.Tensor, sls: Any,
                  phase: str) -> dict[str, float]:
    """params (M), dense MACs of the weight layers (G, at ``pruning.input_size``), and the budget
    quantity: estimated peak memory (MiB) for MOSP, kept/dense MACs of the N:M layers for SLS."""
    from ...sparsity import layer_macs
    params = sum(p.numel() for n, p in net.named_parameters() if not n.endswith(".scores"))
    out = {"params_m": params / 1e6, "macs_g": sum(layer_macs(net, example).values()) / 1e9}
    if cfg.method == "mosp":
        from .methods import mosp_options
        out["peak_mb"] = peak_memory_mb(net, tuple(mosp_options(cfg).memory_input_size))
    else:
        ratio = sls.kept_ratio() if sls is not None and sls.searching else nm_macs_ratio(net, example)
        out["macs_budget"] = float(cfg.budget)
        if ratio is not None:
            out["macs_ratio"] = float(ratio)
    return out
