"""Capture a model's operator graph with ``torch.export`` (non-strict), on meta or real tensors."""
from __future__ import annotations

import os
import traceback
from typing import Sequence, Union

import torch
import torch.fx.config as fx_config
from torch import nn

from ..inputs import module_stack

ExampleInputs = Union[torch.Tensor, Sequence[torch.Tensor], Sequence[int], torch.Size]

_TORCH_DIR = os.path.dirname(torch.__file__)


class TraceError(RuntimeError):
    """``torch.export`` could not capture the model; the message names where and what to do."""


def normalize_inputs(example_inputs: ExampleInputs, dtype: torch.dtype | None = None
                     ) -> tuple[torch.Tensor, ...]:
    """A tensor, a tuple of tensors, or a shape (tuple of ints) -> tuple of tensors.

    A shape becomes one float tensor (``dtype`` or float32) on the meta device.
    """
    if dtype is not None and not isinstance(dtype, torch.dtype):
        raise TypeError(f"dtype must be a torch.dtype such as torch.float16, got {dtype!r}")
    if isinstance(example_inputs, torch.Tensor):
        return (example_inputs,)
    if isinstance(example_inputs, (tuple, list, torch.Size)) and len(example_inputs) > 0:
        if all(isinstance(d, int) and not isinstance(d, bool) for d in example_inputs):
            if any(d <= 0 for d in example_inputs):
                raise ValueError(f"an input shape needs positive sizes, got {tuple(example_inputs)}")
            return (torch.empty(tuple(example_inputs), dtype=dtype or torch.float32, device="meta"),)
        if all(isinstance(t, torch.Tensor) for t in example_inputs):
            return tuple(example_inputs)
    raise TypeError("example_inputs must be a tensor, a tuple of tensors or an input shape such "
                    f"as (1, 3, 1080, 2048); got {type(example_inputs).__name__} {example_inputs!r:.80}")


def check_model(model: nn.Module) -> None:
    """Reject anything that is not an ``nn.Module``."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")


def to_meta_inputs(inputs: tuple[torch.Tensor, ...], dtype: torch.dtype | None = None
                   ) -> tuple[torch.Tensor, ...]:
    """Meta tensors with the same shapes (and dtypes, unless a float ``dtype`` is forced)."""
    return tuple(torch.empty(t.shape, device="meta",
                             dtype=dtype if dtype is not None and t.is_floating_point() else t.dtype)
                 for t in inputs)


def _user_frame(exc: BaseException) -> str | None:
    frames = [f for f in traceback.extract_tb(exc.__traceback__)
              if not f.filename.startswith(_TORCH_DIR) and f.filename != __file__
              and not f.filename.startswith("<")]
    if not frames:
        return None
    f = frames[-1]
    return f"{f.filename}:{f.lineno}: {(f.line or '').strip()}"


def _advice(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}"
    if "data-dependent" in text or "GuardOnDataDependent" in text:
        return ("the forward branches on or reads tensor values (data-dependent control flow, "
                ".item(), .tolist()); make the branch static (depend on shapes or a constructor "
                "flag), or move it out of forward()")
    if "Cannot access data pointer" in text or "numpy" in text.lower():
        return "the forward reads raw tensor data (e.g. .numpy()); keep the forward in torch ops"
    if "device" in text.lower():
        return "the forward creates tensors on a fixed device; create them with device=x.device"
    return ("rewrite the reported line with plain torch ops, or pass an input of a fixed size "
            "that the model supports")


def export_graph(model: nn.Module, inputs: tuple[torch.Tensor, ...]) -> torch.export.ExportedProgram:
    """``torch.export.export(model, inputs, strict=False)``; failures -> :class:`TraceError`."""
    emit = fx_config.do_not_emit_stack_traces
    fx_config.do_not_emit_stack_traces = True  # ~30% of export time; we do not use them
    with module_stack(model) as stack:
        try:
            return torch.export.export(model, inputs, strict=False)
        except Exception as exc:  # noqa: BLE001 -- any tracing failure is translated
            where = _user_frame(exc)
            module = stack[-1] if stack else None
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            msg = [f"could not trace {type(model).__name__} with torch.export "
                   f"({type(exc).__name__}: {first})"]
            if module is not None:
                mtype = type(model.get_submodule(module)).__name__ if module else type(model).__name__
                msg.append(f"in module '{module}' ({mtype})")
            if where:
                msg.append(f"at {where}")
            msg.append(f"fix: {_advice(exc)}")
            raise TraceError("; ".join(msg)) from exc
        finally:
            fx_config.do_not_emit_stack_traces = emit
