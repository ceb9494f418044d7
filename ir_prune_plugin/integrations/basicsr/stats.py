"""Numbers logged by IRPruneModel after each structural change (text log and tensorboard)."""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ...macs import kept_macs, layer_macs
from ...memory import estimate_peak_memory
from ...sparsity import masks as mk
from .options import PruningConfig, mosp_options


def nm_plan(net: nn.Module) -> dict[str, tuple[int, int]]:
    """``{layer: (N, M)}`` of the N:M masks currently on ``net`` (empty when there are none)."""
    plan = {}
    for name, m in net.named_modules():
        mask = mk.mask_module(m)
        if mask is not None:
            plan[name] = (int(mask.N), int(mask.M))
    return plan


def nm_macs_ratio(net: nn.Module, example: torch.Tensor) -> float | None:
    """Kept / dense MACs of the N:M layers of ``net`` (None when it has no N:M mask)."""
    plan = nm_plan(net)
    if not plan:
        return None
    dense = layer_macs(net, example, names=list(plan))
    return kept_macs(dense, plan) / float(sum(dense.values()))


def peak_memory_mb(net: nn.Module, size: tuple[int, ...]) -> float:
    """Estimated peak activation memory (MiB) of one forward at ``size`` (meta tensors, no allocation)."""
    return estimate_peak_memory(net, torch.empty(size, device="meta")).peak_bytes / 2 ** 20


def network_stats(net: nn.Module, cfg: PruningConfig, example: torch.Tensor, sls: Any,
                  phase: str) -> dict[str, float]:
    """params (M), MACs of the weight layers (G, at ``pruning.input_size``), and the budget
    quantity: estimated peak memory (MiB) for MOSP, kept/dense MACs of the N:M layers for SLS.

    With N:M masks (SLS), ``params_m`` and ``macs_g`` are the N:M-effective figures (an N:M layer
    counts N/M of its weights and MACs) and ``params_m_dense`` / ``macs_g_dense`` the dense ones.
    """
    params = sum(p.numel() for n, p in net.named_parameters() if not n.endswith(".scores"))
    macs = layer_macs(net, example)
    out = {"params_m": params / 1e6, "macs_g": sum(macs.values()) / 1e9}
    if cfg.method == "mosp":
        out["peak_mb"] = peak_memory_mb(net, tuple(mosp_options(cfg).memory_input_size))
        return out
    plan = nm_plan(net)
    searched = getattr(getattr(sls, "pruner", sls), "plan", None)  # SLSStage or a bare pruner
    if not plan and isinstance(searched, dict):
        plan = {k: tuple(v) for k, v in searched.items()}
    if plan:
        out.update(params_m_dense=out["params_m"], macs_g_dense=out["macs_g"],
                   params_m=mk.kept_params(net, plan) / 1e6, macs_g=kept_macs(macs, plan) / 1e9)
    ratio = sls.kept_ratio() if sls is not None and sls.searching else nm_macs_ratio(net, example)
    out["macs_budget"] = float(cfg.budget)
    if ratio is not None:
        out["macs_ratio"] = float(ratio)
    return out
