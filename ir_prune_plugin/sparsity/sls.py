"""SLS: layer-wise N:M sparsity search under a MACs budget (ordered scores + annealed regulariser).

Each eligible layer gets M-1 trainable scores; ``cumprod(clamp(scores, 0, 1)) > 0.5`` keeps a
magnitude-prefix of ranks in every group of M (N = 1 + kept units). The loss term
``reg_weight * schedule(progress) * kept_MACs / dense_MACs`` pushes N down where it is cheap for
the task loss. When the kept MACs reach the budget the scores freeze and only weights train.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..budgets import check_ratio, parse_macs_budget
from ..macs import kept_macs
from . import masks as mk
from .nm import check_n_m, nm_mask
from .nm_pruner import NMPrunerBase
from .schedule import AnnealingSchedule

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SLSOptions:
    """SLS settings. ``ignored_layers=None`` leaves the first and last executed layers dense.

    ``search_steps``: steps before a search that has not met the budget is projected onto it;
    ``refresh_every``: steps between magnitude-rank refreshes (the reference: once per epoch);
    ``reg_weight``: lambda on the kept-MACs *ratio* (the reference uses 1e-10 on absolute
    MACs, which only suits full-size nets); ``schedule``: its annealing coefficient;
    ``score_lr``/``score_momentum``: the pruner's own SGD on the scores; ``threshold``: gate cut.
    ``finetune``: after the search, ``"sr-ste"`` (default: masks recomputed every step, dense
    straight-through gradients and the ``lambda_w`` decay on pruned weights, with each layer's
    searched N) or ``"fixed"`` (the reference code: masks from magnitude ranks refreshed every
    ``refresh_every``; pruned weights get no gradient). Measured on x2 EDSR-32x4 (Set5, 300
    finetune steps, seeds 0/1, 25 % and 12.5 % MACs): the same searched plans score 0.3-1.2 dB
    higher with SR-STE finetuning than with fixed masks (``benchmarks/sls.py``).
    """

    search_steps: int = 500
    refresh_every: int = 100
    reg_weight: float = 0.01
    schedule: AnnealingSchedule = AnnealingSchedule()
    score_lr: float = 1.0
    score_momentum: float = 0.9
    threshold: float = 0.5
    finetune: str = "sr-ste"
    lambda_w: float = 2e-4
    ignored_layers: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        for name in ("search_steps", "refresh_every"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be an int >= 1, got {v!r}")
        for name in ("reg_weight", "score_lr", "score_momentum", "lambda_w", "threshold"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise TypeError(f"{name} must be a number, got {v!r}")
            if not math.isfinite(v):
                raise ValueError(f"{name} must be finite, got {v!r}")
        for name in ("reg_weight", "score_lr"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)!r}")
        if not 0 <= self.score_momentum < 1:
            raise ValueError(f"score_momentum must be in [0, 1), got {self.score_momentum!r}")
        if self.lambda_w < 0:
            raise ValueError(f"lambda_w must be >= 0 (0 turns the SR-STE decay off), got {self.lambda_w!r}")
        if self.finetune not in ("fixed", "sr-ste"):
            raise ValueError(f"finetune must be 'fixed' or 'sr-ste', got {self.finetune!r}")
        if not 0 < self.threshold < 1:
            raise ValueError(f"threshold must be in (0, 1), got {self.threshold}")
        if not isinstance(self.schedule, AnnealingSchedule):
            raise TypeError(f"schedule must be an AnnealingSchedule(start=..., end=...), got {self.schedule!r}")
        if self.ignored_layers is not None:
            if isinstance(self.ignored_layers, str) or any(not isinstance(n, str) for n in self.ignored_layers):
                raise TypeError(f"ignored_layers must be a sequence of module names, e.g. ('head', 'tail'), "
                                f"or None; got {self.ignored_layers!r}")
            object.__setattr__(self, "ignored_layers", tuple(self.ignored_layers))


class SLSPruner(NMPrunerBase):
    """Search one N per layer (N:M, fixed M) so that kept MACs <= ``macs_budget`` x dense MACs.

    ``macs_budget`` is a ratio in (0, 1) of the *eligible* layers' dense MACs (the layers that are
    not ignored and whose reduction size divides by M); ignored/dense layers are not counted.
    It must be >= 1/M (every layer keeps at least its largest weight per group).
    Works on a deep copy: train ``pruner.model`` with any optimizer over its parameters, add
    ``regularization()`` to the loss, call ``step()`` after each optimizer step, then
    ``finalize()``. The caller's model is never modified. The scores are the pruner's state and
    are updated in ``step()`` by plain SGD with momentum (not by the user's optimizer): Adam's
    per-element normalisation would erase the MACs weighting of the regulariser, which is what
    makes expensive layers give up more units than cheap, sensitive ones.
    """

    def __init__(self, model: nn.Module, example_inputs: Any, macs_budget: float, *, M: int = 32,
                 options: SLSOptions = SLSOptions()) -> None:
        check_ratio("macs_budget", macs_budget)  # a float here; text budgets go through parse_macs_budget
        if not isinstance(options, SLSOptions):
            raise TypeError(f"options must be SLSOptions, got {type(options).__name__}")
        check_n_m(1, M)
        if M == 1:
            raise ValueError("M must be >= 2 for a search (M=1 keeps every weight)")
        budget = parse_macs_budget(macs_budget, M)
        super().__init__(model, example_inputs, M, options.ignored_layers)
        self.budget = budget
        self.options = options
        self.steps_done = 0
        self.searching = True
        self.projected = False
        self.history: list[dict[str, float]] = []
        for name, m in self.layers.items():
            mk.attach(m, mk.ScoredNMMask(m.weight.detach(), M, self._transposed(name)))
        self._masks = {n: mk.mask_module(m) for n, m in self.layers.items()}
        self._score_opt = torch.optim.SGD(self.score_parameters(), lr=options.score_lr,
                                          momentum=options.score_momentum)

    # --- search state ----------------------------------------------------------------------
    def _n_of(self, name: str) -> int:
        return self._masks[name].current_n()

    def score_parameters(self) -> list[torch.Tensor]:
        """The ordered scores of every layer (buffers with gradients, updated in ``step()``)."""
        return [m.scores for m in self._masks.values()]

    def kept_ratio(self) -> float:
        """Kept / dense MACs of the eligible layers under the current hard gates."""
        return kept_macs(self.dense_macs, self.plan) / self.total_dense

    def regularization(self) -> torch.Tensor:
        """``reg_weight * schedule(progress) * soft kept-MACs ratio`` while searching; afterwards 0
        (or the SR-STE decay ``lambda_w / 2 * ||(1 - mask) * W||^2`` with ``finetune="sr-ste"``)."""
        if not self.searching:
            if self.options.finetune == "sr-ste" and self.options.lambda_w > 0:
                pairs = ((w, nm_mask(w.detach(), self._masks[n].N, self.M, self._masks[n].transposed))
                         for n, w in ((n, mk.original(m)) for n, m in self.layers.items()))
                return mk.srste_decay(pairs, self.options.lambda_w, self._device())
            return torch.zeros((), device=self._device())
        coeff = self.options.reg_weight * self.options.schedule(self.steps_done / self.options.search_steps)
        kept = sum(self._masks[n].soft_n() * (v / self.M) for n, v in self.dense_macs.items())
        return coeff * kept / self.total_dense

    def step(self) -> None:
        """After ``optimizer.step()``: keep scores in [0, 1], stop the search at the budget, refresh ranks."""
        self._check_live()
        self.steps_done += 1
        if self.searching:
            self._score_opt.step()
            self._score_opt.zero_grad(set_to_none=True)
            for m in self._masks.values():
                m.project()
            ratio = self.kept_ratio()
            self.history.append({"step": self.steps_done, "kept_ratio": ratio})
            if ratio <= self.budget:
                log.info("SLS search reached the budget at step %d (kept %.4f <= %.4f)",
                         self.steps_done, ratio, self.budget)
                self.freeze(self._fill_to_budget())
            elif self.steps_done >= self.options.search_steps:
                self._project_to_budget()
        if self.steps_done % self.options.refresh_every == 0:
            for n, m in self.layers.items():
                self._masks[n].refresh(mk.original(m).detach())

    def _extra_state(self) -> dict[str, Any]:
        """Search state: flags, the kept-ratio history, frozen N and the score SGD's momentum."""
        return {"searching": bool(self.searching), "projected": bool(self.projected),
                "history": [dict(h) for h in self.history],
                "frozen": {n: m.frozen_n for n, m in self._masks.items()},
                "score_opt": self._score_opt.state_dict()}

    def _load_extra_state(self, state: dict[str, Any]) -> None:
        self.projected = bool(state.get("projected", False))
        self.history = [dict(h) for h in state.get("history", [])]
        if not state.get("searching", True):
            self.freeze({n: int(v) for n, v in state["frozen"].items()})
        if "score_opt" in state:
            self._score_opt.load_state_dict(state["score_opt"])

    def freeze(self, plan: dict[str, int] | None = None) -> None:
        """End the search: fix each layer's N (``plan`` = ``{layer: N}``, default: the current gates).

        Used to apply a plan decided elsewhere (another rank, a resumed checkpoint); the weights
        are then finetuned with N fixed.
        """
        for n, m in self._masks.items():
            m.freeze(None if plan is None else plan[n], straight_through=self.options.finetune == "sr-ste")
            m.scores.grad = None
        self.searching = False

    def _gate_probs(self) -> dict[str, list[float]]:
        return {n: torch.cumprod(m.scores.detach().clamp(0, 1), 0).tolist() for n, m in self._masks.items()}

    def _fill_to_budget(self) -> dict[str, int]:
        """Give back the most confident dropped units (highest gate prob) that still fit the budget.

        One search step can overshoot the budget by several units; this keeps the plan's cost as
        close to the budget as the N:M granularity allows (deterministic, score order).
        """
        n_now = {n: m.current_n() for n, m in self._masks.items()}
        probs, names = self._gate_probs(), list(self.dense_macs)
        target = self.budget * self.total_dense
        spent = kept_macs(self.dense_macs, {n: (n_now[n], self.M) for n in names})
        while True:
            cands = [(-probs[n][n_now[n] - 1], self.dense_macs[n], i, n) for i, n in enumerate(names)
                     if n_now[n] < self.M and spent + self.dense_macs[n] / self.M <= target]
            if not cands:
                return n_now
            pick = min(cands)[3]
            n_now[pick] += 1
            spent += self.dense_macs[pick] / self.M

    def _project_to_budget(self) -> None:
        """Drop the least-confident kept unit (lowest gate probability) until the budget holds."""
        n_now = {n: m.current_n() for n, m in self._masks.items()}
        probs = self._gate_probs()
        target = self.budget * self.total_dense
        names = list(self.dense_macs)
        dropped = 0
        while kept_macs(self.dense_macs, {n: (n_now[n], self.M) for n in names}) > target:
            cands = [(probs[n][n_now[n] - 2], -self.dense_macs[n], i, n) for i, n in enumerate(names) if n_now[n] > 1]
            _, _, _, pick = min(cands)
            n_now[pick] -= 1
            dropped += 1
        log.warning("SLS search did not reach the budget in %d steps (kept %.4f > %.4f): "
                    "projected by dropping %d lowest-score units", self.steps_done, self.kept_ratio(),
                    self.budget, dropped)
        self.projected = True
        self.freeze(n_now)

    def finalize(self) -> nn.Module:
        """Project to the budget if still searching, squash the masks and return the N:M model."""
        self._check_live()
        if self.searching:
            self._project_to_budget()
        return super().finalize()
