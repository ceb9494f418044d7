"""MOSP sensitivities by numeric differentiation: mask the k least important channels, fit a slope."""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import torch
from torch import nn

from .units import UnitGraph

__all__ = ["fit_slope", "measure_sensitivities", "Evaluator"]

Evaluator = Callable[[nn.Module], float]


def fit_slope(counts: Sequence[float], increases: Sequence[float]) -> float:
    """Least-squares slope of a line through the origin: loss increase per removed channel.

    The origin is exact (removing nothing changes nothing), so only the slope is fitted.
    """
    k = np.asarray(counts, dtype=np.float64)
    d = np.asarray(increases, dtype=np.float64)
    if k.shape != d.shape or k.ndim != 1 or k.size == 0:
        raise ValueError(f"counts and increases must be 1-D, non-empty and of one length, "
                         f"got {k.shape} and {d.shape}")
    if np.any(k <= 0):
        raise ValueError(f"channel counts must be positive, got {k.tolist()}")
    if not np.all(np.isfinite(d)):
        raise ValueError(f"loss increases must be finite, got {d.tolist()}")
    return float(np.dot(k, d) / np.dot(k, k))


def call_evaluate(evaluate: Evaluator, model: nn.Module) -> float:
    """Run ``evaluate`` in eval mode without gradients and check it returns a finite number."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            value = evaluate(model)
    finally:
        model.train(was_training)
    if isinstance(value, torch.Tensor):
        value = value.detach().float().item()
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"evaluate(model) must return a float loss, got {type(value).__name__}") from None
    if not np.isfinite(value):
        raise ValueError(f"evaluate(model) returned a non-finite loss {value!r}")
    return value


def measure_sensitivities(graph: UnitGraph, roots: Sequence[str], removable: Sequence[int],
                          evaluate: Evaluator, points: Sequence[int], step: int = 1,
                          base_loss: float | None = None) -> tuple[list[float], dict[str, list[float]]]:
    """Per-unit slope of the loss vs channels masked (least important first).

    Point ``p`` masks ``p * step`` channels (capped at what the unit may lose). Returns the
    slopes and the raw ``{root: [loss at each point]}`` for the history.
    """
    model = graph.model
    base = call_evaluate(evaluate, model) if base_loss is None else base_loss
    slopes: list[float] = []
    raw: dict[str, list[float]] = {}
    for root, limit in zip(roots, removable):
        counts = sorted({min(p * step, limit) for p in points if limit > 0})
        if not counts:
            slopes.append(0.0)
            raw[root] = []
            continue
        order = graph.channel_order(root)
        losses = []
        for k in counts:
            with graph.masked(root, order[:k]):
                losses.append(call_evaluate(evaluate, model))
        raw[root] = losses
        slopes.append(fit_slope(counts, [v - base for v in losses]))
    return slopes, raw
