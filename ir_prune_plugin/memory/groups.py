"""MOSP pruning groups: per step, the prunable layers live together and bytes per out-channel."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Mapping

from .channel_rules import ChannelMap, ChannelPropagator
from .liveness import Liveness, StorageInfo
from .profile import PruningGroup

__all__ = ["GroupCost", "build_groups", "storage_share"]


@dataclass(frozen=True)
class GroupCost:
    """A pruning group's bytes as a linear function of widths: ``fixed + sum(per_unit[u] * width[u])``.

    The one model of "peak as a linear function of widths": spatial sizes do not change when
    channels go, so one profile prices every candidate of the same graph. ``per_unit`` is keyed by
    layer (:meth:`from_group`) or by channel-group root (MOSP's units).
    """

    step: int
    layers: tuple[str, ...]
    fixed: int
    per_unit: dict[str, int]

    @classmethod
    def from_group(cls, group: PruningGroup) -> "GroupCost":
        """The group's cost in its layers' output widths."""
        return cls(int(group.step), tuple(group.layers), int(group.fixed_bytes),
                   {layer: int(b) for layer, b in zip(group.layers, group.bytes_per_channel)})

    def bytes(self, widths: Mapping[str, int]) -> int:
        """Group bytes at the given widths."""
        return self.fixed + sum(b * widths[u] for u, b in self.per_unit.items())


def storage_share(info: StorageInfo, m: ChannelMap | None) -> tuple[Counter, int]:
    """Split one storage's bytes into ``{layer: bytes per out-channel}`` and fixed bytes.

    A tensor of ``C`` channels costs ``nbytes / C`` per channel; a segment of ``t_ch`` tensor
    channels from ``l_ch`` layer channels costs ``nbytes / C * t_ch / l_ch`` per layer channel
    (e.g. ``1/r^2`` of a channel after ``pixel_shuffle(r)``, ``1/3`` after ``chunk(3)``), rounded
    down: remainders stay fixed, so the parts always add up to ``nbytes`` exactly (and the slope
    errs low by under a byte per channel, so smaller widths are over-, never under-estimated).
    """
    per_layer: Counter = Counter()
    if m is None or m.dim >= info.value.ndim:
        return per_layer, info.nbytes
    c = info.value.shape[m.dim]
    if c == 0 or info.nbytes % c or m.channels != c:
        return per_layer, info.nbytes
    per_t = info.nbytes // c
    fixed = 0
    for s in m.segs:
        part = per_t * s.t_ch
        if s.layer is None or s.l_ch == 0 or part < s.l_ch:
            fixed += part
        else:
            per_layer[s.layer] += part // s.l_ch
            fixed += part % s.l_ch
    return per_layer, fixed


def build_groups(lv: Liveness, prop: ChannelPropagator) -> list[PruningGroup]:
    """One group per step (identical consecutive groups merged into the first).

    ``group.bytes == group.fixed_bytes + sum(bpc * out_channels)`` and equals the timeline.
    """
    n = len(lv.steps)
    starts: dict[int, list[StorageInfo]] = {}
    ends: dict[int, list[StorageInfo]] = {}
    shares = {}
    for s in lv.storages:
        m = prop.map_of(s.node, 0 if s.kind == "workspace" else s.index)
        shares[id(s)] = storage_share(s, m)
        starts.setdefault(s.alloc, []).append(s)
        ends.setdefault(s.last + 1, []).append(s)
    bpc: Counter = Counter()
    fixed = 0
    groups: list[PruningGroup] = []
    last_key = None
    order = prop.layer_order
    for i in range(n):
        for s in ends.get(i, ()):
            per_layer, f = shares[id(s)]
            bpc.subtract(per_layer)
            fixed -= f
        for s in starts.get(i, ()):
            per_layer, f = shares[id(s)]
            bpc.update(per_layer)
            fixed += f
        layers = sorted((k for k, v in bpc.items() if v > 0), key=lambda k: order.get(k, 0))
        key = (tuple(layers), tuple(bpc[k] for k in layers), fixed)
        if key == last_key:
            continue
        last_key = key
        chans = tuple(prop.layer_channels[k] for k in layers)
        total = fixed + sum(b * c for b, c in zip(key[1], chans))
        groups.append(PruningGroup(step=i, layers=key[0], bytes_per_channel=key[1],
                                   out_channels=chans, fixed_bytes=fixed, bytes=total))
    return groups
