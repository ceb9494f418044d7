"""Shared skeleton of the N:M pruners: validation, working copy, layer selection, finalize."""
from __future__ import annotations

import copy
import logging
from dataclasses import dataclass
from typing import Any, Iterable

import torch
from torch import nn
from torch.utils.data import Dataset

from . import masks as mk
from .._inputs import check_example_inputs
from ..channels.rules.reparam import fuse_reparam
from ..loops import fit as _fit
from .macs import kept_macs, layer_macs
from .nm import check_n_m, check_nm, eligible_layers

log = logging.getLogger(__name__)

PLAN_ATTR = "irprune_nm_plan"


@dataclass(frozen=True)
class FitOptions:
    """Settings of the convenience ``fit`` loop (Adam + L1)."""

    lr: float = 1e-4
    batch_size: int = 8
    seed: int = 0
    progress: bool = True


def check_ratio(name: str, value: Any) -> float:
    """A ratio strictly inside (0, 1), else ``TypeError``/``ValueError`` naming it."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a float in (0, 1), got {value!r} ({type(value).__name__})")
    if not 0.0 < float(value) < 1.0:
        raise ValueError(f"{name} must be a ratio in (0, 1) (e.g. 0.25 keeps a quarter), got {value}")
    return float(value)


class NMPrunerBase:
    """Works on a deep copy (``self.model``): the caller's model is never modified.

    Subclasses attach their mask parametrizations to ``self.layers`` in ``__init__`` and may
    override ``regularization``/``step``. ``finalize()`` squashes the masks and returns the copy.
    """

    def __init__(self, model: nn.Module, example_inputs: Any, M: int,
                 ignored_layers: Iterable[str] | None = None) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        check_n_m(1, M)
        inputs = check_example_inputs(model, example_inputs)
        self.M = M
        work = copy.deepcopy(model)
        fuse_reparam(work)   # re-parameterised blocks would re-densify the masks in every forward
        all_macs = layer_macs(work, inputs)
        if ignored_layers is None:
            order = list(all_macs)
            ignored = {order[0], order[-1]} if len(order) > 1 else set()
        elif isinstance(ignored_layers, str):
            raise TypeError(f"ignored_layers must be a sequence of module names, got the str {ignored_layers!r}")
        else:
            ignored = set(ignored_layers)
            unknown = sorted(ignored - {n for n, _ in work.named_modules()})
            if unknown:
                raise ValueError(f"ignored_layers names unknown layers {unknown}")
        ok, dense = eligible_layers(work, M, ignored)
        ok = {n: m for n, m in ok.items() if n in all_macs}
        if not ok:
            raise ValueError(f"no layer of {type(model).__name__} is eligible for N:M with M={M} "
                             f"(left dense: {dense or 'no Conv2d/ConvTranspose2d/Linear layers'}); "
                             "try a smaller M or fewer ignored_layers")
        self.model = work
        self.example_inputs = inputs
        self.layers: dict[str, nn.Module] = ok
        self.dense_layers = dense
        self.all_macs = all_macs
        self.dense_macs = {n: all_macs[n] for n in ok}
        self.total_dense = float(sum(self.dense_macs.values()))
        self._finalized = False

    # --- hooks for a user's own training loop -------------------------------------------
    def regularization(self) -> torch.Tensor:
        """Term to add to the task loss (zero for plain magnitude masks)."""
        return torch.zeros((), device=self._device())

    def step(self) -> None:
        """Call after each ``optimizer.step()``."""
        self._check_live()

    def param_groups(self, lr: float) -> list[dict]:
        """Optimizer parameter groups for ``self.model``."""
        return [{"params": [p for p in self.model.parameters() if p.requires_grad], "lr": lr}]

    # --- results ---------------------------------------------------------------------------
    @property
    def plan(self) -> dict[str, tuple[int, int]]:
        """``{layer_name: (N, M)}`` for every N:M layer (current N during a search)."""
        if self._finalized:
            return dict(getattr(self.model, PLAN_ATTR))
        return {n: (self._n_of(n), self.M) for n in self.layers}

    def _n_of(self, name: str) -> int:
        return mk.mask_module(self.layers[name]).N

    def macs(self) -> dict[str, float]:
        """Dense and kept MACs of the N:M layers and of the whole model (per example input)."""
        kept = kept_macs(self.dense_macs, self.plan)
        other = float(sum(v for n, v in self.all_macs.items() if n not in self.layers))
        return {"prunable_dense": self.total_dense, "prunable_kept": kept,
                "ratio": kept / self.total_dense, "model_dense": self.total_dense + other,
                "model_kept": kept + other}

    def finalize(self) -> nn.Module:
        """Squash the masks into plain weights; returns the N:M model (records ``irprune_nm_plan``)."""
        self._check_live()
        plan = self.plan
        for m in self.layers.values():
            mk.squash(m)
        setattr(self.model, PLAN_ATTR, plan)
        check_nm(self.model, plan)
        self._finalized = True
        log.info("N:M model finalized: %d layers, kept MACs ratio %.4f", len(plan),
                 kept_macs(self.dense_macs, plan) / self.total_dense)
        return self.model

    # --- convenience loop ------------------------------------------------------------------
    def fit(self, data: Dataset | Iterable, steps: int, options: FitOptions = FitOptions()) -> list[float]:
        """Train ``self.model`` (L1 + ``regularization()``) for ``steps``, calling ``step()`` each time."""
        self._check_live()
        return _fit(self.model, data, steps, lr=options.lr, param_groups=self.param_groups(options.lr),
                    cosine=False, batch_size=options.batch_size, seed=options.seed,
                    extra_loss=self.regularization, after_step=lambda _i: self.step(),
                    progress=options.progress, desc=type(self).__name__)

    def _check_live(self) -> None:
        if self._finalized:
            raise RuntimeError("this pruner was finalized; build a new one to prune again")

    def _device(self) -> torch.device:
        return next(self.model.parameters()).device

    def _transposed(self, name: str) -> bool:
        return isinstance(self.layers[name], nn.ConvTranspose2d)
