"""SLS inside a BasicSR model: one SLSPruner drives the search and the finetuning after it.

The pruner stays attached for the whole run (its ``regularization()`` is the MACs term while
searching and the SR-STE decay afterwards, its ``step()`` updates scores and refreshes masks);
checkpoints hold a mask-free copy (:func:`plain_copy`) plus the search state to rebuild it.
"""
from __future__ import annotations

import copy
import logging
from typing import Any

import torch
from torch import nn

from . import dist_sync
from .methods import sls_options
from .options import PruningConfig

log = logging.getLogger(__name__)


def _masked_modules(net: nn.Module) -> dict[str, tuple[nn.Module, nn.Module]]:
    from ...sparsity import masks as mk
    out = {}
    for name, m in net.named_modules():
        mask = mk.mask_module(m)
        if mask is not None:
            out[name] = (m, mask)
    return out


def plain_copy(net: nn.Module, template: nn.Module, *, dense: bool = False
               ) -> tuple[nn.Module, dict[str, Any]]:
    """A parametrization-free copy of ``net`` built from ``template`` (same layers, no masks).

    Masks are baked into the weights and the plan recorded (``dense=False``), or the dense
    weights are kept (``dense=True``). Also returns the SLS state needed to rebuild the masks
    exactly: ``{'scores', 'ranks', 'dense'}`` per layer (ranks as last refreshed, dense weights).
    ``net`` is never touched: removing a parametrization from a deep copy would delete the
    ``weight`` property of the class the copy shares with ``net``.
    """
    from ...sparsity import PLAN_ATTR
    from ...sparsity import masks as mk
    state = {k: v for k, v in net.state_dict().items()
             if ".parametrizations." not in k and not k.startswith("parametrizations.")}
    plan: dict[str, tuple[int, int]] = {}
    extra: dict[str, Any] = {"scores": {}, "ranks": {}, "dense": {}}
    for name, (layer, mask) in _masked_modules(net).items():
        original = mk.original(layer).detach()
        state[f"{name}.weight" if name else "weight"] = (original if dense else layer.weight.detach()).clone()
        plan[name] = (int(mask.N), int(mask.M))
        extra["dense"][name] = original.cpu().clone()
        if hasattr(mask, "scores"):
            extra["scores"][name] = mask.scores.detach().cpu().clone()
        extra["ranks"][name] = mask.ranks.detach().cpu().clone()
    out = copy.deepcopy(template)
    out.load_state_dict(state, strict=True)
    if not dense:
        setattr(out, PLAN_ATTR, plan)
    return out, extra


def load_plain_state(net: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Load a mask-free state dict into ``net`` whose layers may carry N:M parametrizations."""
    masked = _masked_modules(net)
    mapped = {}
    for key, value in state.items():
        layer, _, leaf = key.rpartition(".")
        if leaf == "weight" and layer in masked:
            key = f"{layer}.parametrizations.weight.original"
        mapped[key] = value
    missing, unexpected = net.load_state_dict(mapped, strict=False)
    unexpected = [k for k in unexpected]
    missing = [k for k in missing if ".parametrizations.weight.0." not in k]
    if missing or unexpected:
        raise ValueError(f"state does not fit the network: missing {missing}, unexpected {unexpected}")


class SLSStage:
    """SLS state of one BasicSR run: search, its end (same step on every rank), finetuning."""

    def __init__(self, cfg: PruningConfig, example: torch.Tensor) -> None:
        self.cfg = cfg
        self.M, self.options = sls_options(cfg)
        self.example = example
        self.pruner: Any = None
        self.template: nn.Module | None = None  # plain (mask-free) twin of the trained network

    def start(self, net: nn.Module, state: dict[str, Any] | None = None, steps_done: int = 0,
              frozen_plan: dict[str, tuple[int, int]] | None = None) -> nn.Module:
        """Begin the search on ``net``, or rebuild it from a checkpoint's ``state`` (and plan)."""
        from ...sparsity import SLSPruner
        from ...sparsity import masks as mk
        self.template = copy.deepcopy(net)
        if state and state.get("dense"):
            modules = dict(net.named_modules())
            with torch.no_grad():
                for name, weight in state["dense"].items():
                    modules[name].weight.copy_(weight)
        self.pruner = SLSPruner(net, self.example, self.cfg.budget, M=self.M, options=self.options)
        if state:
            for name, layer in self.pruner.layers.items():
                mask = mk.mask_module(layer)
                if name in state.get("scores", {}):
                    mask.scores.data.copy_(state["scores"][name])
                if name in state.get("ranks", {}):
                    mask.ranks.copy_(state["ranks"][name])
            self.pruner.steps_done = int(steps_done)
            if "score_opt" in state:
                self.pruner.load_score_state(state["score_opt"])
        if frozen_plan is not None:
            self.pruner.freeze({n: int(v[0]) for n, v in frozen_plan.items()})
        log.info("SLS on %d layers (M=%d, budget %.4f of their dense MACs), %s",
                 len(self.pruner.layers), self.M, self.cfg.budget,
                 "searching" if self.searching else "finetuning with N fixed")
        return self.pruner.model

    @property
    def searching(self) -> bool:
        return self.pruner is not None and self.pruner.searching

    def regularization(self) -> torch.Tensor:
        """The MACs term while searching, then the pruner's finetune term (SR-STE decay or 0)."""
        return self.pruner.regularization()

    def kept_ratio(self) -> float:
        return float(self.pruner.kept_ratio())

    def after_step(self) -> bool:
        """Advance the pruner; True on the step the search ends (the same step on every rank)."""
        was_searching = self.pruner.searching
        self.pruner.step()
        if not was_searching:
            return False
        done = dist_sync.broadcast_object(not self.pruner.searching)
        if not done:
            return False
        plan = dist_sync.broadcast_object({n: int(v[0]) for n, v in self.pruner.plan.items()})
        if self.pruner.searching or any(self.pruner.plan[n][0] != v for n, v in plan.items()):
            log.warning("SLS plan differed from rank 0's; adopting rank 0's plan")
            self.pruner.freeze(plan)
        log.info("SLS search finished: plan %s", {k: f"{n}:{m}" for k, (n, m) in self.pruner.plan.items()})
        return True
