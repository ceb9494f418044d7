"""``ort_liveness``: the activation memory ONNX Runtime's own execution plan needs, computed.

ONNX Runtime does not run the nodes in PyTorch's order and rewrites the graph first (fusions,
the NCHWc layout transform). This runs one inference with session profiling on, which lists
the kernels in execution order with their output shapes, reads the graph ONNX Runtime really
ran (``optimized_model_filepath``) for which node consumes which value, and sweeps liveness in
that order: a value is allocated when its node runs and freed after its last consumer ran
(graph outputs stay). The peak excludes weights and the caller's input and includes the output,
like ``peak_rss``'s rise; it is an upper bound where ONNX Runtime reuses an input's buffer in
place. Measured on the demo's U-Nets at 2048x1080 it matches the RSS rise with the arena off and
every large block mapped (``peak_rss(..., arena=False, mmap_threshold=65536)``) within 0.5 %.
"""
from __future__ import annotations

import json
import logging
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from .ort_options import check_ort_options, session_options

__all__ = ["OrtLiveness", "ort_liveness"]

log = logging.getLogger(__name__)
_ITEMSIZE = {"float": 4, "float16": 2, "bfloat16": 2, "double": 8, "int64": 8, "int32": 4, "int16": 2,
             "int8": 1, "uint8": 1, "bool": 1, "uint16": 2, "uint32": 4, "uint64": 8}
_SUFFIX = "_kernel_time"


@dataclass(frozen=True)
class OrtLiveness:
    """ONNX Runtime's execution order and the live activation bytes along it."""

    input_hw: tuple[int, int]
    optimization: str
    execution_order: str
    peak_bytes: int
    peak_node: str                                     # the node at whose output the peak is reached
    live_at_peak: dict[str, int] = field(default_factory=dict)   # value name -> bytes, largest first
    order: tuple[str, ...] = ()                        # node names in execution order
    live_after: tuple[int, ...] = ()                   # live bytes right after each node's outputs exist
    arena_in_use_peak: int | None = None               # ONNX Runtime's own arena statistics (profiler),
    arena_held: int | None = None                      # None where its build does not report them


def _kernels(profile: list[dict]) -> list[dict]:
    events = [e for e in profile if e.get("cat") == "Node" and str(e.get("name", "")).endswith(_SUFFIX)]
    return sorted(events, key=lambda e: e["ts"])


def _nbytes(type_shape: dict) -> int:
    (dtype, shape), = type_shape.items()
    if dtype not in _ITEMSIZE:
        raise ValueError(f"unknown tensor type {dtype!r} in ONNX Runtime's profile")
    n = 1
    for d in shape:
        n *= int(d)
    return n * _ITEMSIZE[dtype]


def ort_liveness(path: str | Path, input_hw: tuple[int, int], *, in_channels: int = 3, optimization: str = "all",
                 execution_order: str = "default", threads: int = 1) -> OrtLiveness:
    """Live activation bytes of one ONNX Runtime (CPU) inference of the model at ``path`` on a
    1 x ``in_channels`` x H x W input, in ONNX Runtime's execution order under the given
    optimisation level and execution order (names as in ``ort_options``).

    Runs in this process (profiling and the optimised graph go to a temporary folder).
    """
    import numpy as np
    import onnx
    import onnxruntime as ort

    check_ort_options(optimization, execution_order)
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"model file {str(path)!r} does not exist")
    h, w = (int(v) for v in input_hw)
    if h <= 0 or w <= 0 or in_channels <= 0:
        raise ValueError(f"need a positive input size and channel count, got {input_hw}, in_channels={in_channels}")
    with tempfile.TemporaryDirectory(prefix="irprune-ort-") as tmp:
        opts = session_options(threads, optimization, execution_order)
        opts.enable_profiling = True
        opts.profile_file_prefix = str(Path(tmp) / "profile")
        opts.optimized_model_filepath = str(Path(tmp) / "optimized.onnx")
        sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        x = np.random.default_rng(0).random((1, in_channels, h, w), dtype=np.float32)
        sess.run(None, {sess.get_inputs()[0].name: x})
        profile = json.loads(Path(sess.end_profiling()).read_text())
        graph = onnx.load(str(Path(tmp) / "optimized.onnx"), load_external_data=False).graph
    nodes = {n.name: n for n in graph.node}
    kernels = _kernels(profile)
    order = [e["name"][:-len(_SUFFIX)] for e in kernels]
    missing = [n for n in order if n not in nodes]
    if missing:
        raise RuntimeError(f"ONNX Runtime profiled nodes that are not in its optimised graph: {missing[:5]} "
                           "(subgraphs or a custom provider are not supported)")
    size: dict[str, int] = {}
    for event, name in zip(kernels, order):
        for value, type_shape in zip(nodes[name].output, event["args"].get("output_type_shape", [])):
            if value:
                size[value] = _nbytes(type_shape)
    last_use = {v: i for i, name in enumerate(order) for v in nodes[name].input if v in size}
    outputs = {o.name for o in graph.output}
    live: dict[str, int] = {}
    total = peak = 0
    peak_node, at_peak, trace = "", {}, []
    for i, name in enumerate(order):
        for value in nodes[name].output:
            if value in size:
                live[value] = size[value]
                total += size[value]
        trace.append(total)
        if total > peak:
            peak, peak_node, at_peak = total, name, dict(live)
        for value in [v for v in live if last_use.get(v, -1) <= i and v not in outputs]:
            total -= live.pop(value)
    stats = [e["args"] for e in kernels if "mem_in_use_peak" in e["args"] and "mem_arena_held" in e["args"]]
    in_use = max((int(a["mem_in_use_peak"]) for a in stats), default=None)
    held = max((int(a["mem_arena_held"]) for a in stats), default=None)
    log.info("ONNX Runtime plan (%s, %s order) at %dx%d: peak %.1f MiB at %s", optimization, execution_order, h, w,
             peak / 2 ** 20, peak_node)
    return OrtLiveness(input_hw=(h, w), optimization=optimization, execution_order=execution_order, peak_bytes=peak,
                       peak_node=peak_node, live_at_peak=dict(sorted(at_peak.items(), key=lambda kv: -kv[1])),
                       order=tuple(order), live_after=tuple(trace), arena_in_use_peak=in_use, arena_held=held)
