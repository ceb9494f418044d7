"""Measure peak live activation bytes of a real forward pass, eager or as scheduled."""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, Iterable

import torch
from torch import nn
from torch.export import ExportedProgram
from torch.export.graph_signature import InputKind
from torch.fx import Node
from torch.fx.node import map_arg
from torch.multiprocessing.reductions import StorageWeakRef
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from ..inputs import check_example_inputs
from .trace import ExampleInputs, check_model, export_graph, normalize_inputs

MODES = ("scheduled", "eager")


class LiveBytesTracker(TorchDispatchMode):
    """Counts bytes of storages created by ops while active; tracks the peak of live bytes.

    An op's output storage is new unless it is one of the op's input storages (a view or an
    in-place result). Liveness is read from weak storage references after every op, so a storage
    counts until the last tensor using it is gone; parameters and buffers never count because no
    op inside the mode created them.
    """

    def __init__(self) -> None:
        super().__init__()
        self._live: dict[StorageWeakRef, int] = {}
        self.current = 0
        self.peak = 0
        self.ops = 0

    def _purge(self) -> None:
        dead = [ref for ref in self._live if ref.expired()]
        for ref in dead:
            self.current -= self._live.pop(ref)

    def __torch_dispatch__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None):
        out = func(*args, **(kwargs or {}))
        self.ops += 1
        self._purge()
        seen = {StorageWeakRef(t.untyped_storage())
                for t in tree_leaves((args, kwargs)) if isinstance(t, torch.Tensor)}
        for t in tree_leaves(out):
            if not isinstance(t, torch.Tensor):
                continue
            ref = StorageWeakRef(t.untyped_storage())
            if ref in seen or ref in self._live:
                continue
            nbytes = int(t.untyped_storage().nbytes())
            self._live[ref] = nbytes
            self.current += nbytes
        self.peak = max(self.peak, self.current)
        return out


@dataclass(frozen=True)
class MeasuredMemory:
    """Peak live activation bytes of one real forward, as scheduled and as written (eager)."""

    scheduled: int
    eager: int

    @property
    def eager_overhead(self) -> int:
        """Bytes the eager forward holds beyond the schedule (Python locals kept alive)."""
        return self.eager - self.scheduled


def _placeholder_values(ep: ExportedProgram) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for spec in ep.graph_signature.input_specs:
        if spec.kind in (InputKind.PARAMETER, InputKind.BUFFER):
            values[spec.arg.name] = (ep.state_dict[spec.target] if spec.target in ep.state_dict
                                     else ep.constants[spec.target])
        elif spec.kind in (InputKind.CONSTANT_TENSOR, InputKind.CUSTOM_OBJ):
            values[spec.arg.name] = ep.constants[spec.target]
    return values


def run_scheduled(ep: ExportedProgram, feeds: list[torch.Tensor]) -> Any:
    """Run ``ep``'s graph node by node, dropping each value right after its last use.

    ``feeds`` (the user inputs, in order) is emptied so that the graph holds the only references.
    """
    nodes = list(ep.graph.nodes)
    last_use: dict[Node, int] = {}
    for i, node in enumerate(nodes):
        last_use[node] = i  # a value nobody reads dies right after its own step
        for arg in node.all_input_nodes:
            last_use[arg] = i
    free_at: dict[int, list[Node]] = {}
    for node, i in last_use.items():
        free_at.setdefault(i, []).append(node)
    fixed = _placeholder_values(ep)
    pending = list(feeds)
    feeds.clear()
    env: dict[Node, Any] = {}
    for i, node in enumerate(nodes):
        if node.op == "placeholder":
            env[node] = fixed[node.name] if node.name in fixed else pending.pop(0)
        elif node.op == "call_function":
            args = map_arg(node.args, env.__getitem__)
            kwargs = map_arg(node.kwargs, env.__getitem__)
            env[node] = node.target(*args, **kwargs)
            del args, kwargs
        elif node.op == "output":
            return map_arg(node.args[0], env.__getitem__)
        else:
            raise RuntimeError(f"cannot run graph node {node.name!r} of kind {node.op!r} "
                               "(control-flow sub-graphs are not supported)")
        for dead in free_at.get(i, ()):
            env.pop(dead, None)
    raise RuntimeError("exported graph has no output node")


def _prepare(model: nn.Module, example_inputs: ExampleInputs) -> tuple[nn.Module, tuple[torch.Tensor, ...]]:
    check_model(model)
    inputs = check_example_inputs(model, normalize_inputs(example_inputs))  # real tensors only
    work = copy.deepcopy(model).eval()
    return work, inputs


def _measure(run: Any, inputs: Iterable[torch.Tensor]) -> int:
    tracker = LiveBytesTracker()
    with torch.no_grad(), tracker:
        feeds = [t.clone() for t in inputs]  # fresh copies the forward may free; counted as inputs
        out = run(feeds)
    del out
    return tracker.peak


def measure_peak_memory(model: nn.Module, example_inputs: ExampleInputs, *,
                        mode: str = "scheduled") -> int:
    """Peak bytes of live activation storages in a real forward under ``no_grad`` (eval mode).

    ``mode='scheduled'`` runs the ``torch.export`` graph node by node and frees each value after
    its last use (what :func:`estimate_peak_memory` models); ``mode='eager'`` runs the module's
    own ``forward``, where Python locals keep tensors alive until it returns. Inputs count (as
    fresh copies) and so do outputs; parameters and buffers do not. The caller's model is not
    modified (a deep copy runs).
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    work, inputs = _prepare(model, example_inputs)
    if mode == "eager":
        def run(feeds: list[torch.Tensor]) -> Any:
            args = tuple(feeds)
            feeds.clear()
            return work(*args)
        return _measure(run, inputs)
    ep = export_graph(work, inputs)
    return _measure(lambda feeds: run_scheduled(ep, feeds), inputs)


def measure_both(model: nn.Module, example_inputs: ExampleInputs) -> MeasuredMemory:
    """:func:`measure_peak_memory` in both modes."""
    return MeasuredMemory(scheduled=measure_peak_memory(model, example_inputs, mode="scheduled"),
                          eager=measure_peak_memory(model, example_inputs, mode="eager"))
