"""Peak activation memory: exact liveness estimate on meta tensors, real measurement, MOSP groups.

``estimate_peak_memory(model, example_inputs)`` exports the model with ``torch.export`` on the
meta device and sweeps the operator order; ``measure_peak_memory`` runs it for real and counts
live activation storages ('scheduled' = the exported order with values freed after last use,
'eager' = the module's own forward). Engine-neutral: torch only.
"""
from __future__ import annotations

from .estimate import estimate_peak_memory
from .measure import LiveBytesTracker, MeasuredMemory, measure_both, measure_peak_memory, run_scheduled
from .profile import MemoryProfile, PruningGroup, Step, TensorRecord
from .trace import TraceError

__all__ = ["LiveBytesTracker", "MeasuredMemory", "MemoryProfile", "PruningGroup", "Step",
           "TensorRecord", "TraceError", "estimate_peak_memory", "measure_both",
           "measure_peak_memory", "run_scheduled"]
