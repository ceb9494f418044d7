"""Shared skeleton of the N:M pruners: validation, working copy, layer selection, finalize."""
from __future__ import annotations

import copy
import logging
from dataclasses import dataclass
from typing import Any, Iterable

import torch
from torch import nn
from torch.utils.data import Dataset

from ..inputs import check_example_inputs
from ..channels.rules.reparam import fuse_reparam
from ..loops import fit as _fit
from ..macs import kept_macs, layer_macs
from ..vocabulary import PLAN_ATTR
from . import masks as mk
from .nm import check_n_m, check_nm, eligible_layers

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FitOptions:
    """Settings of the convenience ``fit`` loop (Adam + L1)."""

    lr: float = 1e-4
    batch_size: int = 8
    seed: int = 0
    progress: bool = True


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

    def reset_weights(self, model: nn.Module) -> None:
        """Take ``model``'s current weights (the same network, unmasked) under the masks, with the
        magnitude ranks refreshed from them: a pruner built earlier restarts from new weights."""
        self._check_live()
        mk.load_dense_state(self.model, model.state_dict())
        for module in self.layers.values():
            mask = mk.mask_module(module)
            if hasattr(mask, "refresh"):  # masks with magnitude ranks (SR-STE recomputes its own)
                mask.refresh(mk.original(module).detach())

    # --- state ---------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """The pruner's state in plain containers and CPU tensors: per layer its N and mask buffers
        (magnitude ranks; SLS scores), the step count and what subclasses add (:meth:`_extra_state`).

        With the model's weights it resumes a run exactly: build a fresh pruner on the same weights,
        then :meth:`load_state_dict`.
        """
        layers = {}
        for name, module in self.layers.items():
            mask = mk.mask_module(module)
            entry: dict[str, Any] = {"N": int(mask.N)}
            entry.update({k: b.detach().cpu().clone() for k, b in mask.named_buffers()})
            layers[name] = entry
        return {"M": self.M, "layers": layers, "steps_done": int(getattr(self, "steps_done", 0)),
                **self._extra_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` into this pruner (built on the same layers and M)."""
        self._check_live()
        if not isinstance(state, dict) or "layers" not in state:
            raise TypeError(f"state must be a dict from {type(self).__name__}.state_dict(), got {type(state).__name__}")
        if state.get("M") != self.M or set(state["layers"]) != set(self.layers):
            raise ValueError(f"state is for M={state.get('M')} and layers {sorted(state['layers'])[:6]}, this "
                             f"pruner has M={self.M} and layers {sorted(self.layers)[:6]}")
        with torch.no_grad():
            for name, module in self.layers.items():
                mask = mk.mask_module(module)
                entry = state["layers"][name]
                for key, buf in mask.named_buffers():
                    buf.copy_(entry[key].to(buf.device, buf.dtype))
                mask.N = int(entry["N"])
        if hasattr(self, "steps_done"):
            self.steps_done = int(state.get("steps_done", 0))
        self._load_extra_state(state)

    def _extra_state(self) -> dict[str, Any]:
        """Subclass state beyond the masks (plain containers)."""
        return {}

    def _load_extra_state(self, state: dict[str, Any]) -> None:
        """Restore :meth:`_extra_state` (the masks are already restored)."""

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
