"""Torch-Pruning adapter: what a Torch-Pruning user imports to prune restoration nets.

One call adds our rules to any ``MetaPruner``::

    pruner = tp.pruner.MetaPruner(model, x, CompactorMagnitudeImportance(), pruning_ratio=0.5,
                                  **tp_kwargs(model, x))

On a frozen model, step the pruner inside ``with requires_grad_kept(model, trace=True):``.
The rules themselves are the plugin's channel engine (:mod:`ir_prune_plugin.channels.tp_rules`,
:mod:`ir_prune_plugin.channels.tp_graph`); this module only re-exports them.
"""
from __future__ import annotations

from ..channels.tp_graph import UnsupportedArchitectureError, requires_grad_kept, tp_kwargs
from ..channels.tp_rules import CompactorMagnitudeImportance, CompactorPruner, PixelShufflePruner

__all__ = ["CompactorMagnitudeImportance", "CompactorPruner", "PixelShufflePruner",
           "UnsupportedArchitectureError", "requires_grad_kept", "tp_kwargs"]
