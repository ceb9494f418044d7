"""BasicSR integration: ``register()``, ``IRPruneModel`` and the ``pruning:`` YAML block.

Nothing is registered on import: call :func:`register` (our train entry does), then use
``model_type: IRPruneModel`` and a ``pruning:`` block in a BasicSR YAML.
"""
from __future__ import annotations

from typing import Any

from .options import PruningConfig, parse_pruning_block, pruning_config
from .registry import register

__all__ = ["IRPruneModel", "PruningConfig", "parse_pruning_block", "pruning_config", "register",
           "train_main", "test_main"]


def __getattr__(name: str) -> Any:
    """Lazy access to the members that import basicsr (it needs our shims first)."""
    if name == "IRPruneModel":
        from .model import IRPruneModel
        return IRPruneModel
    if name in ("train_main", "test_main"):
        from . import entry
        return getattr(entry, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
