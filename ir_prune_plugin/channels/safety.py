"""Never hand back a broken model: snapshots, in-place rollback and the forward check.

Every structural change (a MOSP removal, a Torch-Pruning group, NNI ``speedup``) runs inside
:func:`checked_change`: the touched objects are snapshotted, the change runs, then the model's
forward is run at the example inputs in eval *and* train mode (buffers such as BatchNorm's
running statistics are restored afterwards) and each output's shape is compared with what it
was before. On any failure the snapshot is restored in place (the caller's module objects are
the same and compute what they computed before) and :class:`BrokenForwardError` names the layer
that raised and the operation (the source line) that failed.

Rollback is by attribute snapshot: pruning replaces parameters, buffers and size attributes
(``out_channels``, Torch-Pruning's split sizes, ...) rather than writing into tensors, so a
shallow copy of each object's ``__dict__`` (with its parameter/buffer/module dicts copied) is
enough to undo it, at no memory cost.
"""
from __future__ import annotations

import contextlib
import copy
import weakref
import logging
import traceback
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

import torch
from torch import nn

from ..inputs import module_stack
from ..vocabulary import as_tuple

__all__ = ["BrokenForwardError", "Snapshot", "check_forward", "checked_change", "graph_state", "output_shapes", "prune_group_checked", "reference_shapes"]

log = logging.getLogger(__name__)


class BrokenForwardError(RuntimeError):
    """A structural change broke the forward pass (and was rolled back).

    ``layer``: qualified name of the innermost module running when it failed (``''`` for the
    model's own forward, ``None`` when the forward ran but an output shape changed); ``op``: the
    failing source line; ``change``: what was being done.
    """

    def __init__(self, message: str, *, change: str, layer: str | None, op: str | None,
                 mode: str | None = None) -> None:
        super().__init__(message)
        self.change, self.layer, self.op, self.mode = change, layer, op, mode


def _shallow(value: Any) -> Any:
    """Containers are copied (keeping their type: OrderedDict, WeakKeyDictionary); the rest shared."""
    return copy.copy(value) if isinstance(value, (dict, list, set, weakref.WeakKeyDictionary)) else value


class Snapshot:
    """Attribute-level snapshot of ``objects`` (modules and Torch-Pruning op/pruner objects)."""

    def __init__(self, objects: Iterable[Any]) -> None:
        seen: set[int] = set()
        self._saved: list[tuple[Any, dict[str, Any]]] = []
        for obj in objects:
            if id(obj) in seen or not hasattr(obj, "__dict__"):
                continue
            seen.add(id(obj))
            self._saved.append((obj, {k: _shallow(v) for k, v in vars(obj).items()}))

    @classmethod
    def of_model(cls, model: nn.Module, extra: Iterable[Any] = ()) -> "Snapshot":
        """Every submodule of ``model`` plus ``extra`` objects (e.g. a dependency graph's ops)."""
        return cls([*model.modules(), *extra])

    def restore(self) -> None:
        """Put every snapshotted attribute back (in place: object identities are kept)."""
        for obj, state in self._saved:
            d = vars(obj)
            d.clear()
            d.update({k: _shallow(v) for k, v in state.items()})


def graph_state(graph: Any) -> list[Any]:
    """Objects besides the model that removing a group of a ``tp.DependencyGraph`` changes (the
    graph's dicts, its nodes, its op objects such as split sizes, the customized pruners)."""
    nodes = list(graph.module2node.values())
    extra: list[Any] = [graph, *nodes, *(n.module for n in nodes if not isinstance(n.module, nn.Module))]
    for pruner in graph.CUSTOMIZED_PRUNERS.values():
        extra.append(pruner)
        extra.extend(v for v in vars(pruner).values() if hasattr(v, "__dict__"))
    return extra


def output_shapes(output: Any) -> list[tuple[int, ...]]:
    """Shapes of the tensors in a (possibly nested) model output, in order."""
    if isinstance(output, torch.Tensor):
        return [tuple(output.shape)]
    if isinstance(output, dict):
        return [s for v in output.values() for s in output_shapes(v)]
    if isinstance(output, (tuple, list)):
        return [s for v in output for s in output_shapes(v)]
    return []


def _failing_line(exc: BaseException) -> str:
    """The innermost source line of the failure outside torch's own modules (else the last one)."""
    frames = traceback.extract_tb(exc.__traceback__)
    if not frames:
        return "?"
    mine = [f for f in frames if "/torch/" not in f.filename.replace("\\", "/")]
    f = (mine or frames)[-1]
    return f"{(f.line or '').strip()} ({f.filename.rsplit('/', 1)[-1]}:{f.lineno})"


def _run(model: nn.Module, inputs: tuple[torch.Tensor, ...], train: bool) -> Any:
    buffers = {k: b.clone() for k, b in model.named_buffers()}
    was_training = model.training
    try:
        with torch.random.fork_rng(devices=[]), torch.no_grad():
            model.train(train)
            return model(*inputs)
    finally:
        model.train(was_training)
        with torch.no_grad():
            for k, b in model.named_buffers():
                if k in buffers and b.shape == buffers[k].shape:
                    b.copy_(buffers[k])


def reference_shapes(model: nn.Module, example_inputs: Any,
                     modes: Sequence[str] = ("eval", "train")) -> dict[str, list[tuple[int, ...]]]:
    """Output shapes of ``model`` at ``example_inputs`` per mode (what a change must keep)."""
    inputs = as_tuple(example_inputs)
    return {mode: output_shapes(_run(model, inputs, train=mode == "train")) for mode in modes}


def check_forward(model: nn.Module, example_inputs: Any,
                  expected: Mapping[str, Sequence[tuple[int, ...]]] | None = None, *,
                  change: str = "the change", modes: Sequence[str] = ("eval", "train")) -> None:
    """Run ``model`` at ``example_inputs`` in each mode; raise :class:`BrokenForwardError` when a
    forward fails or an output shape differs from ``expected[mode]`` (from :func:`reference_shapes`).
    Buffers (BatchNorm statistics) are left as they were."""
    inputs = as_tuple(example_inputs)
    for mode in modes:
        with module_stack(model) as stack:
            try:
                out = _run(model, inputs, train=mode == "train")
            except Exception as exc:  # noqa: BLE001 - any failure of the user's forward counts
                layer = stack[-1] if stack else ""
                kind = type(model.get_submodule(layer)).__name__ if layer else type(model).__name__
                op = _failing_line(exc)
                raise BrokenForwardError(
                    f"{change} broke the forward pass ({mode} mode) in layer {layer or '<model>'!r} "
                    f"({kind}) at `{op}`: {type(exc).__name__}: {str(exc)[:300]}",
                    change=change, layer=layer, op=op, mode=mode) from exc
        shapes = output_shapes(out)
        if expected is not None and mode in expected and list(shapes) != list(expected[mode]):
            raise BrokenForwardError(
                f"{change} changed the model's output shapes ({mode} mode) from {list(expected[mode])} to "
                f"{shapes}", change=change, layer=None, op=None, mode=mode)


@contextlib.contextmanager
def checked_change(model: nn.Module, example_inputs: Any, change: str, *, extra: Iterable[Any] = (),
                   expected: Mapping[str, Sequence[tuple[int, ...]]] | None = None,
                   modes: Sequence[str] = ("eval", "train")) -> Iterator[Snapshot]:
    """Run the ``with`` body as one structural change of ``model``: forward-check it afterwards
    and roll it back (``model`` and ``extra`` objects) when the body or the check fails.

    ``expected``: output shapes per mode to keep (default: measured now, before the change).
    """
    if expected is None:
        expected = reference_shapes(model, example_inputs, modes)
    snap = Snapshot.of_model(model, extra)
    try:
        yield snap
        check_forward(model, example_inputs, expected, change=change, modes=modes)
    except BaseException:
        snap.restore()
        log.info("rolled back %s", change)
        raise


def prune_group_checked(model: nn.Module, example_inputs: Any, graph: Any, group: Callable[[], Any], key: str,
                        change: str, expected: Mapping[str, Sequence[tuple[int, ...]]],
                        refused: dict[str, str], *, strict: bool = False) -> bool:
    """Prune the Torch-Pruning group ``group()`` of ``graph`` as a checked change; on failure (rolled back)
    record the reason in ``refused[key]``, log it and, with ``strict``, re-raise. True if pruned."""
    try:
        with checked_change(model, example_inputs, change, extra=graph_state(graph), expected=expected):
            group().prune()
    except (BrokenForwardError, IndexError, RuntimeError, ValueError) as exc:
        refused[key] = f"{type(exc).__name__}: {exc}"
        log.warning("left %r alone: %s", key, refused[key])
        if strict:
            raise
        return False
    return True
