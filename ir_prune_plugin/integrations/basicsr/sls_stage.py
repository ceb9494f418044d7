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

from ...sparsity import SLSPruner
from ...sparsity import masks as mk
from ...vocabulary import PLAN_ATTR
from . import dist_sync
from .options import PruningConfig, sls_options

log = logging.getLogger(__name__)


def _masked_modules(net: nn.Module) -> dict[str, tuple[nn.Module, nn.Module]]:
    out = {}
    for name, m in net.named_modules():
        mask = mk.mask_module(m)
        if mask is not None:
            out[name] = (m, mask)
    return out


def plain_copy(net: nn.Module, template: nn.Module, *, dense: bool = False
               ) -> tuple[nn.Module, dict[str, torch.Tensor]]:
    """A parametrization-free copy of ``net`` built from ``template`` (same layers, no masks).

    Masks are baked into the weights and the plan recorded (``dense=False``), or the dense
    weights are kept (``dense=True``). Also returns the dense weights under the masks per layer
    (the pruner's own state comes from ``SLSPruner.state_dict()``). ``net`` is never touched:
    removing a parametrization from a deep copy would delete the ``weight`` property of the class
    the copy shares with ``net``.
    """
    state = {k: v for k, v in net.state_dict().items()
             if ".parametrizations." not in k and not k.startswith("parametrizations.")}
    plan: dict[str, tuple[int, int]] = {}
    dense_weights: dict[str, torch.Tensor] = {}
    for name, (layer, mask) in _masked_modules(net).items():
        original = mk.original(layer).detach()
        state[f"{name}.weight" if name else "weight"] = (original if dense else layer.weight.detach()).clone()
        plan[name] = (int(mask.N), int(mask.M))
        dense_weights[name] = original.cpu().clone()
    out = copy.deepcopy(template)
    out.load_state_dict(state, strict=True)
    if not dense:
        setattr(out, PLAN_ATTR, plan)
    return out, dense_weights


def load_plain_state(net: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Load a mask-free state dict into ``net`` whose layers may carry N:M parametrizations."""
    mk.load_dense_state(net, state)


class SLSStage:
    """SLS state of one BasicSR run: search, its end (same step on every rank), finetuning."""

    def __init__(self, cfg: PruningConfig, example: torch.Tensor) -> None:
        self.cfg = cfg
        self.M, self.options = sls_options(cfg)
        self.example = example
        self.pruner: Any = None
        self.template: nn.Module | None = None  # plain (mask-free) twin of the trained network

    def start(self, net: nn.Module, state: dict[str, Any] | None = None) -> nn.Module:
        """Begin the search on ``net``, or resume it from a checkpoint's ``state``: the dense weights
        under the masks (``'dense'``) and the pruner's ``state_dict()`` (``'pruner'``)."""
        self.template = copy.deepcopy(net)
        if state and state.get("dense"):
            modules = dict(net.named_modules())
            with torch.no_grad():
                for name, weight in state["dense"].items():
                    modules[name].weight.copy_(weight)
        self.pruner = SLSPruner(net, self.example, self.cfg.budget, M=self.M, options=self.options)
        if state and "pruner" in state:
            self.pruner.load_state_dict(state["pruner"])
        elif state:
            raise ValueError("this checkpoint's SLS state predates SLSPruner.state_dict(); resume it with "
                             "the ir-prune-plugin version that wrote it")
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
