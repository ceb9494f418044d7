"""MOSP (channel pruning to a peak activation-memory budget) as an NNI 3.0 pruner."""
from __future__ import annotations

import copy
import dataclasses
import logging
from typing import Any, Callable, Sequence

import torch
from nni.compression.utils import Evaluator
from torch import nn

from ...channels.compactor import Compactor
from ...channels.mosp import MOSPOptions, MOSPPruner
from ...channels.units import UnitGraph
from ._base import PluginPruner

_log = logging.getLogger(__name__)


def _dims(module: nn.Module) -> tuple[int, int]:
    """(output-channel dim, input-channel dim) of a layer's weight."""
    return (1, 0) if isinstance(module, nn.modules.conv._ConvTransposeNd) else (0, 1)


def _tag(model: nn.Module, which: int) -> None:
    """Write each layer's channel index into its weight along dim ``which`` (0: out, 1: in)."""
    with torch.no_grad():
        for m in model.modules():
            w = getattr(m, "weight", None)
            if isinstance(m, NNIMOSPPruner.prunable_types) and isinstance(w, torch.Tensor):
                dim = _dims(m)[which]
                shape = [1] * w.dim()
                shape[dim] = w.shape[dim]
                w.copy_(torch.arange(w.shape[dim], dtype=w.dtype).reshape(shape).expand_as(w))


def _read_tags(model: nn.Module, which: int) -> dict[str, list[int]]:
    out = {}
    for name, m in model.named_modules():
        w = getattr(m, "weight", None)
        if isinstance(m, NNIMOSPPruner.prunable_types) and isinstance(w, torch.Tensor):
            dim = _dims(m)[which]
            out[name] = [int(v) for v in w.detach().movedim(dim, 0).reshape(w.shape[dim], -1)[:, 0]]
    return out


class NNIMOSPPruner(PluginPruner):
    """MOSP through NNI's ``Pruner`` interface: ``compress()`` returns ``(model, masks)`` with channel masks.

    ``config_list`` uses NNI's keys to pick the layers MOSP may shrink (``Conv2d``, ``ConvTranspose2d``,
    ``Linear`` and ``Compactor`` -- insert compactors with ``insert_compactors`` *before* building the
    pruner to use them; the adapter never changes the module structure). ``sparse_ratio`` is the
    fraction of the model's **peak activation memory** at ``memory_input_size`` to remove (0.5 halves
    it), one value for all entries. ``evaluator`` (an NNI ``TorchEvaluator``) fine-tunes for
    ``finetune_steps`` after every outer step; ``evaluate(model) -> loss`` drives the sensitivities
    (default: distance to the original output on ``example_inputs``). Masks zero the removed output
    channels; ``speedup(model, masks, example_inputs)`` then yields the physically smaller model.
    """

    prunable_types = (nn.Conv2d, nn.ConvTranspose2d, nn.Linear, Compactor)

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
        self._core = MOSPPruner(pure, self.example_inputs, 1.0 - self.sparse_ratio, evaluate=self._evaluate,
                                finetune=self._finetune if self.finetune_steps else None, options=self.options)
        self.history = self._core.history

    def _finetune(self, model: nn.Module) -> None:
        self.train_with_evaluator(model, self.finetune_steps)

    def _kept_indices(self, pure: nn.Module) -> tuple[dict[str, list[int]], dict[str, list[int]]]:
        """Replay the recorded removals on index-tagged copies: surviving (out, in) channels per layer."""
        kept = []
        for which in (0, 1):
            tagged = copy.deepcopy(pure)
            _tag(tagged, which)
            for rec in self.history.records:
                UnitGraph(tagged, self.example_inputs, self._core.ignored).remove(rec.removed)
            kept.append(_read_tags(tagged, which))
        return kept[0], kept[1]

    def _run(self, pure: nn.Module) -> tuple[dict, dict]:
        # From the current weights (the model may have changed since construction).
        self._core = MOSPPruner(pure, self.example_inputs, 1.0 - self.sparse_ratio, evaluate=self._evaluate,
                                finetune=self._finetune if self.finetune_steps else None, options=self.options)
        pruned = self._core.prune()
        self.history = self._core.history
        self.pruned_model = pruned
        out_kept, in_kept = self._kept_indices(pure)
        state = {k: v.detach().clone() for k, v in pure.state_dict().items()}
        small = dict(pruned.named_modules())
        masks: dict[str, dict[str, torch.Tensor]] = {}
        for name, module in pure.named_modules():
            if name not in out_kept or name not in small:
                continue
            od, idim = _dims(module)
            o = torch.as_tensor(out_kept[name], dtype=torch.long)
            i = torch.as_tensor(in_kept[name], dtype=torch.long)
            w = state[f"{name}.weight"]
            full = w.index_select(od, o).index_copy(idim, i, small[name].weight.detach())
            w.index_copy_(od, o, full)
            bias = getattr(module, "bias", None)
            if isinstance(bias, torch.Tensor):
                state[f"{name}.bias"].index_copy_(0, o, small[name].bias.detach())
            if len(o) < w.shape[od]:
                keep = torch.zeros(w.shape[od], dtype=w.dtype)
                keep[o] = 1
                shape = [1] * w.dim()
                shape[od] = -1
                masks[name] = {"weight": keep.reshape(shape).expand_as(w).clone()}
                if isinstance(bias, torch.Tensor):
                    masks[name]["bias"] = keep.clone()
                if name not in self.selected:  # coupled but not wrapped: bake the zeros in
                    w.mul_(masks[name]["weight"])
                    if isinstance(bias, torch.Tensor):
                        state[f"{name}.bias"].mul_(keep)
        _log.info("MOSP masked output channels of %d layers", len(masks))
        return state, masks
