"""ONNX Runtime session settings that decide how much memory one inference needs.

Two settings change ONNX Runtime's peak for a pruned net (measured in the README's Deploy
section): the graph optimisation level (``'all'`` adds the NCHWc layout transform, which pads
channel counts to the SIMD block of 8 and inserts reorder copies: a compactor's 4 channels cost
8 and are held twice while reordered) and the execution order (``'default'`` is ONNX Runtime's
reverse depth-first topological sort, which runs a skip connection's compactor only when the
concatenation needs it, so the uncompacted skip stays live through the whole encoder;
``'priority'`` runs the nodes in the exported file's order, which is ``torch.export``'s order,
the schedule ``estimate_peak_memory`` and MOSP plan for). :data:`MEMORY_PLAN` is the pair under
which ONNX Runtime holds exactly the estimated peak.
"""
from __future__ import annotations

__all__ = ["EXECUTION_ORDERS", "MEMORY_PLAN", "OPTIMIZATION_LEVELS", "check_ort_options", "session_options"]

OPTIMIZATION_LEVELS = {"all": "ORT_ENABLE_ALL", "extended": "ORT_ENABLE_EXTENDED", "basic": "ORT_ENABLE_BASIC",
                       "disabled": "ORT_DISABLE_ALL"}
EXECUTION_ORDERS = {"default": "DEFAULT", "priority": "PRIORITY_BASED"}
MEMORY_PLAN = {"optimization": "extended", "execution_order": "priority"}


def check_ort_options(optimization: str, execution_order: str) -> None:
    """Raise ``ValueError`` naming the bad value unless both are known names."""
    if optimization not in OPTIMIZATION_LEVELS:
        raise ValueError(f"optimization must be one of {tuple(OPTIMIZATION_LEVELS)}, got {optimization!r}")
    if execution_order not in EXECUTION_ORDERS:
        raise ValueError(f"execution_order must be one of {tuple(EXECUTION_ORDERS)}, got {execution_order!r}")


def session_options(threads: int = 1, optimization: str = "all", execution_order: str = "default",
                    arena: bool = True):
    """``onnxruntime.SessionOptions`` with ``threads`` intra-op threads, the optimisation level and
    execution order by name (see :data:`OPTIMIZATION_LEVELS`, :data:`EXECUTION_ORDERS`) and the CPU
    arena plus memory pattern on or off."""
    import onnxruntime as ort

    check_ort_options(optimization, execution_order)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.log_severity_level = 3
    opts.graph_optimization_level = getattr(ort.GraphOptimizationLevel, OPTIMIZATION_LEVELS[optimization])
    opts.execution_order = getattr(ort.ExecutionOrder, EXECUTION_ORDERS[execution_order])
    opts.enable_cpu_mem_arena = arena
    opts.enable_mem_pattern = arena
    return opts
