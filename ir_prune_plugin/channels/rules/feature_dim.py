"""Concats and splits along channels keep their index mapping in nets with 3-D parameters.

Torch-Pruning 1.6.1 works around ViT's class-token concat (which joins *tokens*, not channels)
by switching off the index mapping of every concat and split that has any 3-D parameter
upstream. Restormer's per-head ``temperature`` (shape ``(heads, 1, 1)``) is such a parameter, so
its decoder concats (``torch.cat([up, skip], 1)``) and its ``chunk(3, dim=1)`` / ``chunk(2,
dim=1)`` lost their offsets: a group then sends all of its indices to every input of the concat
(``IndexError`` in the importance, or wrong channels removed). :func:`restore_channel_mappings`
switches the mapping back on where the op works on dim 1 and the channel counts add up (the
inputs' widths sum to what the consumers read), which a token concat does not.
"""
from __future__ import annotations

from typing import Any

from torch_pruning import ops
from torch_pruning.dependency import shape_infer

__all__ = ["restore_channel_mappings"]


def _adds_up(graph: Any, node: Any) -> bool:
    if node.type == ops.OPTYPE.CONCAT:
        parts = [shape_infer.infer_out_channels_recursively(graph, n, [0]) for n in node.inputs]
        total = shape_infer.infer_in_channels_recursively(graph, node, [0])
    else:
        parts = list(getattr(node.module, "split_sizes", None) or [None])
        total = shape_infer.infer_out_channels_recursively(graph, node.inputs[0], [0]) if node.inputs else None
    return total is not None and all(p is not None for p in parts) and sum(parts) == total


def restore_channel_mappings(graph: Any) -> None:
    """Re-enable the index mapping of channel (dim 1) concats and splits that Torch-Pruning's
    ViT workaround switched off."""
    for node in graph.module2node.values():
        if node.type not in (ops.OPTYPE.CONCAT, ops.OPTYPE.SPLIT) or node.enable_index_mapping:
            continue
        if getattr(node.grad_fn, "_saved_dim", None) == 1 and _adds_up(graph, node):
            node.enable_index_mapping = True
