"""Per-construct channel rules for modern IR blocks, applied to every graph the plugin builds.

One small module per construct. Each rule is a function ``rule(graph)`` run when Torch-Pruning
refreshes its index mappings (before every group is built): :data:`GRAPH_RULES` before its own
update, :data:`POST_RULES` after it; only on graphs built with the plugin's pruners (see
:func:`ir_prune_plugin.integrations.torch_pruning.tp_kwargs`). :func:`prepare_model` fixes, once
and without changing what the model computes, constructs that hide dependencies from tracing.
"""
from __future__ import annotations

from typing import Any, Callable

from torch import nn

from .expand import drop_non_repeat_expand_mappings
from .feature_dim import restore_channel_mappings
from .inplace import disable_inplace
from .mixing import stop_at_mixing_ops
from .reparam import fuse_reparam
from .split import couple_equal_chunks, refresh_split_offsets

__all__ = ["GRAPH_RULES", "POST_RULES", "apply_graph_rules", "apply_post_rules", "prepare_model"]

#: rules run before Torch-Pruning's own index-mapping update, in order
GRAPH_RULES: tuple[Callable[[Any], None], ...] = (restore_channel_mappings, refresh_split_offsets)
#: rules run after it (they refine the mappings it sets)
POST_RULES: tuple[Callable[[Any], None], ...] = (drop_non_repeat_expand_mappings, couple_equal_chunks,
                                                  stop_at_mixing_ops)


def apply_graph_rules(graph: Any) -> None:
    """Run every pre-mapping construct rule on a ``tp.DependencyGraph``."""
    for rule in GRAPH_RULES:
        rule(graph)


def apply_post_rules(graph: Any) -> None:
    """Run every post-mapping construct rule on a ``tp.DependencyGraph``."""
    for rule in POST_RULES:
        rule(graph)


def prepare_model(model: nn.Module, example_inputs: Any = None, *, fuse: bool = True) -> None:
    """Make ``model`` traceable for channel dependencies, in place: in-place activations off and
    (``fuse``) re-parameterised blocks fused to deploy form (same eval-mode outputs)."""
    if fuse:
        fuse_reparam(model)
    disable_inplace(model, example_inputs)
