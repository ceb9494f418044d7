"""Prunable channel units for MOSP: Torch-Pruning coupled groups, their masks and their removal.

A *unit* is one Torch-Pruning group rooted at a layer's output channels, read into the engine's
one group model, :class:`~.tp_graph.ChannelGroup` (rules in :mod:`.tp_rules`): every layer whose
output channels go with the root's (residual adds couple several; a conv feeding a PixelShuffle loses
``r*r`` channels per root channel) plus the consumers whose input channels follow. MOSP decides
how many channels each unit loses; Torch-Pruning does the surgery.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, replace
from typing import Any, Iterator, Mapping, Sequence

import torch
from torch import nn

from torch_pruning import ops

from ..vocabulary import channel_dim
from .deadline import time_limit
from .rules.attention import StreamAttention, find_stream_attention, remove_stream_attention
from .rules.mixing import mixing_ops
from .rules.qkv_attention import QKVAttention, find_qkv_attention
from .safety import BrokenForwardError, check_forward, prune_group_checked, reference_shapes
from .tp_graph import ChannelGroup, build_dependency_graph, read_group, requires_grad_kept
from .tp_rules import ROOT_MODULE_TYPES, CompactorMagnitudeImportance

__all__ = ["KeptChannels", "UnitGraph"]


class UnitGraph:
    """Torch-Pruning dependency graph of ``model`` with MOSP's units, masking and removal."""

    def __init__(self, model: nn.Module, example_inputs: Any, ignored: Sequence[str] = (),
                 check: bool = False) -> None:
        self.model = model
        self.example_inputs = example_inputs
        modules = dict(model.named_modules())
        unknown = [n for n in ignored if n not in modules]
        if unknown:
            known = [n for n, m in modules.items() if isinstance(m, ROOT_MODULE_TYPES)]
            raise ValueError(f"ignored layers {unknown} are not modules of the model; "
                             f"prunable layers are e.g. {known[:12]}")
        self.names = {m: n for n, m in modules.items()}
        self.dg = build_dependency_graph(model, example_inputs, check=check)
        ignored_mods = [modules[n] for n in ignored]
        #: MOSP's units: the prunable channel groups, by root name
        self.units: dict[str, ChannelGroup] = {}
        #: channel groups left alone, root -> reason: they pass through a channel-mixing op (not
        #: units at all), or removing their channels broke the forward pass (rolled back)
        self.refused: dict[str, str] = {}
        mixing_groups: dict[str, ChannelGroup] = {}
        with time_limit(f"Torch-Pruning's channel groups of {type(model).__name__}"):
            for group in self.dg.get_all_groups(ignored_layers=ignored_mods, root_module_types=ROOT_MODULE_TYPES):
                if any(item.dep.target.type == ops.OPTYPE.OUTPUT for item in group):
                    continue
                root = group[0].dep.target.module
                mixing = mixing_ops(group)
                if mixing:   # attention q/k/v and the like: leave these channels alone
                    self.refused[self.names[root]] = f"its channels pass through channel-mixing ops {mixing}"
                    mixing_groups[self.names[root]] = read_group(self.dg, group, self.names)
                    continue
                self.units[self.names[root]] = read_group(self.dg, group, self.names)
        #: attention blocks whose q/k/v widths follow a unit's stream (cut with it), by unit root
        self.attention: dict[str, list[StreamAttention]] = {}
        for root, unit in list(self.units.items()):
            found = find_stream_attention(model, unit.in_layers, unit.out_layers, self.refused)
            if found:
                self.attention[root] = found
                widths = {p: m * (modules[p].in_features == unit.channels)
                          for a in found for p, m in zip(a.projections, a.chunks)}
                self.units[root] = replace(unit, out_layers={**widths, **unit.out_layers})
        #: free-standing q/k/v attention units (their own inner width), by unit root
        self.qkv: dict[str, QKVAttention] = {}
        self._find_qkv(mixing_groups, set(ignored))
        self._imp = CompactorMagnitudeImportance(p=2)
        self.shapes = reference_shapes(model, example_inputs)  #: output shapes to keep, per mode

    def _find_qkv(self, groups: Mapping[str, ChannelGroup], ignored: set[str]) -> None:
        """Make the q/k/v width of each free-standing attention a unit (see :mod:`.rules.qkv_attention`)."""
        claimed = {p for atts in self.attention.values() for a in atts for p in a.projections}
        for root, group in groups.items():
            if set(group.out_layers) & (claimed | ignored):
                continue
            try:
                att = find_qkv_attention(self.model, self.dg, group.out_layers)
            except ValueError as exc:
                self.refused[root] = f"{self.refused[root]}; {exc}"
                continue
            if att is None or att.out_proj in ignored or att.head_width(self.model) < 2:
                continue
            try:   # the net must follow a narrower q/k/v (not so where it reshapes to the stream's width)
                with att.masked(self.model, [0]):
                    check_forward(self.model, self.example_inputs, change=f"cutting the q/k/v width of {att.proj!r}",
                                  modes=("eval",))
            except BrokenForwardError as exc:
                self.refused[root] = f"{self.refused[root]}; {exc}"
                continue
            mult = 3 * att.heads
            self.qkv[root] = att
            self.units[root] = ChannelGroup(
                root=root, channels=att.head_width(self.model),
                out_layers={n: mult for n in (att.proj, att.dwconv) if n is not None},
                in_layers=tuple(n for n in (att.dwconv, att.out_proj) if n is not None))
            del self.refused[root]

    def widths(self) -> dict[str, int]:
        """Current output channels of every unit root."""
        return {root: self._width(root) for root in self.units}

    def _width(self, root: str) -> int:
        if root in self.qkv:
            return self.qkv[root].head_width(self.model)
        module = self.model.get_submodule(root)
        return int(self.dg.get_pruner_of_module(module).get_out_channels(module))

    def group(self, root: str, idxs: Sequence[int]) -> Any:
        """The Torch-Pruning group removing ``idxs`` of ``root``'s output channels."""
        module = self.model.get_submodule(root)
        pruner = self.dg.get_pruner_of_module(module)
        return self.dg.get_pruning_group(module, pruner.prune_out_channels, list(idxs))

    def channel_order(self, root: str) -> list[int]:
        """Channels of the unit, least important (group L2 magnitude) first; ties by index."""
        width = self._width(root)
        with torch.no_grad():
            scores = self.qkv[root].scores(self.model) if root in self.qkv else \
                self._imp(self.group(root, range(width)))
        if scores is None or len(scores) != width:
            return list(range(width))
        scores = scores.detach().cpu().double()
        return sorted(range(width), key=lambda i: (float(scores[i]), i))

    @contextlib.contextmanager
    def masked(self, root: str, idxs: Sequence[int]) -> Iterator[None]:
        """Temporarily zero ``idxs`` of the unit's output channels (what removing them computes)."""
        if root in self.qkv:
            with self.qkv[root].masked(self.model, idxs):
                yield
            return
        handles = []
        try:
            for dep, dep_idxs in self.group(root, idxs):
                module = dep.target.module
                if not self.dg.is_out_channel_pruning_fn(dep.handler) or not isinstance(module, nn.Module) \
                        or not len(dep_idxs):
                    continue
                dim = channel_dim(module)
                index = torch.as_tensor(sorted(set(dep_idxs)), dtype=torch.long)
                handles.append(module.register_forward_hook(_zeroer(index, dim)))
            yield
        finally:
            for h in handles:
                h.remove()

    def remove(self, plan: Mapping[str, Sequence[int]], *, strict: bool = False,
               kept: KeptChannels | None = None) -> dict[str, list[int]]:
        """Physically remove output channels ``{root: idxs}`` of this graph's model, in place.

        Each unit's removal is forward-checked (eval and train mode, output shapes kept); a
        removal that breaks the forward is rolled back, the unit is recorded in ``refused``
        (and left alone from then on) and, with ``strict``, :class:`BrokenForwardError` is
        raised. Returns what was removed; ``kept`` (optional) follows every layer's surviving
        channels in its original numbering.
        """
        unknown = [root for root in plan if root not in self.units]
        if unknown:
            raise ValueError(f"{unknown[0]!r} is not a prunable unit root; units: {sorted(self.units)[:12]}")
        done: dict[str, list[int]] = {}
        with requires_grad_kept(self.model):
            for root, idxs in plan.items():   # one group at a time: concat offsets change as we go
                if not len(idxs) or root in self.refused:
                    continue
                idxs = [int(i) for i in idxs]
                planned = self._planned(root, idxs) if kept is not None else None
                if prune_group_checked(self.model, self.example_inputs, self.dg, lambda: self._removal(root, idxs), root,
                                       f"removing {len(idxs)} channels of unit {root!r}", self.shapes,
                                       self.refused, strict=strict):
                    done[root] = idxs
                    if planned is not None:
                        kept.record(planned)
        return done


    def _planned(self, root: str, idxs: Sequence[int]) -> list[tuple[str | None, bool, Sequence[int]]]:
        """What removing ``idxs`` of ``root`` cuts, for :meth:`KeptChannels.record`: (layer, output
        side?, indices) per layer."""
        if root not in self.qkv:
            return [(self.names.get(dep.target.module), self.dg.is_out_channel_pruning_fn(dep.handler), dep_idxs)
                    for dep, dep_idxs in self.group(root, idxs)]
        att = self.qkv[root]
        rows, cols = att.channels(self.model, idxs)
        return [(n, True, rows) for n in (att.proj, att.dwconv) if n is not None] + \
            [(n, False, rows) for n in (att.dwconv,) if n is not None] + [(att.out_proj, False, cols)]

    def _removal(self, root: str, idxs: Sequence[int]) -> Any:
        if root in self.qkv:
            return _QKVRemoval(self.qkv[root], self.model, idxs, self.dg)
        return _Removal(self.group(root, idxs), self.model, self.attention.get(root, ()))


@dataclass
class _Removal:
    """A unit's Torch-Pruning group plus the attention blocks that follow its stream's width."""

    group: Any
    model: nn.Module
    attention: Sequence[StreamAttention]

    def prune(self) -> None:
        self.group.prune()
        for att in self.attention:
            remove_stream_attention(self.model, att)


@dataclass
class _QKVRemoval:
    """A free-standing q/k/v attention unit's removal (per-head positions ``local``)."""

    att: QKVAttention
    model: nn.Module
    local: Sequence[int]
    graph: Any

    def prune(self) -> None:
        self.att.remove(self.model, self.local, self.graph)


@dataclass
class KeptChannels:
    """Surviving output (``out``) and input (``inp``) channels per layer, in original numbering."""

    out: dict[str, list[int]]
    inp: dict[str, list[int]]

    @classmethod
    def of(cls, model: nn.Module) -> "KeptChannels":
        """Every channel of every weighted layer of ``model``."""
        out, inp = {}, {}
        for name, m in model.named_modules():
            w = getattr(m, "weight", None)
            if isinstance(w, torch.Tensor) and w.dim() >= 2:
                o, i = (1, 0) if isinstance(m, nn.modules.conv._ConvTransposeNd) else (0, 1)
                out[name], inp[name] = list(range(w.shape[o])), list(range(w.shape[i] * getattr(m, "groups", 1)))
        return cls(out, inp)

    def record(self, cuts: Sequence[tuple[str | None, bool, Sequence[int]]]) -> None:
        """Drop the channels a removal cuts: (layer, output side?, indices in its current numbering)."""
        for name, out, idxs in cuts:
            if name is None or name not in self.out:
                continue
            table = self.out if out else self.inp
            gone = set(int(i) for i in idxs)
            table[name] = [c for k, c in enumerate(table[name]) if k not in gone]


def _zeroer(index: torch.Tensor, dim: int):
    def hook(_module: nn.Module, _inputs: Any, output: torch.Tensor) -> torch.Tensor:
        out = output.clone()
        out.index_fill_(dim % out.dim(), index.to(out.device), 0.0)
        return out
    return hook
