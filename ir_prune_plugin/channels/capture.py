"""Graph capture for compactor sites that survives real forwards (``torch.fx`` plus repairs).

Plain ``torch.fx`` symbolic tracing fails on most third-party IR nets: ``self.mean = ...`` in
forward (BasicSR's EDSR/RCAN, SPAN), shape checks and asserts in helper functions (RRDBNet's
``pixel_unshuffle``), ``if self.input_resolution == x_size`` inside transformer blocks (SwinIR,
HAT), ``int(math.sqrt(L))`` (Uformer). :func:`trace_repairing` traces, and on each failure repairs
what it can and traces again:

- values stored into module attributes during tracing are put back afterwards (the graph holds
  the computation; the module keeps its real tensor);
- a failure inside a submodule's forward makes that submodule a leaf (called as a whole; skip
  sites inside it are not considered -- long skips live outside such blocks);
- a failure inside a plain module-level function makes that function a leaf (``autowrap``).

What still fails (control flow on shapes in the model's own top-level ``forward``) raises a
ValueError naming the cause and the line.
"""
from __future__ import annotations

import inspect
import logging
import traceback
from typing import Any, Callable, Sequence

import torch.fx as fx
from torch import nn

__all__ = ["trace_repairing"]

log = logging.getLogger(__name__)
_MAX_REPAIRS = 64


class _Tracer(fx.Tracer):
    # defaults: unpickling a GraphModule re-traces it with ``type(tracer)()`` (e.g. DDP's copies)
    def __init__(self, leaves: frozenset[str] | set[str] = frozenset(),
                 functions: tuple[Callable[..., Any], ...] = ()) -> None:
        super().__init__(autowrap_functions=functions)
        self.extra_leaves = leaves

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        return qualname in self.extra_leaves or super().is_leaf_module(m, qualname)

    def call_module(self, m: nn.Module, forward: Callable[..., Any], args: tuple, kwargs: dict) -> Any:
        try:
            return super().call_module(m, forward, args, kwargs)
        except Exception as exc:
            if getattr(exc, "_irprune_module", None) is None:
                try:
                    exc._irprune_module = self.path_of_module(m)  # type: ignore[attr-defined]
                except NameError:
                    exc._irprune_module = None  # type: ignore[attr-defined]
            raise


def _attr_state(model: nn.Module) -> list[tuple[nn.Module, dict[str, Any]]]:
    return [(m, {k: v for k, v in vars(m).items() if not k.startswith("_")}) for m in model.modules()]


def _restore_leaks(state: list[tuple[nn.Module, dict[str, Any]]]) -> list[str]:
    leaked = []
    for m, saved in state:
        for k, v in list(vars(m).items()):
            if isinstance(v, fx.Proxy):
                leaked.append(k)
                if k in saved:
                    setattr(m, k, saved[k])
                else:
                    delattr(m, k)
    return leaked


def _failing_function(exc: BaseException) -> Callable[..., Any] | None:
    """The innermost plain module-level function of the model's code in the traceback."""
    for frame, _ in reversed(list(traceback.walk_tb(exc.__traceback__))):
        path = frame.f_code.co_filename.replace("\\", "/")
        if "/torch/" in path or "/ir_prune_plugin/" in path:
            continue
        fn = frame.f_globals.get(frame.f_code.co_name)
        if inspect.isfunction(fn) and fn.__code__ is frame.f_code and "self" not in frame.f_code.co_varnames[:1]:
            return fn
        return None
    return None


def _where(exc: BaseException) -> str:
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if "/torch/" not in f.filename.replace("\\", "/")]
    f = frames[-1] if frames else None
    return f" at `{(f.line or '').strip()}` ({f.filename.rsplit('/', 1)[-1]}:{f.lineno})" if f else ""


def trace_repairing(model: nn.Module, leaf_functions: Sequence[Callable[..., Any]] = ()) -> fx.Graph:
    """``torch.fx`` graph of ``model`` with the repairs described above (deterministic: the same
    model gives the same graph and node names, so recorded compactor sites replay)."""
    leaves: set[str] = set()
    functions = tuple(leaf_functions)
    for _ in range(_MAX_REPAIRS):
        state = _attr_state(model)
        try:
            graph = _Tracer(leaves, functions).trace(model)
        except Exception as exc:  # noqa: BLE001 - repaired below or re-raised with the cause
            _restore_leaks(state)
            module = getattr(exc, "_irprune_module", None)
            fn = _failing_function(exc)
            if module and module not in leaves:
                leaves.add(module)
                log.debug("fx: %s made a leaf (%s: %s)", module, type(exc).__name__, exc)
                continue
            if fn is not None and fn not in functions:
                functions += (fn,)
                log.debug("fx: function %s made a leaf (%s: %s)", fn.__qualname__, type(exc).__name__, exc)
                continue
            raise ValueError(
                f"cannot capture the graph of {type(model).__name__} for compactor sites: "
                f"{type(exc).__name__}: {str(exc)[:300]}{_where(exc)}. This is control flow on tensor "
                "shapes or values in the model's own forward; move it into a submodule or a module-level "
                "function (those become opaque leaves), or pass leaf_functions=...") from exc
        leaked = _restore_leaks(state)
        if leaked:
            log.debug("fx: forward stored traced values in attributes %s (restored)", leaked)
        return graph
    raise ValueError(f"cannot capture the graph of {type(model).__name__}: more than {_MAX_REPAIRS} repairs")
