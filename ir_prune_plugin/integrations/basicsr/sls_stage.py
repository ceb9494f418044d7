"""SLS inside a BasicSR model: the search (SLSPruner), then finetuning with each layer's N fixed."""
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


def attach_fixed_masks(net: nn.Module, plan: dict[str, tuple[int, int]]) -> nn.Module:
    """Put a fixed-N magnitude N:M mask on every layer of ``plan`` (in place; returns ``net``)."""
    from ...sparsity import FixedNMMask, PLAN_ATTR
    from ...sparsity import masks as mk
    modules = dict(net.named_modules())
    for name in sorted(plan):
        n, m_ = plan[name]
        layer = modules[name]
        mk.attach(layer, FixedNMMask(layer.weight.detach(), n, m_, isinstance(layer, nn.ConvTranspose2d)))
    setattr(net, PLAN_ATTR, {k: tuple(v) for k, v in plan.items()})
    return net


def refresh_masks(net: nn.Module) -> None:
    """Re-rank every fixed mask from its current dense weight (N stays fixed)."""
    from ...sparsity import masks as mk
    for _, (layer, mask) in _masked_modules(net).items():
        mask.refresh(mk.original(layer).detach())


def plain_copy(net: nn.Module, template: nn.Module, *, dense: bool = False
               ) -> tuple[nn.Module, dict[str, torch.Tensor]]:
    """A parametrization-free copy of ``net`` built from ``template`` (same layers, no masks).

    Masks are baked into the weights and the plan recorded (``dense=False``), or the dense
    originals are kept (``dense=True``, for a search checkpoint). Also returns the SLS scores.
    ``net`` is never touched: removing a parametrization from a deep copy would delete the
    ``weight`` property of the class the copy shares with ``net``.
    """
    from ...sparsity import PLAN_ATTR
    from ...sparsity import masks as mk
    state = {k: v for k, v in net.state_dict().items()
             if ".parametrizations." not in k and not k.startswith("parametrizations.")}
    plan, scores = {}, {}
    for name, (layer, mask) in _masked_modules(net).items():
        weight = mk.original(layer) if dense else layer.weight
        state[f"{name}.weight" if name else "weight"] = weight.detach().clone()
        plan[name] = (int(mask.N), int(mask.M))
        if hasattr(mask, "scores"):
            scores[name] = mask.scores.detach().cpu().clone()
    out = copy.deepcopy(template)
    out.load_state_dict(state, strict=True)
    if not dense:
        setattr(out, PLAN_ATTR, plan)
    return out, scores


class SLSStage:
    """Search state of one BasicSR run: start, per-step hooks, transition to fixed-N finetuning."""

    def __init__(self, cfg: PruningConfig, example: torch.Tensor) -> None:
        self.cfg = cfg
        self.M, self.options = sls_options(cfg)
        self.example = example
        self.pruner: Any = None
        self.template: nn.Module | None = None  # plain (mask-free) twin of the trained network

    def start(self, net: nn.Module, scores: dict[str, torch.Tensor] | None = None,
              steps_done: int = 0) -> nn.Module:
        """Begin (or resume) the search on ``net``; returns the network to train."""
        from ...sparsity import SLSPruner
        from ...sparsity import masks as mk
        self.template = copy.deepcopy(net)
        self.pruner = SLSPruner(net, self.example, self.cfg.budget, M=self.M, options=self.options)
        if scores:
            for name, value in scores.items():
                mk.mask_module(self.pruner.layers[name]).scores.data.copy_(value)
            self.pruner.steps_done = int(steps_done)
        log.info("SLS search on %d layers (M=%d, budget %.4f of their dense MACs)",
                 len(self.pruner.layers), self.M, self.cfg.budget)
        return self.pruner.model

    @property
    def searching(self) -> bool:
        return self.pruner is not None and self.pruner.searching

    def param_groups(self, lr: float) -> list[dict]:
        """Weights at ``lr`` and scores at ``score_lr`` while searching."""
        return self.pruner.param_groups(lr)

    def regularization(self) -> torch.Tensor:
        return self.pruner.regularization()

    def kept_ratio(self) -> float:
        return float(self.pruner.kept_ratio())

    def after_step(self) -> nn.Module | None:
        """Advance the search; when it ends (same step on every rank) return the finetune network."""
        self.pruner.step()
        done = dist_sync.broadcast_object(not self.pruner.searching)
        if not done:
            return None
        plan = dist_sync.broadcast_object({n: int(v[0]) for n, v in self.pruner.plan.items()})
        if self.pruner.searching or any(self.pruner.plan[n][0] != v for n, v in plan.items()):
            log.warning("SLS plan differed from rank 0's; adopting rank 0's plan")
            self.pruner._freeze(plan)
        final = self.pruner.finalize()
        plan = dict(getattr(final, "irprune_nm_plan"))
        self.pruner = None
        self.template = copy.deepcopy(final)
        log.info("SLS search finished: plan %s", {k: f"{n}:{m}" for k, (n, m) in plan.items()})
        return attach_fixed_masks(final, plan)
