"""L1 filter pruning at matched MACs through Torch-Pruning (the channel baseline of the SLS paper)."""
from __future__ import annotations

import copy
import logging
from typing import Any, Iterable

import torch
from torch import nn

from .._inputs import check_example_inputs
from .macs import layer_macs

log = logging.getLogger(__name__)


def _prune(model: nn.Module, inputs: tuple, ratio: float, ignored: list[nn.Module]) -> nn.Module:
    import torch_pruning as tp

    work = copy.deepcopy(model)
    names = {m: n for n, m in model.named_modules()}
    work_mods = dict(work.named_modules())
    ign = [work_mods[names[m]] for m in ignored]
    from ..integrations.torch_pruning import CompactorMagnitudeImportance, requires_grad_kept, tp_kwargs

    extra = tp_kwargs(work, inputs, ignored_layers=ign)
    with torch.enable_grad(), requires_grad_kept(work, trace=True):  # a frozen model traces whole
        pruner = tp.pruner.MetaPruner(work, inputs, importance=CompactorMagnitudeImportance(p=1),
                                      pruning_ratio=ratio, **extra)
        pruner.step()
    return work


def total_macs(model: nn.Module, example_inputs: Any) -> float:
    """MACs of every Conv/ConvTranspose/Linear/Compactor weight for one forward."""
    return float(sum(layer_macs(model, example_inputs).values()))


def l1_filter_prune(model: nn.Module, example_inputs: Any, target_macs: float, *,
                    ignored_layers: Iterable[str] | None = None, tol: float = 0.01, iters: int = 8) -> nn.Module:
    """Physically prune output channels by L1 norm (Torch-Pruning) so total MACs <= ``target_macs``.

    The uniform channel ratio is bisected; the result is the least-pruned model whose weight
    MACs (same counter as SLS) do not exceed the target. PixelShuffle and Compactor rules come
    from :mod:`ir_prune_plugin.integrations.torch_pruning` (layers producing the output are
    kept); ``ignored_layers`` adds layers to keep whole. Returns a new model.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    inputs = check_example_inputs(model, example_inputs)
    dense = total_macs(model, inputs)
    if not 0 < target_macs < dense:
        raise ValueError(f"target_macs must be in (0, {dense:.0f}) (the dense MACs), got {target_macs}")
    mods = dict(model.named_modules())
    if ignored_layers is None:
        ignored = []
    else:
        unknown = [n for n in ignored_layers if n not in mods]
        if unknown:
            raise ValueError(f"ignored_layers names unknown layers {unknown}")
        ignored = [mods[n] for n in ignored_layers]
    lo, hi, best = 0.0, 0.99, None
    for _ in range(iters):
        mid = (lo + hi) / 2
        cand = _prune(model, inputs, mid, ignored)
        macs = total_macs(cand, inputs)
        if macs <= target_macs:
            best, hi = (cand, macs), mid
            if macs >= target_macs * (1 - tol):
                break
        else:
            lo = mid
    if best is None:
        raise ValueError(f"L1 filter pruning cannot reach {target_macs:.0f} MACs (dense {dense:.0f}) "
                         "with the ignored layers kept whole")
    log.info("L1 filter pruning: %.0f -> %.0f MACs (target %.0f), ratio %.3f", dense, best[1], target_macs, hi)
    return best[0]
