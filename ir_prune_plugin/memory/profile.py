"""Result types of the peak-memory analysis: tensor records, MOSP pruning groups, the profile."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..vocabulary import format_bytes
from .plot import plot_timeline


def _short_set(names: frozenset[str], keep: int = 6) -> str:
    items = sorted(names)
    more = f", ... (+{len(items) - keep})" if len(items) > keep else ""
    return "{" + ", ".join(items[:keep]) + more + "}"


@dataclass(frozen=True)
class TensorRecord:
    """One activation storage: the graph node that allocated it and its size.

    ``kind`` is ``'input'`` (a model input), ``'activation'``, ``'output'`` (returned by the
    model) or ``'workspace'`` (a hidden allocation of an op, e.g. max-pool indices).
    ``alloc_step``/``free_step`` bound the steps during which it is live (both inclusive).
    """

    name: str
    module: str
    op: str
    shape: tuple[int, ...]
    dtype: torch.dtype
    bytes: int
    kind: str
    alloc_step: int
    free_step: int


@dataclass(frozen=True)
class Step:
    """One executed operation of the exported graph."""

    index: int
    name: str
    op: str
    module: str


@dataclass(frozen=True)
class PruningGroup:
    """Prunable layers whose output channels are live together at one step (a MOSP group).

    ``bytes == fixed_bytes + sum(bpc * out_channels)`` over ``zip(bytes_per_channel,
    out_channels)``: removing one output channel of ``layers[i]`` frees
    ``bytes_per_channel[i]`` bytes at this step.
    """

    step: int
    layers: tuple[str, ...]
    bytes_per_channel: tuple[int, ...]
    out_channels: tuple[int, ...]
    fixed_bytes: int
    bytes: int

    def channel_bytes(self) -> dict[str, int]:
        """``{layer: bytes per output channel}`` for this group."""
        return dict(zip(self.layers, self.bytes_per_channel))


@dataclass(frozen=True)
class MemoryProfile:
    """Peak activation memory of one forward pass in the exported operator order.

    Model inputs are live from the first step until their last use; outputs stay live until
    the end; parameters, buffers and constants are not counted. ``timeline[i]`` is the number
    of bytes live while step ``i`` runs (its inputs and its outputs together).
    """

    peak_bytes: int
    peak_step: int
    timeline: tuple[int, ...]
    steps: tuple[Step, ...]
    tensors: tuple[TensorRecord, ...]
    groups: tuple[PruningGroup, ...]
    coupled: tuple[frozenset[str], ...]
    pinned: frozenset[str]
    layer_channels: dict[str, int]
    unsupported_ops: dict[str, int]
    input_shapes: tuple[tuple[int, ...], ...]
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def live_at_peak(self) -> list[TensorRecord]:
        """Storages live at the peak step, largest first."""
        return self.live_at(self.peak_step)

    def live_at(self, step: int) -> list[TensorRecord]:
        """Storages live while ``step`` runs, largest first."""
        if not 0 <= step < len(self.steps):
            raise ValueError(f"step must be in [0, {len(self.steps)}), got {step!r}")
        live = [t for t in self.tensors if t.alloc_step <= step <= t.free_step]
        return sorted(live, key=lambda t: -t.bytes)

    @property
    def peak_group(self) -> PruningGroup:
        """The pruning group with the most live bytes (the one MOSP cuts first)."""
        return self.top_groups(1)[0]

    def top_groups(self, k: int = 5) -> list[PruningGroup]:
        """The ``k`` groups with the most live bytes, largest first."""
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ValueError(f"k must be a positive int, got {k!r}")
        return sorted(self.groups, key=lambda g: (-g.bytes, g.step))[:k]

    def layer_bytes_per_channel(self) -> dict[str, int]:
        """For each prunable layer, its largest bytes-per-output-channel over all groups."""
        out: dict[str, int] = {}
        for g in self.groups:
            for name, bpc in zip(g.layers, g.bytes_per_channel):
                out[name] = max(out.get(name, 0), bpc)
        return out

    def summary(self, top: int = 5) -> str:
        """A human-readable report: peak, tensors at the peak, top groups (sizes in MiB)."""
        s = self.steps[self.peak_step]
        lines = [f"peak activation memory: {format_bytes(self.peak_bytes)} ({self.peak_bytes} bytes) "
                 f"at step {self.peak_step}/{len(self.steps)} ({s.op} in '{s.module or '<root>'}')",
                 "live at the peak:"]
        for t in self.live_at_peak:
            lines.append(f"  {format_bytes(t.bytes):>12}  {t.kind:<10} {t.name:<24} "
                         f"{str(list(t.shape)):<22} {str(t.dtype).replace('torch.', '')}  "
                         f"'{t.module or '<root>'}'")
        lines.append(f"top {top} pruning groups (of {len(self.groups)}):")
        for g in self.top_groups(top):
            lines.append(f"  step {g.step:>4}: {format_bytes(g.bytes):>12} (fixed {format_bytes(g.fixed_bytes)})")
            for name, bpc, ch in zip(g.layers, g.bytes_per_channel, g.out_channels):
                lines.append(f"      {name:<28} {ch:>5} ch x {bpc / 1024:10.1f} KB/ch")
        if self.coupled:
            lines.append("coupled layers (must keep equal widths): "
                         + "; ".join(_short_set(c) for c in self.coupled))
        if self.unsupported_ops:
            lines.append("ops counted as fixed width (unknown channel rule): "
                         + ", ".join(f"{k} x{v}" for k, v in sorted(self.unsupported_ops.items())))
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()

    def plot(self, path: str | Path, *, title: str | None = None) -> Path:
        """Write a PNG of live MiB over execution steps with the peak marked."""
        return plot_timeline(self, path, title=title)
