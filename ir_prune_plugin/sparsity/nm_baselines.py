"""N:M baselines on the SLS API shape: one-shot magnitude N:M and SR-STE (uniform N per layer)."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from . import masks as mk
from ..budgets import check_ratio
from .nm_pruner import NMPrunerBase
from .nm import check_n_m

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class NMOptions:
    """Settings shared by the uniform baselines. ``ignored_layers=None``: first/last layer dense."""

    refresh_every: int | None = None
    ignored_layers: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        every = self.refresh_every
        if every is not None and (isinstance(every, bool) or not isinstance(every, int) or every < 1):
            raise ValueError(f"refresh_every must be None or an int >= 1, got {every!r}")
        if self.ignored_layers is not None:
            if isinstance(self.ignored_layers, str) or any(not isinstance(n, str) for n in self.ignored_layers):
                raise TypeError(f"ignored_layers must be a sequence of module names or None, got {self.ignored_layers!r}")
            object.__setattr__(self, "ignored_layers", tuple(self.ignored_layers))


def _check_pruning_n_m(N: int, M: int) -> None:
    """An N:M pair that prunes something: ``1 <= N < M``."""
    check_n_m(N, M)
    if N == M:
        raise ValueError(f"N={N}, M={M} keeps every weight (nothing to prune); use N < M, e.g. N=2, M=4")


def n_for_budget(macs_budget: float, M: int) -> int:
    """Largest uniform N with N/M <= ``macs_budget`` (at least 1): the matched-MACs baseline."""
    check_ratio("macs_budget", macs_budget)
    check_n_m(1, M)
    return max(1, int(macs_budget * M + 1e-9))


class OneShotNM(NMPrunerBase):
    """One-shot magnitude N:M (ASP style): masks fixed from the weights, then finetune.

    ``refresh_every`` (off by default, as in ASP) recomputes the masks from the dense weights.
    Works on a deep copy; the caller's model is never modified.
    """

    def __init__(self, model: nn.Module, example_inputs: Any, N: int, M: int, *,
                 options: NMOptions = NMOptions()) -> None:
        _check_pruning_n_m(N, M)
        if not isinstance(options, NMOptions):
            raise TypeError(f"options must be NMOptions, got {type(options).__name__}")
        super().__init__(model, example_inputs, M, options.ignored_layers)
        self.N, self.options, self.steps_done = N, options, 0
        for name, m in self.layers.items():
            mk.attach(m, mk.FixedNMMask(m.weight.detach(), N, M, self._transposed(name)))

    def step(self) -> None:
        """After ``optimizer.step()``: optionally refresh the masks."""
        self._check_live()
        self.steps_done += 1
        every = self.options.refresh_every
        if every and self.steps_done % every == 0:
            for m in self.layers.values():
                mk.mask_module(m).refresh(mk.original(m).detach())


class SRSTEPruner(NMPrunerBase):
    """SR-STE (Zhou et al. 2021): sparse forward, dense straight-through backward, masks per step.

    The gradient on the dense weights is ``grad + lambda_w * (1 - mask) * W``: ``regularization()``
    returns ``lambda_w / 2 * ||(1 - mask) * W||^2`` whose gradient is exactly that term.
    """

    def __init__(self, model: nn.Module, example_inputs: Any, N: int, M: int, *, lambda_w: float = 2e-4,
                 options: NMOptions = NMOptions()) -> None:
        _check_pruning_n_m(N, M)
        if not isinstance(options, NMOptions):
            raise TypeError(f"options must be NMOptions, got {type(options).__name__}")
        if isinstance(lambda_w, bool) or not isinstance(lambda_w, (int, float)) or not 0 <= lambda_w < float("inf"):
            raise ValueError(f"lambda_w must be a float >= 0 (paper: 2e-4), got {lambda_w!r}")
        super().__init__(model, example_inputs, M, options.ignored_layers)
        self.N, self.lambda_w, self.options = N, float(lambda_w), options
        for name, m in self.layers.items():
            mk.attach(m, mk.STENMMask(N, M, self._transposed(name)))

    def regularization(self) -> torch.Tensor:
        """``lambda_w / 2 * sum ||(1 - mask) * W||^2`` over the N:M layers (the SR-STE decay)."""
        pairs = ((w, mk.mask_module(m).mask_of(w.detach())) for w, m in
                 ((mk.original(m), m) for m in self.layers.values()))
        return mk.srste_decay(pairs, self.lambda_w, self._device())
