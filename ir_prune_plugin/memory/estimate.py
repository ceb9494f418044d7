"""``estimate_peak_memory``: peak activation bytes from a meta-device export, no real allocation."""
from __future__ import annotations

import logging
import time

import torch
from torch import nn

from ..inputs import check_example_inputs, meta_copy
from .channel_rules import ChannelPropagator
from .groups import build_groups
from .liveness import sweep
from .profile import MemoryProfile
from .trace import ExampleInputs, check_model, export_graph, normalize_inputs, to_meta_inputs

log = logging.getLogger(__name__)


def estimate_peak_memory(model: nn.Module, example_inputs: ExampleInputs, *,
                         dtype: torch.dtype | None = None) -> MemoryProfile:
    """Peak activation memory of ``model``'s inference forward, with MOSP pruning groups.

    ``example_inputs``: a tensor, a tuple of tensors, or an input shape such as
    ``(1, 3, 1080, 2048)``; only shapes and dtypes are used. ``dtype`` (e.g. ``torch.float16``)
    casts floating weights and inputs for the estimate. The model is exported with
    ``torch.export`` (non-strict) as an eval-mode copy on the ``meta`` device, so nothing is
    allocated and the caller's model is untouched. A liveness sweep over the exported operator
    order gives the peak: a storage is live from the op that creates it to its last consumer,
    views and in-place results share their base's storage, model inputs are counted from the
    first step until their last use, outputs until the end, and parameters, buffers and
    constants are not counted. Raises :class:`TraceError` when the model cannot be exported.
    """
    check_model(model)
    inputs = check_example_inputs(model, normalize_inputs(example_inputs, dtype), dtype=dtype, values=False)
    t0 = time.perf_counter()
    work = meta_copy(model, dtype)
    ep = export_graph(work, to_meta_inputs(inputs, dtype))
    t1 = time.perf_counter()
    lv = sweep(ep)
    if not lv.steps:
        raise ValueError(f"{type(model).__name__} runs no operation on its input; "
                         "there is no activation memory to estimate")
    prop = ChannelPropagator(dict(work.named_modules()), dict(ep.graph_signature.inputs_to_parameters))
    prop.run(list(ep.graph.nodes))
    groups = build_groups(lv, prop)
    peak = max(lv.timeline)
    t2 = time.perf_counter()
    log.debug("estimate_peak_memory: export %.3fs, analysis %.3fs", t1 - t0, t2 - t1)
    return MemoryProfile(
        peak_bytes=peak, peak_step=lv.timeline.index(peak), timeline=tuple(lv.timeline),
        steps=tuple(lv.steps), tensors=tuple(lv.records()), groups=tuple(groups),
        coupled=tuple(prop.coupled_sets()), pinned=frozenset(prop.pinned),
        layer_channels=dict(prop.layer_channels), unsupported_ops=dict(prop.unsupported),
        input_shapes=tuple(tuple(t.shape) for t in inputs),
        extra={"export_s": t1 - t0, "analysis_s": t2 - t1, "model": type(model).__name__})
