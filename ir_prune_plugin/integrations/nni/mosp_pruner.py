"""MOSP (channel pruning to a peak activation-memory budget) as an NNI 3.0 pruner."""
from __future__ import annotations

import dataclasses
import logging
from typing import Any, Callable, Sequence

import torch
from nni.compression.utils import Evaluator
from torch import nn

from ...channels.mosp import MOSPOptions, MOSPPruner
from ...channels.plan_apply import channel_masks, kept_channels
from ...vocabulary import CHANNEL_PRUNABLE_TYPES
from .plugin_pruner import PluginPruner

_log = logging.getLogger(__name__)


def _dims(module: nn.Module) -> tuple[int, int]:
    """(output-channel dim, input-channel dim) of a layer's weight."""
    return (1, 0) if isinstance(module, nn.modules.conv._ConvTransposeNd) else (0, 1)


class NNIMOSPPruner(PluginPruner):
    """MOSP through NNI's ``Pruner`` interface: ``compress()`` returns ``(model, masks)`` with channel masks.

    ``config_list`` uses NNI's keys to pick the layers MOSP may shrink (the vocabulary's
    ``CHANNEL_PRUNABLE_TYPES``: convolutions, transposed convolutions, ``Linear`` and ``Compactor`` --
    insert compactors with ``insert_compactors`` *before* building the pruner to use them; the adapter
    never changes the module structure). ``sparse_ratio`` is the fraction of the model's **peak
    activation memory** at ``memory_input_size`` to remove (0.5 halves it), one value for all entries. ``evaluator`` (an NNI ``TorchEvaluator``) fine-tunes for
    ``finetune_steps`` after every outer step; ``evaluate(model) -> loss`` drives the sensitivities
    (default: distance to the original output on ``example_inputs``). Masks zero the removed output
    channels; ``speedup(model, masks, example_inputs)`` then yields the physically smaller model.
    """

    prunable_types = CHANNEL_PRUNABLE_TYPES

    def __init__(self, model: nn.Module, config_list: list[dict], evaluator: Evaluator | None = None, *,
                 example_inputs: Any, memory_input_size: Sequence[int] | None = None,
                 finetune_steps: int = 0, evaluate: Callable[[nn.Module], float] | None = None,
                 options: MOSPOptions = MOSPOptions(), existed_wrappers: dict | None = None) -> None:
        if isinstance(finetune_steps, bool) or not isinstance(finetune_steps, int) or finetune_steps < 0:
            raise ValueError(f"finetune_steps must be an int >= 0, got {finetune_steps!r}")
        if finetune_steps > 0 and evaluator is None:
            raise ValueError(f"finetune_steps={finetune_steps} needs an evaluator (nni TorchEvaluator)")
        if not isinstance(options, MOSPOptions):
            raise TypeError(f"options must be MOSPOptions, got {type(options).__name__}")
        self._options, self._evaluate, self._size = options, evaluate, memory_input_size
        self.finetune_steps = finetune_steps
        self.pruned_model: nn.Module | None = None  #: the MOSP core's physically pruned model, after compress()
        super().__init__(model, config_list, evaluator, example_inputs, existed_wrappers)

    def _setup(self, pure: nn.Module) -> None:
        grouped = [n for n, m in pure.named_modules() if n in self.selected and getattr(m, "groups", 1) != 1]
        if grouped:
            raise ValueError(f"NNIMOSPPruner does not handle grouped convolutions yet: {grouped[:5]}; "
                             "exclude them with exclude_op_names")
        size = tuple(self._size) if self._size is not None else tuple(self.example_inputs[0].shape)
        ignored = tuple(dict.fromkeys(self._options.ignored_layers
                                      + self._ignored_layers(pure, self.prunable_types)))
        self.options = dataclasses.replace(self._options, memory_input_size=size, compactors=False,
                                           ignored_layers=ignored)
        # Built now so an unreachable budget fails at construction, not in compress().
        self._core = MOSPPruner(pure, self.example_inputs, self.budget, evaluate=self._evaluate,
                                finetune=self._finetune if self.finetune_steps else None, options=self.options)
        self.history = self._core.history

    def removed_share(self) -> float:
        """The share of the dense peak memory MOSP removes (the budget may be a size)."""
        return 1.0 - self._core.budget_bytes / self._core.original_peak

    def _finetune(self, model: nn.Module) -> None:
        self.train_with_evaluator(model, self.finetune_steps)

    def _run(self, pure: nn.Module) -> tuple[dict, dict]:
        self._core.reset_weights(pure)  # from the current weights (the model may have trained since)
        pruned = self._core.prune()
        self.history = self._core.history
        self.pruned_model = pruned
        # MOSP's plan applied as masks (apply_history(masks=True)), from one replay of the history
        kept = kept_channels(pure, self.history, self.example_inputs)
        masks = channel_masks(pure, kept)
        state = {k: v.detach().clone() for k, v in pure.state_dict().items()}
        small = dict(pruned.named_modules())
        for name, module in pure.named_modules():  # the finetuned weights, scattered back to full size
            if name not in kept.out or name not in small:
                continue
            od, idim = _dims(module)
            o = torch.as_tensor(kept.out[name], dtype=torch.long)
            i = torch.as_tensor(kept.inp[name], dtype=torch.long)
            w = state[f"{name}.weight"]
            full = w.index_select(od, o).index_copy(idim, i, small[name].weight.detach())
            w.index_copy_(od, o, full)
            bias = getattr(module, "bias", None)
            if isinstance(bias, torch.Tensor):
                state[f"{name}.bias"].index_copy_(0, o, small[name].bias.detach())
            if name in masks and name not in self.selected:  # coupled but not wrapped: bake the zeros in
                w.mul_(masks[name]["weight"])
                if "bias" in masks[name]:
                    state[f"{name}.bias"].mul_(masks[name]["bias"])
        _log.info("MOSP masked output channels of %d layers", len(masks))
        return state, masks
