"""SLS (layer-wise N:M sparsity search under a MACs budget) as an NNI 3.0 pruner."""
from __future__ import annotations

import dataclasses
import logging
from typing import Any

from nni.compression.utils import Evaluator
from torch import nn

from ...sparsity import PLAN_ATTR, SLSOptions, SLSPruner, apply_nm_plan
from ...vocabulary import NM_PRUNABLE_TYPES
from .plugin_pruner import PluginPruner

_log = logging.getLogger(__name__)


class NNISLSPruner(PluginPruner):
    """SLS through NNI's ``Pruner`` interface: ``compress()`` returns ``(model, masks)`` with N:M masks.

    ``config_list`` uses NNI's keys (``op_types``/``op_names``/``op_names_re``/``exclude_op_*``) to pick
    the layers to search N for; ``sparse_ratio`` is the fraction of those layers' dense **MACs** to remove
    (0.75 keeps a quarter of the MACs), one value for all entries since SLS distributes one budget
    across layers. ``M`` is the group size (``N`` is searched per layer, 1 <= N <= M); layers whose
    reduction size does not divide by ``M`` stay dense. ``evaluator`` (an NNI ``TorchEvaluator``)
    trains weights and scores for ``training_steps`` optimizer steps: the search runs for
    ``options.search_steps`` of them (or until the budget is met) and the rest fine-tune with N fixed.
    Without an evaluator the budget is met by projection from the initial (magnitude) scores.
    """

    prunable_types = NM_PRUNABLE_TYPES
    budget_kind = "macs"

    def __init__(self, model: nn.Module, config_list: list[dict], evaluator: Evaluator | None = None, *,
                 example_inputs: Any, M: int = 32, training_steps: int = 0,
                 options: SLSOptions = SLSOptions(), existed_wrappers: dict | None = None) -> None:
        if isinstance(training_steps, bool) or not isinstance(training_steps, int) or training_steps < 0:
            raise ValueError(f"training_steps must be an int >= 0, got {training_steps!r}")
        if not isinstance(options, SLSOptions):
            raise TypeError(f"options must be SLSOptions, got {type(options).__name__}")
        if training_steps > 0 and evaluator is None:
            raise ValueError(f"training_steps={training_steps} needs an evaluator (nni TorchEvaluator) to train with")
        self.M, self.training_steps, self._options = M, training_steps, options
        self.plan: dict[str, tuple[int, int]] = {}  #: {layer: (N, M)} after compress()
        self.macs: dict[str, float] = {}  #: dense/kept MACs at example_inputs after compress()
        super().__init__(model, config_list, evaluator, example_inputs, existed_wrappers)

    def _setup(self, pure: nn.Module) -> None:
        self.options = dataclasses.replace(self._options,
                                           ignored_layers=self._ignored_layers(pure, self.prunable_types))
        # Built now so bad N/M/budget combinations fail at construction, not in compress().
        self._core = SLSPruner(pure, self.example_inputs, self.budget, M=self.M, options=self.options)
        self.dense_layers = {n: why for n, why in self._core.dense_layers.items() if n in self.selected}
        if self.dense_layers:
            _log.warning("NNISLSPruner leaves these selected layers dense: %s", self.dense_layers)

    def _names_map(self, core: SLSPruner) -> dict[str, str]:
        names = {n for n, _ in core.model.named_parameters()}
        out = {}
        for layer in core.layers:
            key = f"{layer}.parametrizations.weight.original" if layer else "parametrizations.weight.original"
            if key in names:
                out[f"{layer}.weight" if layer else "weight"] = key
        return out

    def _run(self, pure: nn.Module) -> tuple[dict, dict]:
        core = self._core  # built in _setup; restart it from the current weights (they may have trained)
        core.reset_weights(pure)
        # The scores are the core's state (buffers outside NNI's optimizer): core.step() updates
        # them with its own SGD after each optimizer step, exactly as in SLSPruner.fit.
        self.train_with_evaluator(core.model, self.training_steps, self._names_map(core),
                                  extra_loss=core.regularization, after_step=[core.step])
        model = core.finalize()
        self.plan = dict(core.plan)
        self.macs = core.macs()
        _log.info("SLS plan: %s (kept MACs ratio %.4f)", self.plan, self.macs["ratio"])
        masks = apply_nm_plan(model, self.plan, masks=True)
        state = {k: v for k, v in model.state_dict().items()}
        if hasattr(model, PLAN_ATTR):
            setattr(self.bound_model, PLAN_ATTR, dict(self.plan))
        return state, masks
