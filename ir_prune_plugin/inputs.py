"""Checking a model's example inputs, shared by every part of the plugin (the argument vocabulary
itself -- ``as_tuple``, ``parse_hw``, ``format_hw`` -- lives in :mod:`ir_prune_plugin.vocabulary`).
Public: a caller may run the same check before handing inputs to any entry point
(``from ir_prune_plugin.inputs import check_example_inputs``; the old ``_inputs`` path still works).

:func:`check_example_inputs` is the one example-input check every public entry point runs
before it copies or changes anything: tensors (not empty, finite, as many as ``forward``
takes) that run through the model. The run is a dry run on the ``meta`` device (nothing is
allocated), so a wrong rank, channel count or size is reported against ``example_inputs``
instead of surfacing later as a raw conv, fx or export error.
"""
from __future__ import annotations

import contextlib
import copy
import inspect
from typing import Any, Callable, Iterator

import torch
from torch import nn
from torch.utils._pytree import tree_leaves

from .vocabulary import as_tuple

__all__ = ["check_example_inputs", "meta_copy", "model_dtype", "module_stack", "primary_output"]

# Errors a meta-device dry run raises for reasons that have nothing to do with the inputs'
# shapes (value-dependent code, fixed devices, ops without a meta kernel): not blamed on them.
_NOT_INPUT_ERRORS = ("meta", "data pointer", "data-dependent", "item()", "device", "numpy",
                     "not implemented", "NotImplemented")


def model_dtype(model: nn.Module) -> torch.dtype:
    """The floating dtype of ``model``'s parameters (float32 for a model without any)."""
    for t in list(model.parameters()) + list(model.buffers()):
        if t.is_floating_point():
            return t.dtype
    return torch.float32


def meta_copy(model: nn.Module, dtype: torch.dtype | None = None) -> nn.Module:
    """An eval-mode deep copy with every parameter, buffer and tensor attribute on ``meta``.

    The weights are never copied: the memo maps each one straight to an empty meta tensor.
    """
    memo: dict[int, object] = {}
    for t in list(model.parameters()) + list(model.buffers()):
        cast = dtype if dtype is not None and t.is_floating_point() else t.dtype
        meta = torch.empty_like(t, device="meta", dtype=cast)
        memo[id(t)] = nn.Parameter(meta, t.requires_grad) if isinstance(t, nn.Parameter) else meta
    for mod in model.modules():  # plain tensor attributes (e.g. BasicSR's ``self.mean``)
        for value in vars(mod).values():
            if isinstance(value, torch.Tensor) and id(value) not in memo:
                cast = dtype if dtype is not None and value.is_floating_point() else value.dtype
                memo[id(value)] = torch.empty_like(value, device="meta", dtype=cast)
    return copy.deepcopy(model, memo).eval()


def _describe(inputs: tuple[torch.Tensor, ...]) -> str:
    parts = [f"{tuple(t.shape)} {str(t.dtype).replace('torch.', '')}" for t in inputs]
    return parts[0] if len(parts) == 1 else "(" + ", ".join(parts) + ")"


def _check_arity(model: nn.Module, n: int) -> None:
    try:
        params = list(inspect.signature(model.forward).parameters.values())
    except (TypeError, ValueError):  # builtins / C extensions: nothing to compare against
        return
    kinds = inspect.Parameter
    if any(p.kind == kinds.VAR_POSITIONAL for p in params):
        return
    positional = [p for p in params if p.kind in (kinds.POSITIONAL_ONLY, kinds.POSITIONAL_OR_KEYWORD)]
    required = [p for p in params if p.default is kinds.empty
                and p.kind in (kinds.POSITIONAL_ONLY, kinds.POSITIONAL_OR_KEYWORD, kinds.KEYWORD_ONLY)]
    if len(required) <= n <= len(positional):
        return
    names = ", ".join(p.name for p in positional) or "nothing"
    raise ValueError(f"example_inputs has {n} tensor{'s' * (n != 1)} but {type(model).__name__}.forward "
                     f"takes {len(required)}" + (f" to {len(positional)}" if len(positional) > len(required) else "")
                     + f" ({names}); pass one tensor per forward argument, as a tuple")


@contextlib.contextmanager
def module_stack(model: nn.Module) -> Iterator[list[str]]:
    """Within the ``with`` body, the qualified names of ``model``'s modules that are running, innermost last.

    Forward hooks do not run when a forward raises, so after a failed run the list still holds the
    path to the failing module: error messages name ``stack[-1]`` ('' is the model itself).
    """
    stack: list[str] = []

    def leave(*_: Any) -> None:
        if stack:
            stack.pop()

    handles = []
    for name, mod in model.named_modules():
        handles.append(mod.register_forward_pre_hook(lambda _m, _a, _n=name: stack.append(_n)))
        handles.append(mod.register_forward_hook(leave))
    try:
        yield stack
    finally:
        for h in handles:
            h.remove()


def _dry_run(model: nn.Module, inputs: tuple[torch.Tensor, ...], dtype: torch.dtype | None) -> None:
    """Run ``model`` on meta copies of ``inputs``; a shape/dtype failure is blamed on the inputs."""
    work = meta_copy(model, dtype)
    with module_stack(work) as stack:
        try:
            with torch.no_grad():
                work(*(torch.empty(t.shape, device="meta", dtype=dtype if dtype is not None
                                   and t.is_floating_point() else t.dtype) for t in inputs))
        except (RuntimeError, ValueError, TypeError, IndexError, AssertionError) as exc:
            text = str(exc).strip()
            if any(s.lower() in text.lower() for s in _NOT_INPUT_ERRORS):
                return  # cannot tell on meta; the real run reports it
            where = ""
            if stack and stack[-1]:
                layer = work.get_submodule(stack[-1])
                where = f" in module '{stack[-1]}' ({type(layer).__name__}"
                takes = getattr(layer, "in_channels", getattr(layer, "in_features", None))
                where += f", which takes {takes} channels)" if isinstance(takes, int) else ")"
            hint = ""
            want = dtype or model_dtype(model)
            if dtype is None and any(t.is_floating_point() and t.dtype != want for t in inputs):
                hint = f"; the model's weights are {str(want).replace('torch.', '')}: pass inputs of that dtype"
            first = text.splitlines()[0] if text else type(exc).__name__
            raise ValueError(f"example_inputs {_describe(inputs)} do not run through {type(model).__name__}"
                             f"{where}: {first}{hint}; pass inputs with the rank, channels and size the "
                             "model takes, e.g. a (1, C, H, W) image batch") from None


def check_example_inputs(model: nn.Module, example_inputs: Any, *, dtype: torch.dtype | None = None,
                         values: bool = True) -> tuple[torch.Tensor, ...]:
    """Validate ``example_inputs`` for ``model`` and return them as a tuple of tensors.

    Raises ``TypeError`` for anything but a tensor or a tuple of tensors and ``ValueError``
    (naming the shapes and what would work) for: a count that ``model.forward`` does not take,
    an empty tensor (batch 0, a 0x0 image), NaN/Inf values, or shapes/dtypes the model cannot
    run (checked by a dry run on the ``meta`` device: no memory, the model untouched).
    ``values=True`` (entry points that run the model for real) also rejects a model or inputs
    on the ``meta`` device; ``values=False`` (shape-only analyses) accepts them. ``dtype`` casts
    floating weights and inputs for the dry run (as ``estimate_peak_memory(dtype=...)`` does).
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    inputs = as_tuple(example_inputs)
    if values:
        meta = next((n for n, t in list(model.named_parameters()) + list(model.named_buffers()) if t.is_meta), None)
        if meta is not None:
            raise ValueError(f"model {type(model).__name__} has tensors on the meta device (no values), e.g. "
                             f"{meta!r}; this runs the model for real: load real weights first "
                             "(estimate_peak_memory works on meta models)")
        if any(t.is_meta for t in inputs):
            raise ValueError("example_inputs are meta tensors (shapes only) but this runs the model for real: "
                             "pass real tensors, e.g. torch.rand(1, 3, 64, 64) (estimate_peak_memory takes shapes)")
    _check_arity(model, len(inputs))
    for i, t in enumerate(inputs):
        label = "example_inputs" if len(inputs) == 1 else f"example_inputs[{i}]"
        if t.numel() == 0:
            raise ValueError(f"{label} of shape {tuple(t.shape)} is empty (a batch of 0 or a 0-sized "
                             "image); pass at least one sample of a size the model takes, e.g. (1, 3, 64, 64)")
        if not t.is_meta and (t.is_floating_point() or t.is_complex()):
            bad = int((~torch.isfinite(t)).sum())
            if bad:
                raise ValueError(f"{label} of shape {tuple(t.shape)} holds {bad} NaN/Inf value"
                                 f"{'s' * (bad != 1)}; pass finite inputs (a real image batch)")
    _dry_run(model, inputs, dtype)
    return inputs


def primary_output(output: Any, output_fn: Callable[[Any], torch.Tensor] | None = None) -> torch.Tensor:
    """The tensor a model's output is compared on: ``output_fn(output)``, else the output itself
    when it is a tensor, else its first tensor (tuples and lists in order, dicts in insertion order)."""
    value = output_fn(output) if output_fn is not None else output
    if isinstance(value, torch.Tensor):
        return value
    leaves = [t for t in tree_leaves(value) if isinstance(t, torch.Tensor)]
    if output_fn is None and leaves:
        return leaves[0]
    source = "output_fn(output)" if output_fn is not None else "the model's output"
    raise TypeError(f"{source} is a {type(value).__name__} with no tensor to compare; "
                    "pass output_fn=lambda out: <the image tensor>")
