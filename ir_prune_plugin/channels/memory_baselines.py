"""Baselines for MOSP at an equal peak-memory budget.

- :func:`uniform_width_to_budget`: the reference net rebuilt with every width scaled by one
  factor, the largest factor whose estimated peak meets the budget (trained from scratch by
  the caller).
- :func:`magnitude_prune_to_budget`: memory-blind global magnitude pruning (Torch-Pruning
  ``MetaPruner``, ``global_pruning=True``, group L2 magnitude), its channel ratio bisected
  until the estimated peak meets the budget.
- MOSP without compactors is ``MOSPPruner(..., options=MOSPOptions(compactors=False))``.
"""
from __future__ import annotations

import copy
import logging
from dataclasses import dataclass
from typing import Any, Sequence

import torch
from torch import nn

from ..archs import build_arch
from ..memory import estimate_peak_memory
from ..memory.groups import GroupCost
from ..vocabulary import CHANNEL_PRUNABLE_TYPES, format_bytes, out_channels
from .magnitude import bisect_ratio, magnitude_prune
from .safety import check_forward, reference_shapes

log = logging.getLogger(__name__)

__all__ = ["BaselineResult", "LinearPeak", "estimate_peak", "uniform_width_to_budget", "magnitude_prune_to_budget"]

_WIDTH_KEYS = ("width", "num_feat")


@dataclass(frozen=True)
class BaselineResult:
    """A baseline model, the knob that produced it and its estimated peak (bytes)."""

    model: nn.Module
    knob: float
    peak_bytes: int


def estimate_peak(model: nn.Module, memory_input_size: Sequence[int]) -> int:
    """Estimated peak activation bytes of ``model`` at ``memory_input_size`` (meta device)."""
    return int(estimate_peak_memory(model, torch.empty(tuple(memory_input_size), device="meta")).peak_bytes)


class LinearPeak:
    """Peak of models sharing one graph, from their layer widths: ``max_g fixed_g + sum(bpc * width)``.

    One ``torch.export`` profile of a reference model serves every candidate whose graph differs
    only in channel counts (a width-scaled rebuild, a channel-pruned copy); spatial sizes, and
    so bytes per channel, do not change. ``exact`` is False when the profile's groups do not
    cover the peak (then callers fall back to :func:`estimate_peak`).
    """

    def __init__(self, reference: nn.Module, memory_input_size: Sequence[int]) -> None:
        self.size = tuple(memory_input_size)
        profile = estimate_peak_memory(reference, torch.empty(self.size, device="meta"))
        self.costs = [GroupCost.from_group(g) for g in profile.groups]
        self.exact = bool(profile.groups) and max(g.bytes for g in profile.groups) == profile.peak_bytes

    def __call__(self, model: nn.Module) -> int:
        """Peak bytes of ``model`` (same graph as the reference)."""
        if not self.exact:
            return estimate_peak(model, self.size)
        widths = {n: out_channels(m) for n, m in model.named_modules() if isinstance(m, CHANNEL_PRUNABLE_TYPES)}
        return max(c.bytes(widths) for c in self.costs)


def uniform_width_to_budget(spec: dict[str, Any], budget_bytes: int, memory_input_size: Sequence[int],
                            *, iterations: int = 10) -> BaselineResult:
    """Largest uniform width factor of ``spec`` (``{'type': name, **kwargs}``) within ``budget_bytes``.

    Scales ``width`` (our U-Nets) or ``num_feat`` (BasicSR nets); the new model is randomly
    initialised.
    """
    if not isinstance(spec, dict) or "type" not in spec:
        raise ValueError(f"spec must be a dict with a 'type' key (see archs.arch_spec), got {spec!r}")
    kwargs = {k: v for k, v in spec.items() if k != "type"}
    key = next((k for k in _WIDTH_KEYS if k in kwargs), None)
    if key is None:
        probe = build_arch(spec["type"], **kwargs)
        if hasattr(probe, "width"):
            key, kwargs["width"] = "width", float(probe.width)
        else:                           # BasicSR nets: the registry's default num_feat
            key, kwargs["num_feat"] = "num_feat", 64
    base = kwargs[key]

    def build(factor: float) -> nn.Module:
        value = base * factor if key == "width" else max(1, int(round(base * factor)))
        return build_arch(spec["type"], **{**kwargs, key: value})

    peak_of = LinearPeak(build(1.0), memory_input_size)
    full = peak_of(build(1.0))
    if budget_bytes >= full:
        return BaselineResult(build(1.0), 1.0, full)
    lo, hi = 0.0, 1.0   # peak(lo) <= budget is unknown until probed; hi is over budget
    best: BaselineResult | None = None
    for _ in range(iterations):
        mid = (lo + hi) / 2
        if mid <= 0:
            break
        model = build(mid)
        peak = peak_of(model)
        if peak <= budget_bytes:
            lo, best = mid, BaselineResult(model, mid, peak)
        else:
            hi = mid
    if best is None:
        raise ValueError(f"no uniform width of {spec['type']} meets {format_bytes(budget_bytes)}")
    best = _confirmed(best, memory_input_size, budget_bytes)
    log.info("uniform width %.4f: peak %s (budget %s)", best.knob, format_bytes(best.peak_bytes),
             format_bytes(budget_bytes))
    return best


def _confirmed(res: BaselineResult, memory_input_size: Sequence[int], budget_bytes: int) -> BaselineResult:
    """Re-estimate the chosen model's peak from its own export (the linear model's check)."""
    peak = estimate_peak(res.model, memory_input_size)
    if peak != res.peak_bytes:
        log.warning("linear peak model said %d bytes, the estimate says %d", res.peak_bytes, peak)
    if peak > budget_bytes:
        raise RuntimeError(f"baseline peak {format_bytes(peak)} exceeds the budget {format_bytes(budget_bytes)}")
    return BaselineResult(res.model, res.knob, peak)


def magnitude_prune_to_budget(model: nn.Module, example_inputs: Any, budget_bytes: int,
                              memory_input_size: Sequence[int], *, ignored_layers: Sequence[str] = (),
                              max_ratio: float = 0.9, round_to: int | None = None,
                              scan_step: float = 0.1, iterations: int = 6,
                              uniform: bool = False) -> BaselineResult:
    """Memory-blind global L2 pruning with (about) the smallest channel ratio whose peak meets the budget.

    Works on copies; the caller's ``model`` is unchanged. ``max_ratio`` caps any one layer's
    pruning (Torch-Pruning's ``max_pruning_ratio``). ``uniform=True`` removes the same share of
    every layer's channels instead (a uniformly narrower net sliced from the trained one). The
    chosen net must run in train and eval mode with the dense net's output shapes
    (:class:`~.safety.BrokenForwardError` otherwise).
    """
    if not 0 < max_ratio < 1:
        raise ValueError(f"max_ratio must lie in (0, 1), got {max_ratio!r}")
    shapes = reference_shapes(model, example_inputs)
    names = list(ignored_layers)
    peak_of = LinearPeak(model, memory_input_size)

    def attempt(ratio: float) -> BaselineResult:
        work = copy.deepcopy(model)
        magnitude_prune(work, example_inputs, ratio, ignored_layers=names, p=2, global_pruning=not uniform,
                        max_ratio=max_ratio, round_to=round_to)
        return BaselineResult(work, ratio, peak_of(work))

    # The peak is not monotone in the global ratio (Torch-Pruning's per-layer cap redistributes
    # the cut at high ratios), so scan upwards for the first ratio that fits, then bisect below it.
    lo, best = 0.0, None
    grid = [round(r, 6) for r in torch.arange(scan_step, max_ratio + 1e-9, scan_step).tolist()]
    for ratio in grid:
        res = attempt(ratio)
        if res.peak_bytes <= budget_bytes:
            best = res
            break
        lo = ratio
    if best is None:
        raise ValueError(f"global magnitude pruning reaches no ratio in ({scan_step}, {max_ratio}] whose "
                         f"peak meets the budget {format_bytes(budget_bytes)} (memory-blind pruning keeps "
                         "the large early feature maps)")
    best, _ = bisect_ratio(attempt, lambda r: r.peak_bytes <= budget_bytes, lo, best.knob, iterations, best=best)
    best = _confirmed(best, memory_input_size, budget_bytes)
    check_forward(best.model, example_inputs, shapes,
                  change=f"{'uniform' if uniform else 'global'} magnitude pruning at ratio {best.knob:.4f}")
    log.info("%s magnitude ratio %.4f: peak %s (budget %s)", "uniform" if uniform else "global", best.knob,
             format_bytes(best.peak_bytes), format_bytes(budget_bytes))
    return best
