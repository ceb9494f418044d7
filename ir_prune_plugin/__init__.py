"""ir-prune-plugin: memory- and compute-budgeted pruning (MOSP, SLS) for image-restoration nets.

The public surface (DESIGN.md "Contract"), re-exported one by one and imported on first use
(so ``import ir_prune_plugin`` stays cheap for subprocesses and the CLI):

* :func:`estimate_peak_memory` / :func:`measure_peak_memory` -- peak activation memory.
* :class:`Compactor` / :func:`insert_compactors` -- identity 1x1 convs on skip connections.
* :class:`MOSPPruner` -- channel pruning to a peak-memory budget.
* :class:`SLSPruner` -- layer-wise N:M sparsity search under a MACs budget.
* :func:`save_pruned` / :func:`load_pruned` -- round-trip pruned architectures and weights.

Ecosystem adapters live in ``ir_prune_plugin.integrations`` (torch_pruning, nni, basicsr).
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._version import __version__
from .compat import install_import_hook

install_import_hook()  # BasicSR 1.4.2 imports a torchvision module removed in 0.17; see compat.py

_EXPORTS = {
    "Compactor": "vocabulary", "insert_compactors": "channels.compactor",
    "MOSPOptions": "channels.mosp", "MOSPPruner": "channels.mosp",
    "load_pruned": "io", "save_pruned": "io",
    "MeasuredMemory": "memory", "MemoryProfile": "memory", "PruningGroup": "memory", "TraceError": "memory",
    "estimate_peak_memory": "memory", "measure_both": "memory", "measure_peak_memory": "memory",
    "SLSOptions": "sparsity", "SLSPruner": "sparsity", "check_nm": "sparsity",
}
__all__ = sorted(_EXPORTS) + ["__version__"]

if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs
    from .channels.compactor import insert_compactors
    from .channels.mosp import MOSPOptions, MOSPPruner
    from .io import load_pruned, save_pruned
    from .memory import (MeasuredMemory, MemoryProfile, PruningGroup, TraceError, estimate_peak_memory,
                         measure_both, measure_peak_memory)
    from .sparsity import SLSOptions, SLSPruner, check_nm
    from .vocabulary import Compactor


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'ir_prune_plugin' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
