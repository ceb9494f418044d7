"""L1 filter pruning at matched MACs through Torch-Pruning (the channel baseline of the SLS paper)."""
from __future__ import annotations

import copy
import logging
from typing import Any, Iterable

from torch import nn

from ..macs import total_macs
from ..inputs import check_example_inputs
from .magnitude import bisect_ratio, magnitude_prune

__all__ = ["l1_filter_prune"]

log = logging.getLogger(__name__)


def _prune(model: nn.Module, inputs: tuple, ratio: float, ignored: list[str]) -> nn.Module:
    return magnitude_prune(copy.deepcopy(model), inputs, ratio, ignored_layers=ignored, p=1)


def l1_filter_prune(model: nn.Module, example_inputs: Any, target_macs: float, *,
                    ignored_layers: Iterable[str] | None = None, tol: float = 0.01, iters: int = 8) -> nn.Module:
    """Physically prune output channels by L1 norm (Torch-Pruning) so total MACs <= ``target_macs``.

    The uniform channel ratio is bisected; the result is the least-pruned model whose weight
    MACs (same counter as SLS) do not exceed the target. PixelShuffle and Compactor rules come
    from the channel engine (:mod:`.tp_rules`; layers producing the output are kept);
    ``ignored_layers`` adds layers to keep whole. Returns a new model.
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
        ignored = list(ignored_layers)

    def attempt(ratio: float) -> tuple[nn.Module, float]:
        cand = _prune(model, inputs, ratio, ignored)
        return cand, total_macs(cand, inputs)

    best, hi = bisect_ratio(attempt, lambda c: c[1] <= target_macs, 0.0, 0.99, iters,
                            close_enough=lambda c: c[1] >= target_macs * (1 - tol))
    if best is None:
        raise ValueError(f"L1 filter pruning cannot reach {target_macs:.0f} MACs (dense {dense:.0f}) "
                         "with the ignored layers kept whole")
    log.info("L1 filter pruning: %.0f -> %.0f MACs (target %.0f), ratio %.3f", dense, best[1], target_macs, hi)
    return best[0]
