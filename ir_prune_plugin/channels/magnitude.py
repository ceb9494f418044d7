"""Magnitude channel pruning through Torch-Pruning's ``MetaPruner`` with the engine's rules, and the
bisection of its ratio against a cost (the memory-blind and MACs-matched baselines share both)."""
from __future__ import annotations

from typing import Any, Callable, Iterable, TypeVar

import torch
import torch_pruning as tp
from torch import nn

from ..vocabulary import as_tuple
from .tp_graph import requires_grad_kept, tp_kwargs
from .tp_rules import CompactorMagnitudeImportance

__all__ = ["bisect_ratio", "magnitude_prune"]

T = TypeVar("T")


def magnitude_prune(model: nn.Module, example_inputs: Any, ratio: float, *,
                    ignored_layers: Iterable[nn.Module | str] | None = None, p: int = 2,
                    global_pruning: bool = False, max_ratio: float = 1.0,
                    round_to: int | None = None) -> nn.Module:
    """Remove ``ratio`` of the channels by group Lp magnitude, in place; returns ``model``.

    ``global_pruning`` ranks channels across layers (else every layer loses the same share);
    ``max_ratio`` caps any one layer's share (Torch-Pruning's ``max_pruning_ratio``). The layers
    producing the network output are kept whole; the train/eval mode is restored.
    """
    inputs = as_tuple(example_inputs)
    kwargs = tp_kwargs(model, inputs, ignored_layers=ignored_layers)
    was_training = model.training
    try:
        with torch.enable_grad(), requires_grad_kept(model, trace=True):  # a frozen model traces whole
            pruner = tp.pruner.MetaPruner(
                model, inputs, importance=CompactorMagnitudeImportance(p=p), global_pruning=global_pruning,
                pruning_ratio=ratio, max_pruning_ratio=max_ratio, round_to=round_to, **kwargs)
            pruner.step()
    finally:
        model.train(was_training)
    return model


def bisect_ratio(attempt: Callable[[float], T], fits: Callable[[T], bool], lo: float, hi: float,
                 iterations: int, *, best: T | None = None,
                 close_enough: Callable[[T], bool] | None = None) -> tuple[T | None, float]:
    """Bisect the pruning ratio between ``lo`` (too little) and ``hi`` for the least-pruned candidate
    that ``fits`` the budget. ``attempt(ratio)`` builds a candidate; ``best`` is a fitting one known
    at ``hi``; ``close_enough`` stops early. Returns (the best fitting candidate or None, its ratio).
    """
    for _ in range(iterations):
        mid = (lo + hi) / 2
        cand = attempt(mid)
        if fits(cand):
            hi, best = mid, cand
            if close_enough is not None and close_enough(cand):
                break
        else:
            lo = mid
    return best, hi
