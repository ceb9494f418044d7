"""Torch-Pruning layer rules of the channel engine: Compactor and PixelShuffle pruners, the
index mapping across ``nn.PixelShuffle`` and an importance that scores compactor channels.

Output channel ``c`` of a shuffle with factor ``r`` is built from input channels
``c*r*r ... c*r*r + r*r - 1``, which Torch-Pruning 1.6.1 would otherwise treat as an element-wise
op (``IndexError`` on EDSR / RCAN / MSRResNet upsamplers). The mapping rule is installed once,
idempotently, and only acts on graphs where our ``PixelShufflePruner`` is registered.
"""
from __future__ import annotations

import weakref
from typing import Any, Sequence

import torch
import torch_pruning as tp
from torch import nn
from torch_pruning import _helpers
from torch_pruning.dependency import index_mapping as _tp_index_mapping
from torch_pruning.dependency import shape_infer as _tp_shape_infer

from ..vocabulary import CHANNEL_PRUNABLE_TYPES, Compactor, TokenCompactor
from .rules import apply_graph_rules, apply_post_rules

__all__ = ["CompactorMagnitudeImportance", "CompactorPruner", "PixelShufflePruner", "ROOT_MODULE_TYPES",
           "customized_pruners", "install_index_mapping_rule", "update_pixel_shuffle_mappings"]


# --------------------------------------------------------------------------- layer rules
class CompactorPruner(tp.pruner.BasePruningFunc):
    """Prunes ``Compactor.weight``; its output and input channels are *not* coupled, so the
    compactor's outputs form a group with their consumers and its inputs follow the producer."""

    TARGET_MODULES = Compactor

    def prune_out_channels(self, layer: Compactor, idxs: Sequence[int]) -> Compactor:
        keep = sorted(set(range(layer.out_channels)) - set(int(i) for i in idxs))
        layer.weight = self._prune_parameter_and_grad(layer.weight, keep, 0)
        return layer

    def prune_in_channels(self, layer: Compactor, idxs: Sequence[int]) -> Compactor:
        keep = sorted(set(range(layer.in_channels)) - set(int(i) for i in idxs))
        layer.weight = self._prune_parameter_and_grad(layer.weight, keep, 1)
        return layer

    def get_out_channels(self, layer: Compactor) -> int:
        return layer.out_channels

    def get_in_channels(self, layer: Compactor) -> int:
        return layer.in_channels


class PixelShufflePruner(tp.pruner.BasePruningFunc):
    """Rule for ``nn.PixelShuffle``: parameter-free, input and output coupled (channel ``c`` of
    the output is the block ``c*r^2 .. c*r^2+r^2-1`` of the input, see ``_BlockIndexMapping``).

    The shuffle's node lives in *output* channel coordinates, so a group rooted at it removes
    whole blocks of the producing conv. Channel counts are learnt from the graph (the module
    itself does not know them) and kept per module in this pruner.
    """

    TARGET_MODULES = nn.PixelShuffle

    def __init__(self) -> None:
        super().__init__()
        self._channels: "weakref.WeakKeyDictionary[nn.Module, int]" = weakref.WeakKeyDictionary()
        install_index_mapping_rule()  # any graph this pruner is registered in gets the mapping

    def prune_out_channels(self, layer: nn.PixelShuffle, idxs: Sequence[int]) -> nn.PixelShuffle:
        if layer in self._channels:
            self._channels[layer] -= len(set(idxs))
        return layer

    prune_in_channels = prune_out_channels  # one coordinate system: output channels

    def get_out_channels(self, layer: nn.PixelShuffle) -> int | None:
        return self._channels.get(layer)

    def get_in_channels(self, layer: nn.PixelShuffle) -> int | None:
        c = self._channels.get(layer)
        return None if c is None else c * layer.upscale_factor ** 2


class _BlockIndexMapping:
    """Index mapping across a pixel shuffle with block size ``b = r*r``.

    ``expand``: shuffle channel ``c`` -> producer channels ``c*b .. c*b+b-1``;
    otherwise producer channel ``i`` -> shuffle channel ``i // b`` (each block once).
    """

    def __init__(self, block: int, expand: bool) -> None:
        self.block, self.expand = block, expand

    def __call__(self, idxs: list) -> list:
        b = self.block
        if self.expand:
            return [_helpers._HybridIndex(idx=i.idx * b + k, root_idx=i.root_idx)
                    for i in idxs for k in range(b)]
        seen: dict[int, Any] = {}
        for i in idxs:
            seen.setdefault(i.idx // b, i.root_idx)
        return [_helpers._HybridIndex(idx=c, root_idx=r) for c, r in seen.items()]


def learn_pixel_shuffle_channels(graph: tp.DependencyGraph) -> None:
    """Record each PixelShuffle's output channels (from its producer) in our pruner. Runs before
    Torch-Pruning's own index mappings: a concat after a shuffle (Restormer's decoder) needs
    them for its offsets, else every input of the concat gets all of its indices."""
    pruner = graph.CUSTOMIZED_PRUNERS.get(nn.PixelShuffle)
    if not isinstance(pruner, PixelShufflePruner):
        return  # not our graph: leave Torch-Pruning's behaviour alone
    for module, node in graph.module2node.items():
        if isinstance(module, nn.PixelShuffle):
            block = module.upscale_factor ** 2
            for in_node in node.inputs:
                cin = _tp_shape_infer.infer_out_channels_recursively(graph, in_node, [0])
                if cin is not None and cin % block == 0:
                    pruner._channels[module] = cin // block


def update_pixel_shuffle_mappings(graph: tp.DependencyGraph) -> None:
    """Set block index mappings on the edges between each PixelShuffle and its producer."""
    pruner = graph.CUSTOMIZED_PRUNERS.get(nn.PixelShuffle)
    if not isinstance(pruner, PixelShufflePruner):
        return  # not our graph: leave Torch-Pruning's behaviour alone
    learn_pixel_shuffle_channels(graph)
    for module, node in graph.module2node.items():
        if not isinstance(module, nn.PixelShuffle):
            continue
        block = module.upscale_factor ** 2
        for in_node in node.inputs:
            for dep in node.dependencies:
                if dep.target is in_node:
                    dep.index_mapping[0] = _BlockIndexMapping(block, expand=True)
            for dep in in_node.dependencies:
                if dep.target is node:
                    dep.index_mapping[0] = _BlockIndexMapping(block, expand=False)


def install_index_mapping_rule() -> None:
    """Wrap Torch-Pruning's ``update_index_mapping`` once so graphs built by MetaPruner get the
    PixelShuffle rule too (a no-op for graphs without our PixelShufflePruner)."""
    current = _tp_index_mapping.update_index_mapping
    if getattr(current, "_irprune_wrapped", False):
        return

    def update_index_mapping(graph: tp.DependencyGraph) -> None:
        ours = isinstance(graph.CUSTOMIZED_PRUNERS.get(nn.PixelShuffle), PixelShufflePruner)
        if ours:
            apply_graph_rules(graph)
            learn_pixel_shuffle_channels(graph)
        current(graph)
        if ours:
            apply_post_rules(graph)
        update_pixel_shuffle_mappings(graph)

    update_index_mapping._irprune_wrapped = True  # type: ignore[attr-defined]
    update_index_mapping.__doc__ = current.__doc__
    _tp_index_mapping.update_index_mapping = update_index_mapping


# --------------------------------------------------------------------------- importance
class CompactorMagnitudeImportance(tp.importance.GroupMagnitudeImportance):
    """Torch-Pruning's group magnitude importance, extended to Compactor weights and to groups
    whose root channels map to blocks of several producer channels (PixelShuffle).

    Use it instead of ``tp.importance.MagnitudeImportance`` with :func:`tp_kwargs`: the stock one
    sizes its score vector by the first scored layer, which is wrong for shuffle-rooted groups.
    """

    def __call__(self, group: Any) -> torch.Tensor | None:
        self._root_len = 1 + max(group[0].root_idxs)
        self._extra = self._compactor_terms(group)
        imp = super().__call__(group)
        if imp is None and self._extra[0]:
            imp = self._normalize(self._reduce([], []), self.normalizer)
        return imp

    def _compactor_terms(self, group: Any) -> tuple[list[torch.Tensor], list[list[int]]]:
        imps, roots = [], []
        for item in group:
            layer, fn = item.dep.layer, item.dep.pruning_fn
            if not isinstance(layer, Compactor):
                continue
            w = layer.weight.detach().flatten(2).squeeze(2)  # (out, in)
            if getattr(fn, "__func__", None) is CompactorPruner.prune_out_channels:
                imps.append(w[item.idxs].abs().pow(self.p).sum(1))
            else:
                imps.append(w[:, item.idxs].abs().pow(self.p).sum(0))
            roots.append(list(item.root_idxs))
        return imps, roots

    def _reduce(self, group_imp: list, group_idxs: list) -> torch.Tensor:
        pairs = [(i, r) for i, r in zip(list(group_imp) + self._extra[0], list(group_idxs) + self._extra[1])
                 if not any(x is None for x in r)]
        if not pairs:
            return []
        # Fold every term onto the root's channel axis first, so blocks (PixelShuffle) sum up and
        # the parent's reduction sees vectors of the root length.
        folded = []
        for imp, root in pairs:
            v = torch.zeros(self._root_len, dtype=torch.float32, device=imp.device)
            v.scatter_add_(0, torch.as_tensor(root, device=imp.device), imp.float())
            folded.append(v)
        full = list(range(self._root_len))
        return super()._reduce(folded, [full] * len(folded))


# --------------------------------------------------------------------------- registration
def customized_pruners() -> dict[type, tp.pruner.BasePruningFunc]:
    """Fresh instances of our layer rules, keyed by module type (per graph, never global)."""
    compactor = CompactorPruner()   # Torch-Pruning matches the exact type: the token subclass too
    return {Compactor: compactor, TokenCompactor: compactor, nn.PixelShuffle: PixelShufflePruner()}


#: the layers whose output channels root a Torch-Pruning group in our graphs: the channel-prunable
#: layers, and a PixelShuffle (its channels are the r*r blocks of the conv before it, moved together)
ROOT_MODULE_TYPES: tuple[type, ...] = CHANNEL_PRUNABLE_TYPES + (nn.PixelShuffle,)
