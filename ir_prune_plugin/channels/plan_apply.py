"""Apply a MOSP plan (its :class:`~.history.MOSPHistory`) to a model: physically, or as channel masks.

Deciding and applying are apart: ``MOSPPruner`` decides (and records every removal), and
:func:`apply_history` replays the removals on any copy of the same network -- a fresh build with
the trained weights, a wrapped NNI model -- without running MOSP again.
"""
from __future__ import annotations

import copy
from typing import Any, Sequence

import torch
from torch import nn
from tqdm.auto import tqdm

from ..vocabulary import SITES_ATTR
from .compactor import replay_compactors
from .history import MOSPHistory
from .tp_graph import output_layers
from .units import KeptChannels, UnitGraph

__all__ = ["apply_history", "channel_masks", "kept_channels", "replay_history"]

Masks = dict[str, dict[str, torch.Tensor]]


def _prepared(model: nn.Module, history: MOSPHistory, example_inputs: Any) -> tuple[nn.Module, tuple[str, ...]]:
    """A copy of ``model`` with the history's compactors, and the layers the history kept whole."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    if not isinstance(history, MOSPHistory):
        raise TypeError(f"history must be a MOSPHistory (MOSPPruner.history), got {type(history).__name__}")
    work = copy.deepcopy(model)
    if history.compactor_sites and not getattr(work, SITES_ATTR, None):
        work = replay_compactors(work, history.compactor_sites)
    ignored = tuple(history.ignored) or tuple(dict.fromkeys(
        tuple(history.options.get("ignored_layers", ())) + tuple(output_layers(work, example_inputs))))
    return work, ignored


def replay_history(work: nn.Module, history: MOSPHistory, example_inputs: Any, ignored: Sequence[str],
                   kept: KeptChannels | None = None, *, progress: bool = False) -> nn.Module:
    """Remove the history's channels from ``work`` in place (``kept`` follows the survivors)."""
    for rec in tqdm(history.records, desc="MOSP replay", leave=False, disable=not progress):
        graph = UnitGraph(work, example_inputs, ignored)
        unknown = [r for r in rec.removed if r not in graph.units]
        if unknown:
            raise ValueError(f"history step {rec.outer}.{rec.inner} names units {unknown} that this model "
                             "does not have (a different arch, or options?)")
        graph.remove(rec.removed, strict=True, kept=kept)
    return work


def kept_channels(model: nn.Module, history: MOSPHistory, example_inputs: Any) -> KeptChannels:
    """Which output and input channels of each layer of ``model`` survive the history's removals."""
    work, ignored = _prepared(model, history, example_inputs)
    kept = KeptChannels.of(work)
    replay_history(work, history, example_inputs, ignored, kept)
    return kept


def apply_history(model: nn.Module, history: MOSPHistory, example_inputs: Any, *,
                  masks: bool = False) -> nn.Module | Masks:
    """Apply MOSP's plan to a copy of ``model`` (``model`` itself is never changed).

    ``masks=False``: the physically pruned copy (compactors replayed first when the history used
    them); with the same starting weights and no finetuning in between this equals what
    ``MOSPPruner.prune()`` returned. ``masks=True``: ``{layer: {'weight': mask, 'bias': mask}}`` of
    0/1 tensors in ``model``'s own shapes, zero on the removed output channels of every layer
    that loses some (NNI's mask format); ``model`` must then already carry the history's compactors.
    """
    if masks:
        if history.compactor_sites and not getattr(model, SITES_ATTR, None):
            raise ValueError("the history pruned compactors that this model does not have; insert them "
                             "(replay_compactors) before asking for masks")
        kept = kept_channels(model, history, example_inputs)
        return channel_masks(model, kept)
    work, ignored = _prepared(model, history, example_inputs)
    return replay_history(work, history, example_inputs, ignored)


def channel_masks(model: nn.Module, kept: KeptChannels) -> Masks:
    """0/1 masks (NNI's format) zeroing the output channels of ``model`` that ``kept`` drops."""
    out: Masks = {}
    for name, module in model.named_modules():
        w = getattr(module, "weight", None)
        if name not in kept.out or not isinstance(w, torch.Tensor):
            continue
        dim = 1 if isinstance(module, nn.modules.conv._ConvTransposeNd) else 0
        if len(kept.out[name]) == w.shape[dim]:
            continue
        keep = torch.zeros(w.shape[dim], dtype=w.dtype, device=w.device)
        keep[torch.as_tensor(kept.out[name], dtype=torch.long, device=w.device)] = 1
        shape = [1] * w.dim()
        shape[dim] = -1
        out[name] = {"weight": keep.reshape(shape).expand_as(w).clone()}
        if isinstance(getattr(module, "bias", None), torch.Tensor):
            out[name]["bias"] = keep.clone()
    return out
