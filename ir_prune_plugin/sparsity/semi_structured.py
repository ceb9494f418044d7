"""Export 2:4-compatible layers to PyTorch semi-structured sparse kernels (CUDA, sm >= 8.0, fp16/bf16).

A conv runs as ``W2d @ im2col(x)`` where ``W2d = W.permute(0, 2, 3, 1).reshape(Cout, kh*kw*Cin)``:
the columns of ``F.unfold`` (ordered C, kh, kw) are reordered to (kh, kw, C) so that every 4
consecutive reduction entries are one N:M group. Elsewhere the model is returned unchanged with
an explanation.
"""
from __future__ import annotations

import copy
import logging
import warnings
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .nm import max_nonzeros_per_group

log = logging.getLogger(__name__)

_MIN = {torch.float16: (32, 64), torch.bfloat16: (32, 64)}


@dataclass(frozen=True)
class _Geometry:
    kernel_size: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int]
    dilation: tuple[int, int]


def conv_weight_2d(weight: torch.Tensor) -> torch.Tensor:
    """(Cout, Cin, kh, kw) -> (Cout, kh*kw*Cin): rows whose 4-blocks are the N:M groups."""
    return weight.permute(0, 2, 3, 1).reshape(weight.shape[0], -1).contiguous()


def im2col(x: torch.Tensor, conv: nn.Conv2d | _Geometry) -> torch.Tensor:
    """(B, C, H, W) -> (kh*kw*C, B*L) columns matching :func:`conv_weight_2d`."""
    kh, kw = conv.kernel_size
    cols = F.unfold(x, (kh, kw), dilation=conv.dilation, padding=conv.padding, stride=conv.stride)
    b, _, L = cols.shape
    cols = cols.view(b, x.shape[1], kh * kw, L).transpose(1, 2).reshape(b, -1, L)
    return cols.permute(1, 0, 2).reshape(cols.shape[1], b * L)


def _out_hw(x: torch.Tensor, conv: nn.Conv2d | _Geometry) -> tuple[int, int]:
    h, w = x.shape[-2:]
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = conv.kernel_size, conv.stride, conv.padding, conv.dilation
    return (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1, (w + 2 * pw - dw * (kw - 1) - 1) // sw + 1


def _padded(w2: torch.Tensor, rows: int, cols: int) -> torch.Tensor:
    """Zero-pad a 2-D weight up to multiples of (rows, cols): zero groups stay 2:4."""
    r, c = -w2.shape[0] % rows, -w2.shape[1] % cols
    return F.pad(w2, (0, c, 0, r)).contiguous() if r or c else w2


class SemiStructuredConv2d(nn.Module):
    """A Conv2d computed by a 2:4 semi-structured sparse matmul over im2col columns.

    The 2-D weight is zero-padded to the kernel's shape multiples; padded outputs are dropped.
    """

    def __init__(self, conv: nn.Conv2d) -> None:
        super().__init__()
        from torch.sparse import to_sparse_semi_structured

        w2 = conv_weight_2d(conv.weight.detach())
        rmin, cmin = _MIN[w2.dtype]
        self.geom = _Geometry(conv.kernel_size, conv.stride, conv.padding, conv.dilation)
        self.out_channels, self.k_pad = conv.out_channels, -w2.shape[1] % cmin
        self.weight = nn.Parameter(to_sparse_semi_structured(_padded(w2, rmin, cmin)), requires_grad=False)
        self.bias = None if conv.bias is None else nn.Parameter(conv.bias.detach().clone(), requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = x.shape[0]
        oh, ow = _out_hw(x, self.geom)
        cols = im2col(x, self.geom)
        if self.k_pad:
            cols = F.pad(cols, (0, 0, 0, self.k_pad))
        y = torch.mm(self.weight, cols)[: self.out_channels]  # (Cout, B*L)
        y = y.reshape(self.out_channels, b, oh, ow).transpose(0, 1)
        return y + self.bias.view(1, -1, 1, 1) if self.bias is not None else y.contiguous()


def semi_structured_plan(model: nn.Module, dtype: torch.dtype = torch.float16) -> dict[str, str]:
    """Per Conv2d/Linear layer: ``'ok'`` if it can run 2:4 sparse, else why not (runs anywhere).

    Conv weights are zero-padded to the kernel's shape multiples; Linear weights must fit them.
    """
    out: dict[str, str] = {}
    rmin, cmin = _MIN.get(dtype, (None, None))
    for name, m in model.named_modules():
        if isinstance(m, nn.ConvTranspose2d):
            out[name] = "ConvTranspose2d: no semi-structured kernel (left dense)"
            continue
        if not isinstance(m, (nn.Conv2d, nn.Linear)):
            continue
        if isinstance(m, nn.Conv2d) and m.groups != 1:
            out[name] = f"grouped conv (groups={m.groups}) not supported"
            continue
        w2 = conv_weight_2d(m.weight) if m.weight.dim() == 4 else m.weight
        if rmin is None:
            out[name] = f"dtype {dtype} not supported (use float16 or bfloat16)"
        elif isinstance(m, nn.Linear) and (w2.shape[0] % rmin or w2.shape[1] % cmin):
            out[name] = f"shape {tuple(w2.shape)} not a multiple of ({rmin}, {cmin})"
        elif w2.shape[1] % 4:
            out[name] = f"reduction size {w2.shape[1]} not divisible by 4"
        elif (worst := max_nonzeros_per_group(w2, 4)) > 2:
            out[name] = f"not 2:4 (a group of 4 holds {worst} non-zeros)"
        else:
            out[name] = "ok"
    return out


def why_not_semi_structured(device: torch.device | str | None = None, dtype: torch.dtype = torch.float16) -> str | None:
    """``None`` if this device/dtype runs semi-structured sparse kernels, else the reason."""
    dev = torch.device(device) if device is not None else torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if dev.type != "cuda" or not torch.cuda.is_available():
        return f"semi-structured sparse kernels need a CUDA GPU; got device {dev}"
    major, minor = torch.cuda.get_device_capability(dev)
    if major < 8:
        return f"semi-structured sparse kernels need compute capability >= 8.0; this GPU is {major}.{minor}"
    if dtype not in _MIN:
        return f"semi-structured sparse kernels need float16 or bfloat16, got {dtype}"
    return None


def to_semi_structured(model: nn.Module, example_input: torch.Tensor | None = None, *,
                       atol: float = 1e-3, rtol: float = 1e-3) -> nn.Module:
    """A copy of ``model`` whose 2:4-compatible Conv2d/Linear layers use sparse kernels.

    The model must already be on CUDA in float16/bfloat16. Each replaced layer is checked against
    its masked dense version (``atol``/``rtol``; with ``example_input`` the whole model too).
    Where kernels cannot run, warns why and returns ``model`` itself, unchanged.
    """
    p = next(model.parameters())
    reason = why_not_semi_structured(p.device, p.dtype)
    if reason is not None:
        warnings.warn(f"{reason}: model returned unchanged", RuntimeWarning, stacklevel=2)
        return model
    from torch.sparse import to_sparse_semi_structured

    plan = semi_structured_plan(model, p.dtype)
    work = copy.deepcopy(model)
    mods = dict(work.named_modules())
    swapped = []
    for name, status in plan.items():
        if status != "ok":
            log.info("dense: %s (%s)", name, status)
            continue
        m = mods[name]
        probe = torch.randn((4, m.in_features) if isinstance(m, nn.Linear) else (1, m.in_channels, 16, 16),
                            device=p.device, dtype=p.dtype)
        with torch.no_grad():
            ref = m(probe)
            if isinstance(m, nn.Linear):
                new = copy.deepcopy(m)
                new.weight = nn.Parameter(to_sparse_semi_structured(m.weight.detach().contiguous()), requires_grad=False)
            else:
                new = SemiStructuredConv2d(m)
            got = new(probe)
        if not torch.allclose(got, ref, atol=atol, rtol=rtol):
            log.warning("layer %s: sparse output differs from dense by %.3g: kept dense", name,
                        float((got - ref).abs().max()))
            continue
        parent_name, _, child = name.rpartition(".")
        setattr(mods[parent_name] if parent_name else work, child, new)
        swapped.append(name)
    if example_input is not None:
        with torch.no_grad():
            ref, got = model(example_input), work(example_input)
        if not torch.allclose(got, ref, atol=atol, rtol=rtol):
            raise RuntimeError(f"semi-structured model differs from dense by {float((got - ref).abs().max()):.3g}")
    work.irprune_semi_structured = {n: ("sparse" if n in swapped else s) for n, s in plan.items()}
    log.info("semi-structured: %d of %d layers sparse", len(swapped), len(plan))
    return work
