"""``export_onnx``: any model our pruners return -> an ONNX file with dynamic height/width, checked
against ONNX Runtime.

Compactors and pruned widths are ordinary modules and export as they are; N:M masks
(``torch.nn.utils.parametrize``) are squashed on a copy, so masked layers export as dense weights
with zeros (ONNX has no N:M format). The graph is exported at an example size that takes the
general path of size-dependent code (odd height and width: a U-Net that pads only when the size
is not a multiple of 16 keeps its padding; the example's own size for nets that only run at
multiples of their stride), then ONNX Runtime (CPU) runs it at that size and at
the caller's size and its output must equal PyTorch's within ``atol``.
"""
from __future__ import annotations

import copy
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn
from torch.nn.utils import parametrize

from ..inputs import check_example_inputs
from .ort_options import session_options

__all__ = ["OnnxExport", "OnnxExportError", "OnnxMismatchError", "export_onnx", "ort_session"]

log = logging.getLogger(__name__)
EXPORTERS = ("dynamo", "torchscript")
INPUT, OUTPUT = "input", "output"


class OnnxExportError(RuntimeError):
    """The model could not be exported to ONNX; the message names the model, the cause and a way out."""


class OnnxMismatchError(RuntimeError):
    """ONNX Runtime's output differs from PyTorch's by more than the tolerance at some size."""


@dataclass(frozen=True)
class OnnxExport:
    """What was written and how it was checked (max |ORT - PyTorch| per checked input size)."""

    path: Path
    exporter: str
    export_hw: tuple[int, int]
    max_abs_diff: dict[tuple[int, int], float] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def nbytes(self) -> int:
        """Size of the ONNX file."""
        return self.path.stat().st_size


def _dense_copy(model: nn.Module) -> nn.Module:
    """An eval-mode copy with every parametrization (N:M masks) squashed into plain weights."""
    work = copy.deepcopy(model).eval()
    for module in list(work.modules()):
        if parametrize.is_parametrized(module):
            for name in list(module.parametrizations.keys()):
                parametrize.remove_parametrizations(module, name, leave_parametrized=True)
    return work


def ort_session(path: str | Path, threads: int = 1, optimization: str = "all", execution_order: str = "default"):
    """An ONNX Runtime CPU session for ``path`` (``threads`` intra-op threads). For the least
    memory pass ``**MEMORY_PLAN`` (``ort_options``): ONNX Runtime then holds the estimated peak."""
    import onnxruntime as ort

    opts = session_options(threads, optimization, execution_order)
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def _advice(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}".strip()
    first = text.splitlines()[0][:300]
    if "adaptive" in text and "pool" in text:
        return f"{first} -- adaptive pooling whose output size follows the input (e.g. SAFMN) has no ONNX " \
               "operator: export at the deployment size with dynamic_hw=False, exporter='torchscript' " \
               "(`irprune export --static`; one graph per size, e.g. TiledRestorer's tile)"
    if "data-dependent" in text or "GuardOnDataDependent" in text:
        return f"{first} -- the forward branches on tensor values; make the branch depend on shapes only"
    if "Unsupported" in text or "not supported" in text or "no symbolic" in text.lower():
        return f"{first} -- an operator has no ONNX translation; try exporter='torchscript', another opset, " \
               "or replace the operator"
    return first


def _runs_at(work: nn.Module, like: torch.Tensor, hw: tuple[int, int]) -> bool:
    """Whether the model accepts an input of size ``hw`` (some nets need multiples of their stride)."""
    try:
        with torch.no_grad():
            work(torch.rand(like.shape[0], like.shape[1], *hw, dtype=like.dtype))
    except Exception:  # noqa: BLE001 - any failure means "not at this size"
        return False
    return True


def _export(work: nn.Module, x: torch.Tensor, path: Path, exporter: str, dynamic_hw: bool, opset: int | None,
            optimize: bool = True) -> None:
    kwargs = {"input_names": [INPUT], "output_names": [OUTPUT]}
    if opset is not None:
        kwargs["opset_version"] = opset
    if exporter == "dynamo":
        auto = torch.export.Dim.AUTO
        dyn = ({2: auto, 3: auto},) if dynamic_hw else None
        torch.onnx.export(work, (x,), str(path), dynamo=True, dynamic_shapes=dyn, verbose=False, optimize=optimize,
                          **kwargs)
    else:
        axes = {INPUT: {2: "height", 3: "width"}, OUTPUT: {2: "out_height", 3: "out_width"}} if dynamic_hw else None
        import warnings
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # TracerWarnings: the size check below is what matters
            torch.onnx.export(work, (x,), str(path), dynamo=False, dynamic_axes=axes, **kwargs)


def _check(work: nn.Module, session, hw: tuple[int, int], like: torch.Tensor, atol: float) -> float:
    g = torch.Generator().manual_seed(hw[0] * 7919 + hw[1])
    x = torch.rand(like.shape[0], like.shape[1], *hw, generator=g, dtype=like.dtype)
    with torch.no_grad():
        ref = work(x)
    if isinstance(ref, (tuple, list)):
        ref = ref[0]
    try:
        got = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
    except Exception as exc:  # noqa: BLE001 - ORT raises its own Fail/InvalidArgument types
        raise OnnxMismatchError(f"ONNX Runtime failed at input size {hw[0]}x{hw[1]} (HxW): "
                                f"{str(exc).splitlines()[0][:300]}; the exported graph is probably specialised "
                                "to the export size (the forward branches on the input size)") from exc
    got = torch.from_numpy(got)
    if got.shape != ref.shape:
        raise OnnxMismatchError(f"ONNX Runtime gave shape {tuple(got.shape)} at {hw[0]}x{hw[1]}, PyTorch "
                                f"{tuple(ref.shape)}: the graph is specialised to the export size")
    diff = float((got.double() - ref.double()).abs().max())
    if not diff <= atol:
        raise OnnxMismatchError(f"ONNX Runtime differs from PyTorch by {diff:.3g} (> atol {atol:g}) at input "
                                f"size {hw[0]}x{hw[1]} (HxW)")
    return diff


def export_onnx(model: nn.Module, path: str | Path, example_inputs: torch.Tensor | tuple[torch.Tensor, ...], *,
                dynamic_hw: bool = True, exporter: str = "dynamo", opset: int | None = None,
                check: bool = True, atol: float = 1e-4, optimize: bool = True) -> OnnxExport:
    """Write ``model`` to ``path`` as ONNX with dynamic height/width and check it with ONNX Runtime.

    ``example_inputs``: one image batch (N, C, H, W) (a tensor or a 1-tuple); its size is the
    reference size of the check. ``exporter``: ``'dynamo'`` (``torch.export``-based, PyTorch's
    default) or ``'torchscript'`` (the legacy tracer: much faster to export, deprecated).
    ``optimize`` (dynamo only): run the ONNX optimiser passes after export; it changes the graph
    ONNX Runtime plans memory for (see the README's Deploy figures).
    Raises ``TypeError``/``ValueError`` for bad arguments (before anything is written),
    :class:`OnnxExportError` when the exporter fails and :class:`OnnxMismatchError` when ONNX
    Runtime's output differs from PyTorch's by more than ``atol`` (or fails) at a checked size.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    inputs = check_example_inputs(model, example_inputs)
    if len(inputs) != 1 or inputs[0].dim() != 4 or not inputs[0].is_floating_point():
        raise ValueError("export_onnx expects one float image batch (N, C, H, W) as example_inputs, got "
                         f"{[tuple(t.shape) for t in inputs]}")
    if exporter not in EXPORTERS:
        raise ValueError(f"exporter must be one of {EXPORTERS}, got {exporter!r}")
    if not (isinstance(atol, (int, float)) and atol > 0):
        raise ValueError(f"atol must be a positive number, got {atol!r}")
    path = Path(path)
    if path.suffix != ".onnx":
        raise ValueError(f"path must end in .onnx, got {str(path)!r}")
    if not path.parent.is_dir():
        raise ValueError(f"folder {str(path.parent)!r} does not exist; create it first")
    x = inputs[0].detach().cpu()
    h, w = x.shape[-2:]
    work = _dense_copy(model).cpu()
    export_hw = (h | 1, w | 1) if dynamic_hw else (h, w)  # odd: the general path of size-dependent code
    if export_hw != (h, w) and not _runs_at(work, x, export_hw):
        log.info("%s does not run at odd sizes: exporting at the example size %dx%d", type(model).__name__, h, w)
        export_hw = (h, w)
    t0 = time.perf_counter()
    try:
        _export(work, torch.rand(x.shape[0], x.shape[1], *export_hw, dtype=x.dtype), path, exporter, dynamic_hw, opset,
                optimize)
    except Exception as exc:  # noqa: BLE001 - every exporter failure becomes one clear error
        raise OnnxExportError(f"cannot export {type(model).__name__} to ONNX with exporter={exporter!r}: "
                              f"{_advice(exc)}") from exc
    seconds = time.perf_counter() - t0
    log.info("exported %s to %s in %.1f s (%s)", type(model).__name__, path, seconds, exporter)
    result = OnnxExport(path=path, exporter=exporter, export_hw=export_hw, seconds=seconds)
    if check:
        session = ort_session(path)
        for hw in dict.fromkeys([export_hw, (h, w)]):
            result.max_abs_diff[hw] = _check(work, session, hw, x, atol)
    return result
