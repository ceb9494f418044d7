"""Channel-mixing ops: the channels a group moves through them are kept.

Torch-Pruning models ops it does not know as element-wise (channel ``c`` in is channel ``c``
out). That is wrong for ops that mix channels with each other or with space: attention
products (``bmm``, ``@``, ``einsum``, ``scaled_dot_product_attention``) and their softmax,
functional pixel (un)shuffle, channel shuffle, ``unfold``. A group that reaches one of them (the
q/k/v projections of an attention) cannot be cut safely with these rules, so it is left alone
and reported (MOSP then cuts q/k/v by its own attention rules: with the stream they read,
:mod:`.attention`, or as a width of their own, :mod:`.qkv_attention`); groups that do not (an MLP's hidden width between two Linear layers, convs) prune
as usual. Refusing the whole network is the last resort, when no group is left. A
``torch.split`` with explicit sizes (PLKSR's partial large-kernel conv) is treated the same way:
its sizes are constants in the code, so the channels it splits cannot be cut.

Layout ops (``permute``/``transpose`` into token layouts ``(B, HW, C)``, window partitions,
``roll``, ``rearrange``) keep the channel axis whole: groups through them (SwinIR's residual
stream, Uformer's LeFF hidden width) are pruned, and the forward check after every removal
(:mod:`ir_prune_plugin.channels.safety`) rolls back any that a reshape cannot follow.

Since a group that reaches a mixing op is left alone whatever lies beyond it,
:func:`stop_at_mixing_ops` ends Torch-Pruning's propagation there. Without it, the element-wise
reading of ``q @ k^T`` and ``attn @ v`` sends a q/k/v group around the attention in a loop that
re-adds the same layers with shifted index sets (SCUNet's windowed attention: > 14,000 group
entries and minutes of CPU for one group).
"""
from __future__ import annotations

from typing import Any

from torch_pruning import ops

__all__ = ["MIXING_OPS", "mixing_ops", "op_name", "stop_at_mixing_ops", "unsafe_layers"]

#: substrings of autograd node names (lower case) of ops that move or mix the channel axis
MIXING_OPS: tuple[str, ...] = (
    "bmm", "softmax", "pixelshuffle", "pixelunshuffle", "channelshuffle", "im2col", "unfold",
    "scaleddotproduct", "einsum", "baddbmm",
    "copyslices")   # x[:, :k] = f(x[:, :k]): an in-place write into part of the channels


def op_name(module: Any, grad_fn: Any = None) -> str | None:
    """The autograd node name of a Torch-Pruning op node that mixes channels (or splits them at
    sizes fixed in the code), else ``None``."""
    if isinstance(module, ops._SplitOp):
        name = type(grad_fn).__name__   # torch.split(x, [a, b]): the sizes cannot follow a cut
        return name if "splitwithsizes" in name.lower() else None
    if not isinstance(module, ops._ElementWiseOp):
        return None
    name = str(getattr(module, "_grad_fn", ""))
    low = name.lower()
    # MmBackward0 is a matmul of two activations; AddmmBackward0 is a Linear on tokens (not mixing)
    return name if low.startswith("mmbackward") or any(k in low for k in MIXING_OPS) else None


class _Stop:
    """Index mapping out of a channel-mixing op: nothing follows (such groups are left alone)."""

    def __call__(self, idxs: list) -> list:
        return []


def stop_at_mixing_ops(graph: Any) -> None:
    """End every dependency leaving a channel-mixing op (see module doc); groups still contain
    the op itself, so :func:`mixing_ops` finds it and the group is left alone as before."""
    for node in graph.module2node.values():
        if op_name(node.module, getattr(node, "grad_fn", None)) is not None:
            for dep in node.dependencies:
                dep.index_mapping[0] = _Stop()


def mixing_ops(group: Any) -> list[str]:
    """Channel-mixing ops that a Torch-Pruning group's channels pass through (sorted, unique)."""
    found = {op_name(item.dep.target.module, getattr(item.dep.target, "grad_fn", None)) for item in group}
    found.discard(None)
    return sorted(found)  # type: ignore[arg-type]


def unsafe_layers(graph: Any, root_module_types: tuple[type, ...]) -> dict[str, list[str]]:
    """``{layer name: mixing ops}`` for every layer whose output channels belong to a group
    that passes through a channel-mixing op (leave these layers' output channels alone)."""
    out: dict[str, list[str]] = {}
    for group in graph.get_all_groups(root_module_types=root_module_types):
        found = mixing_ops(group)
        if not found:
            continue
        for item in group:
            m = item.dep.target.module
            if graph.is_out_channel_pruning_fn(item.dep.handler) and m in graph._module2name:
                out[graph._module2name[m]] = found
    return out
