"""Shared plumbing of the plugin's NNI pruners: config checks, wrap/unwrap round trips, weight sync."""
from __future__ import annotations

import copy
import logging
from typing import Any, Callable, Sequence

import torch
from nni.compression.base.compressor import Pruner
from nni.compression.base.target_space import PruningTargetSpace
from nni.compression.utils import Evaluator
from torch import nn

from ...inputs import check_example_inputs
from .config_list import register_compactor, validate_config_list

_log = logging.getLogger(__name__)


class PluginPruner(Pruner):
    """NNI ``Pruner`` whose masks come from one of the plugin's engine-neutral algorithms.

    Subclasses set ``prunable_types``, implement ``_setup(pure_model)`` (checks, before wrapping) and
    ``_run(pure_model) -> (state_dict, masks)``:
    the algorithm runs on an unwrapped deep copy, then its weights and masks are written back into
    the wrapped model, so NNI's ``get_masks()``/``update_masks()``/``unwrap_model()`` work as usual.
    """

    prunable_types: Sequence[type] = ()
    budget_kind = "memory"  #: what the config_list's budget measures: 'memory' (MOSP) or 'macs' (SLS)

    def __init__(self, model: nn.Module, config_list: list[dict], evaluator: Evaluator | None,
                 example_inputs: Any, existed_wrappers: dict | None = None) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        if evaluator is not None and not isinstance(evaluator, Evaluator):
            raise TypeError(f"evaluator must be an NNI Evaluator (e.g. TorchEvaluator), got {type(evaluator).__name__}")
        register_compactor()
        self.example_inputs = check_example_inputs(model, example_inputs)
        self.budget, self.selected = validate_config_list(model, config_list, self.prunable_types,
                                                          type(self).__name__, self.budget_kind)
        try:
            self._setup(copy.deepcopy(model))  # may raise: the model is not wrapped yet
        except ValueError as exc:
            if "budget" not in str(exc):
                raise
            # say which config_list value to change
            given = [e.get("budget", e.get("sparse_ratio")) for e in config_list]
            raise ValueError(f"config_list {'budget' if any('budget' in e for e in config_list) else 'sparse_ratio'}"
                             f"={given[0]!r} cannot be met (the pruner keeps {self.budget!r} of the budgeted "
                             f"quantity): {exc}; lower sparse_ratio (or raise budget)") from None
        # NNI's schema knows sparse_ratio only: a ``budget`` entry becomes the share it removes
        nni_list = [{**{k: v for k, v in e.items() if k != "budget"}, "sparse_ratio": self.removed_share()}
                    if "budget" in e else e for e in config_list]
        super().__init__(model, nni_list, evaluator, existed_wrappers)

    def _setup(self, pure: nn.Module) -> None:
        """Build the algorithm on an unwrapped copy, so bad budgets fail before NNI wraps the model."""

    def removed_share(self) -> float:
        """The share of the budgeted cost the pruner removes (NNI's ``sparse_ratio``)."""
        return 1.0 - float(self.budget)

    # NNI's default granularity is 'out_channel'; our masks are element-wise tensors of weight shape.
    def _set_default_sparse_granularity(self, target_space: PruningTargetSpace) -> None:
        return None

    def pure_copy(self) -> nn.Module:
        """A deep copy of the model without NNI wrappers (masks not applied)."""
        was = self._is_wrapped
        if was:
            self.unwrap_model()
        try:
            return copy.deepcopy(self.bound_model)
        finally:
            if was:
                self.wrap_model()

    def _load_pure_state(self, state: dict[str, torch.Tensor]) -> None:
        """Load an unwrapped state dict into the bound model, wrappers' parameters included."""
        was = self._is_wrapped
        if was:
            self.unwrap_model()
        self.bound_model.load_state_dict(state, strict=True)
        with torch.no_grad():
            for wrapper in self._module_wrappers.values():
                for name, space in wrapper.pruning_target_spaces.items():
                    if isinstance(space.target, torch.Tensor):
                        space.target.copy_(getattr(wrapper.module, name))
        if was:
            self.wrap_model()

    def _ignored_layers(self, model: nn.Module, types: Sequence[type]) -> tuple[str, ...]:
        """Names of prunable-type modules the config_list does not select."""
        chosen = set(self.selected)
        return tuple(n for n, m in model.named_modules() if isinstance(m, tuple(types)) and n not in chosen)

    def _run(self, pure: nn.Module) -> tuple[dict[str, torch.Tensor], dict[str, dict[str, torch.Tensor]]]:
        raise NotImplementedError

    def _single_compress(self, max_steps: int | None, max_epochs: int | None) -> None:
        if max_steps is not None or max_epochs is not None:
            raise ValueError(f"{type(self).__name__}.compress() takes no max_steps/max_epochs: "
                             "the training length is a constructor argument")
        state, masks = self._run(self.pure_copy())
        self._load_pure_state(state)
        self.update_masks({n: m for n, m in masks.items() if n in self._module_wrappers})

    def compress(self, max_steps: int | None = None,
                 max_epochs: int | None = None) -> tuple[nn.Module, dict[str, dict[str, torch.Tensor]]]:
        """Run the algorithm; returns ``(wrapped model, masks)`` like every NNI pruner."""
        return super().compress(max_steps, max_epochs)

    def train_with_evaluator(self, model: nn.Module, steps: int, names_map: dict[str, str] | None = None,
                             extra_loss: Callable[[], torch.Tensor] | None = None,
                             after_step: Sequence[Callable[[], None]] = ()) -> None:
        """Train ``model`` for ``steps`` with the evaluator's own loop, loss and optimizer."""
        if self.evaluator is None or steps <= 0:
            return
        ev = self.evaluator
        ev.bind_model(model, names_map)
        try:
            if extra_loss is not None:
                ev.patch_loss(lambda loss, batch: loss + extra_loss())
            if after_step:
                ev.patch_optimizer_step(before_step_tasks=[], after_step_tasks=list(after_step))
            ev.train(max_steps=steps)
        finally:
            ev.unbind_model()
