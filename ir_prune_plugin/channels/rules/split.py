"""``chunk``/``split`` along channels: keep a split's offsets in step with its sizes.

Torch-Pruning 1.6.1's ``SplitPruner`` updates a split op's ``split_sizes`` when a group removes
channels through it, but stores the new offsets on the pruner instead of the op; the index
mapping of the *next* group is then built from the traced offsets. After the first removal in a
NAFNet SimpleGate (``x1, x2 = x.chunk(2, dim=1); x1 * x2``) channel ``c`` of the second half
maps to a channel that no longer exists (``IndexError``), and chunks feeding per-chunk layers
(SAFMN) are cut at the wrong places. :func:`refresh_split_offsets` recomputes the offsets from
the sizes before every group is built.
"""
from __future__ import annotations

from typing import Any

from torch_pruning import _helpers, ops

__all__ = ["couple_equal_chunks", "refresh_split_offsets"]


def refresh_split_offsets(graph: Any) -> None:
    """Set every channel split op's ``offsets`` to the running sum of its current ``split_sizes``."""
    for node in graph.module2node.values():
        if node.type != ops.OPTYPE.SPLIT:
            continue
        sizes = getattr(node.module, "split_sizes", None)
        if not sizes or any(s is None for s in sizes):
            continue
        offsets = [0]
        for s in sizes:
            offsets.append(offsets[-1] + int(s))
        node.module.offsets = offsets


class _SameInEveryChunk:
    """Index mapping: a channel of one chunk -> that position in every chunk, then ``then``."""

    def __init__(self, size: int, chunks: int, then: Any) -> None:
        self.size, self.chunks, self.then = size, chunks, then

    def __call__(self, idxs: list) -> list:
        out, seen = [], set()
        for i in idxs:
            local = i.idx % self.size
            for k in range(self.chunks):
                j = k * self.size + local
                if j not in seen:
                    seen.add(j)
                    out.append(_helpers._HybridIndex(idx=j, root_idx=i.root_idx))
        return self.then(out) if self.then is not None else out


def couple_equal_chunks(graph: Any) -> None:
    """``x.chunk(n, dim=1)`` (equal parts): remove the same positions from every chunk.

    ``chunk`` splits whatever width it gets into equal parts, so the layers after it (SAFMN's
    per-chunk depthwise convs, a gate's two halves) only stay consistent if each chunk loses the
    same channels. Run after Torch-Pruning's own split mapping (which it wraps).
    """
    for node in graph.module2node.values():
        if node.type != ops.OPTYPE.SPLIT or not hasattr(node.grad_fn, "_saved_split_size"):
            continue
        sizes = getattr(node.module, "split_sizes", None)
        if not sizes or len(sizes) < 2 or len(set(sizes)) != 1 or sizes[0] is None:
            continue
        for dep in node.dependencies:
            first = dep.index_mapping[0]
            if isinstance(first, _SameInEveryChunk):
                first = first.then
            dep.index_mapping[0] = _SameInEveryChunk(int(sizes[0]), len(sizes), first)
