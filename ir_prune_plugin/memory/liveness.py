"""Liveness sweep over an exported graph: which activation storages are live at each step."""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch.export import ExportedProgram
from torch.fx import Node
from torch.utils._pytree import tree_leaves

from .profile import Step, TensorRecord

# Ops whose kernels allocate more than their graph outputs: op name -> (dtype, what).
# ``aten.max_pool{1,2,3}d`` dispatches to ``max_pool*_with_indices`` on CPU and CUDA, whose int64
# indices (output-sized) are live while the op runs and freed when it returns.
_HIDDEN_INDICES = {"max_pool1d", "max_pool2d", "max_pool3d"}
# Ops that return their input itself when nothing needs converting (so they allocate nothing then),
# although the traced fake value may hold a fresh storage.
_MAY_RETURN_SELF = {"type_as", "to", "contiguous", "reshape", "reshape_as", "view_as", "flatten",
                    "expand_as", "alias", "detach"}


def _returns_self(node: Node, t: torch.Tensor) -> Node | None:
    """The input node ``node`` returns unchanged at run time, if it is a may-return-self op."""
    if (op_name(node) not in _MAY_RETURN_SELF or not isinstance(t, torch.Tensor) or not node.args
            or not isinstance(node.args[0], Node)):
        return None
    src = node.args[0].meta.get("val")
    if (isinstance(src, torch.Tensor) and src.shape == t.shape and src.dtype == t.dtype
            and src.device == t.device and src.stride() == t.stride()):
        return node.args[0]
    return None


def op_name(node: Node) -> str:
    """Short op name of a ``call_function`` node (``'conv2d'``, ``'add_'``, ``'getitem'``)."""
    target = node.target
    packet = getattr(target, "overloadpacket", None)
    if packet is not None:
        return packet.__name__
    return getattr(target, "__name__", str(target))


def module_path(node: Node) -> str:
    """Path of the innermost module that ran ``node`` (``''`` for the root)."""
    stack = node.meta.get("nn_module_stack")
    if not stack:
        return ""
    return list(stack.values())[-1][0]


def storage_key(t: torch.Tensor) -> int:
    """Identity of a tensor's storage (shared by views and in-place results)."""
    return t.untyped_storage()._cdata


def tensor_leaves(value: object) -> list[tuple[int, torch.Tensor]]:
    """``(index, tensor)`` for each tensor in a node's value (a tensor or a tuple of them)."""
    if isinstance(value, torch.Tensor):
        return [(0, value)]
    return [(i, t) for i, t in enumerate(tree_leaves(value)) if isinstance(t, torch.Tensor)]


@dataclass
class StorageInfo:
    """Mutable bookkeeping for one storage during the sweep."""

    key: int
    node: Node
    index: int
    value: torch.Tensor
    nbytes: int
    kind: str
    alloc: int
    last: int


@dataclass
class Liveness:
    """Result of :func:`sweep`: steps, storages and bytes live per step."""

    steps: list[Step]
    step_nodes: list[Node]
    storages: list[StorageInfo]
    timeline: list[int]
    node_keys: dict[Node, list[int]] = field(default_factory=dict)

    def records(self) -> list[TensorRecord]:
        """The storages as public :class:`TensorRecord` s."""
        out = []
        for s in self.storages:
            name = s.node.name if s.kind != "workspace" else f"{s.node.name}.indices"
            out.append(TensorRecord(name=name, module=module_path(s.node) if s.node.op != "placeholder"
                                    else "", op=op_name(s.node) if s.node.op == "call_function"
                                    else "input", shape=tuple(s.value.shape), dtype=s.value.dtype,
                                    bytes=s.nbytes, kind=s.kind, alloc_step=s.alloc,
                                    free_step=s.last))
        return out


def sweep(ep: ExportedProgram) -> Liveness:
    """Walk ``ep``'s nodes in order; a storage lives from its producer to its last consumer.

    Views and in-place results share their base's storage (detected from the fake tensors'
    storage identity), so they allocate nothing; user inputs are live from step 0 until their
    last use; graph outputs stay live until the last step; parameters, buffers and constants
    (and views of them) are not counted.
    """
    sig = ep.graph_signature
    user_inputs = set(sig.user_inputs)
    graph_nodes = list(ep.graph.nodes)
    step_nodes = [n for n in graph_nodes if n.op == "call_function"]
    excluded: set[int] = set()
    by_key: dict[int, StorageInfo] = {}
    node_keys: dict[Node, list[int]] = {}
    storages: list[StorageInfo] = []

    def add(key: int, node: Node, idx: int, t: torch.Tensor, kind: str, step: int) -> None:
        info = StorageInfo(key, node, idx, t, int(t.untyped_storage().nbytes()), kind, step, step)
        by_key[key] = info
        storages.append(info)

    for node in graph_nodes:
        if node.op != "placeholder":
            continue
        leaves = tensor_leaves(node.meta.get("val"))
        if node.name in user_inputs:
            keys = []
            for idx, t in leaves:
                key = storage_key(t)
                if key not in by_key:
                    add(key, node, idx, t, "input", 0)
                keys.append(key)
            node_keys[node] = keys
        else:
            excluded.update(storage_key(t) for _, t in leaves)
            node_keys[node] = []

    for i, node in enumerate(step_nodes):
        for arg in node.all_input_nodes:
            for key in node_keys.get(arg, ()):
                by_key[key].last = max(by_key[key].last, i)
        same = _returns_self(node, node.meta.get("val"))
        if same is not None:
            node_keys[node] = list(node_keys.get(same, ()))
            continue
        keys = []
        for idx, t in tensor_leaves(node.meta.get("val")):
            key = storage_key(t)
            if key in excluded:
                continue
            if key not in by_key:
                add(key, node, idx, t, "activation", i)
            keys.append(key)
        node_keys[node] = keys
        if op_name(node) in _HIDDEN_INDICES and keys:
            out = by_key[keys[0]].value
            ws = torch.empty(out.shape, dtype=torch.int64, device="meta")
            storages.append(StorageInfo(-len(storages) - 1, node, 1, ws,
                                        int(ws.untyped_storage().nbytes()), "workspace", i, i))

    if not step_nodes:  # the model returns its input unchanged: nothing runs, nothing is live
        return Liveness([], [], storages, [], node_keys)
    end = len(step_nodes) - 1
    for node in graph_nodes:
        if node.op == "output":
            for arg in node.all_input_nodes:
                for key in node_keys.get(arg, ()):
                    by_key[key].last = end
                    if by_key[key].kind == "activation":
                        by_key[key].kind = "output"

    delta = [0] * (len(step_nodes) + 1)
    for s in storages:
        delta[s.alloc] += s.nbytes
        delta[s.last + 1] -= s.nbytes
    timeline, live = [], 0
    for d in delta[:-1]:
        live += d
        timeline.append(live)
    steps = [Step(i, n.name, op_name(n), module_path(n)) for i, n in enumerate(step_nodes)]
    return Liveness(steps, step_nodes, storages, timeline, node_keys)
