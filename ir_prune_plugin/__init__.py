"""ir-prune-plugin: memory- and compute-budgeted pruning (MOSP, SLS) for image-restoration nets.

The public surface (DESIGN.md "Contract"), re-exported one by one:

* :func:`estimate_peak_memory` / :func:`measure_peak_memory` -- peak activation memory.
* :class:`Compactor` / :func:`insert_compactors` -- identity 1x1 convs on skip connections.
* :class:`MOSPPruner` -- channel pruning to a peak-memory budget.
* :class:`SLSPruner` -- layer-wise N:M sparsity search under a MACs budget.
* :func:`save_pruned` / :func:`load_pruned` -- round-trip pruned architectures and weights.

Ecosystem adapters live in ``ir_prune_plugin.integrations`` (torch_pruning, nni, basicsr).
"""
from ._version import __version__
from .channels.compactor import Compactor, insert_compactors
from .channels.mosp import MOSPOptions, MOSPPruner
from .io import load_pruned, save_pruned
from .memory import (MeasuredMemory, MemoryProfile, PruningGroup, TraceError, estimate_peak_memory, measure_both,
                     measure_peak_memory)
from .sparsity import SLSOptions, SLSPruner, check_nm

__all__ = [
    "Compactor", "MOSPOptions", "MOSPPruner", "MeasuredMemory", "MemoryProfile", "PruningGroup", "SLSOptions",
    "SLSPruner", "TraceError", "__version__", "check_nm", "estimate_peak_memory", "insert_compactors",
    "load_pruned", "measure_both", "measure_peak_memory", "save_pruned",
]
