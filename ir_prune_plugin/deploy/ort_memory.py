"""Real peak memory of one inference, measured in a fresh subprocess: ONNX Runtime or PyTorch.

The child loads the model (an ONNX Runtime CPU session, or a ``save_pruned`` file run eagerly
under ``no_grad``), creates the input, then samples its resident set (``/proc/self/statm``)
every 0.5 ms during one inference. Reported: the rise of the peak over the level before the
run (weights, libraries, the session and the input excluded; the output included), for the
first run (ONNX Runtime's arena and memory pattern are planned then) and the median of the
repeats after it, and the latency. ONNX Runtime's Python API (1.32) exposes no arena
statistics, so ``arena=False`` (plain malloc/free, no memory pattern) is the cross-check.
Linux only (``/proc``).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from .ort_options import EXECUTION_ORDERS, OPTIMIZATION_LEVELS, check_ort_options

__all__ = ["ENGINES", "PeakRSS", "peak_rss"]

ENGINES = ("onnxruntime", "torch")

_CHILD = r"""
import json, os, statistics, sys, threading, time
engine, path, h, w, c, repeats, threads, arena, level, order = sys.argv[1:11]
h, w, c, repeats, threads, arena = int(h), int(w), int(c), int(repeats), int(threads), arena == "1"
import numpy as np
PAGE = os.sysconf("SC_PAGE_SIZE")
def rss():
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * PAGE
if engine == "onnxruntime":
    import onnxruntime as ort
    so = ort.SessionOptions(); so.intra_op_num_threads = threads; so.log_severity_level = 3
    so.enable_cpu_mem_arena = arena; so.enable_mem_pattern = arena
    so.graph_optimization_level = getattr(ort.GraphOptimizationLevel, level)
    so.execution_order = getattr(ort.ExecutionOrder, order)
    sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    x = np.random.default_rng(0).random((1, c, h, w), dtype=np.float32)
    run = lambda: sess.run(None, {name: x})
else:
    import torch
    torch.set_num_threads(threads)
    from ir_prune_plugin.io import load_pruned
    model = load_pruned(path).eval()
    x = torch.rand(1, c, h, w)
    def run():
        with torch.no_grad():
            return model(x)
rises, times = [], []
for i in range(repeats + 1):
    base, peak, stop = rss(), [0], threading.Event()
    def poll():
        while not stop.is_set():
            peak[0] = max(peak[0], rss()); time.sleep(0.0005)
    th = threading.Thread(target=poll); th.start()
    t = time.perf_counter(); y = run(); times.append(time.perf_counter() - t)
    stop.set(); th.join()
    rises.append(max(peak[0], rss()) - base)
    del y
print(json.dumps({"first_rise": rises[0], "rise": statistics.median(rises[1:]) if repeats else rises[0],
                  "latency_s": statistics.median(times[1:]) if repeats else times[0]}))
"""


@dataclass(frozen=True)
class PeakRSS:
    """Resident-set rise of one inference in a fresh process (bytes) and its latency."""

    engine: str
    input_hw: tuple[int, int]
    first_rise: int      # the first inference (allocator/arena warm-up included)
    rise: int            # median over the repeats after the first
    latency_s: float     # median latency over the repeats after the first
    arena: bool = True
    mmap_threshold: int | None = None
    optimization: str = "all"
    execution_order: str = "default"


def peak_rss(engine: str, path: str | Path, input_hw: tuple[int, int], *, in_channels: int = 3,
             repeats: int = 2, threads: int = 1, arena: bool = True, mmap_threshold: int | None = None,
             optimization: str = "all", execution_order: str = "default", timeout: float = 1800) -> PeakRSS:
    """Measure one inference of the model at ``path`` (``.onnx`` for ``'onnxruntime'``, a
    ``save_pruned`` file for ``'torch'``) on a 1 x ``in_channels`` x H x W input in a subprocess.

    ``mmap_threshold`` (bytes) fixes glibc's ``M_MMAP_THRESHOLD`` in the child: every larger block
    is mapped on allocation and unmapped on free, so the RSS rise is the live bytes without heap
    fragmentation (with ``arena=False``: the memory the engine's plan really needs).
    ``optimization``, ``execution_order``: ONNX Runtime's graph optimisation level and execution
    order by name (``ort_options``; ``**MEMORY_PLAN`` for the least memory); ``'all'`` (the
    default) includes the NCHWc layout transform, which pads channel counts to the SIMD block.
    """
    check_ort_options(optimization, execution_order)
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}, got {engine!r}")
    if not Path(path).is_file():
        raise ValueError(f"model file {str(path)!r} does not exist")
    h, w = (int(v) for v in input_hw)
    if h <= 0 or w <= 0 or repeats < 0 or threads < 1:
        raise ValueError(f"need a positive input size, repeats >= 0 and threads >= 1, got {input_hw}, "
                         f"repeats={repeats}, threads={threads}")
    root = str(Path(__file__).resolve().parents[2])  # this checkout, for the torch child's import
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": str(threads)}
    if mmap_threshold is not None:
        env["MALLOC_MMAP_THRESHOLD_"] = str(int(mmap_threshold))
    args = [engine, str(path), h, w, in_channels, repeats, threads, int(arena), OPTIMIZATION_LEVELS[optimization],
            EXECUTION_ORDERS[execution_order]]
    done = subprocess.run([sys.executable, "-c", _CHILD, *map(str, args)], capture_output=True, text=True,
                          env=env, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"{engine} memory measurement failed (exit {done.returncode}): "
                           f"{done.stderr.strip().splitlines()[-1] if done.stderr.strip() else 'no output'}")
    res = json.loads(done.stdout.strip().splitlines()[-1])
    return PeakRSS(engine=engine, input_hw=(h, w), first_rise=int(res["first_rise"]), rise=int(res["rise"]),
                   latency_s=float(res["latency_s"]), arena=arena, mmap_threshold=mmap_threshold,
                   optimization=optimization, execution_order=execution_order)
