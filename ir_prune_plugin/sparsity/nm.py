"""N:M core: the hardware grouping axis, magnitude ranks inside groups, masks and the checker.

A group is M consecutive *reduction* (input) channels at a fixed (output channel, kh, kw):
Conv2d weights ``(Cout, Cin/g, kh, kw)`` group along dim 1, ConvTranspose2d weights
``(Cin, Cout/g, kh, kw)`` along dim 0 (its reduction axis), Linear ``(out, in)`` along dim 1.
This is the axis semi-structured GEMM kernels use after ``W.permute(0, 2, 3, 1)``.
"""
from __future__ import annotations

import copy
import logging
from dataclasses import dataclass

import torch
from torch import nn

from ..vocabulary import PLAN_ATTR, is_nm_prunable

log = logging.getLogger(__name__)

def _perm(dim: int, transposed: bool) -> tuple[int, ...]:
    """Permutation that puts the reduction axis last for a weight of this rank."""
    if dim == 2:
        return (0, 1)
    if dim != 4:
        raise ValueError(f"N:M needs a 2-D or 4-D weight, got {dim}-D")
    return (1, 2, 3, 0) if transposed else (0, 2, 3, 1)


def reduction_size(module: nn.Module) -> int:
    """Length of the reduction axis the N:M groups are cut from."""
    w = module.weight
    return int(w.shape[0] // module.groups) if isinstance(module, nn.ConvTranspose2d) else int(w.shape[1])


def to_groups(weight: torch.Tensor, M: int, transposed: bool = False) -> torch.Tensor:
    """View ``weight`` as ``(num_groups, M)`` rows of M consecutive reduction channels."""
    p = _perm(weight.dim(), transposed)
    return weight.permute(*p).reshape(-1, M)


def from_groups(groups: torch.Tensor, shape: torch.Size, transposed: bool = False) -> torch.Tensor:
    """Inverse of :func:`to_groups` for a weight of ``shape``."""
    p = _perm(len(shape), transposed)
    permuted_shape = [shape[i] for i in p]
    inv = [p.index(i) for i in range(len(p))]
    return groups.reshape(permuted_shape).permute(*inv).contiguous()


def group_ranks(weight: torch.Tensor, M: int, transposed: bool = False) -> torch.Tensor:
    """Rank (0 = largest magnitude) of every weight inside its N:M group, same shape as weight.

    Ties are broken by position (stable sort), so equal weights always get a deterministic rank.
    """
    g = to_groups(weight.detach(), M, transposed).abs()
    order = torch.sort(g, dim=1, descending=True, stable=True).indices
    ranks = torch.empty_like(order)
    ranks.scatter_(1, order, torch.arange(M, device=g.device).expand_as(order).contiguous())
    return from_groups(ranks, weight.shape, transposed)


def nm_mask(weight: torch.Tensor, N: int, M: int, transposed: bool = False) -> torch.Tensor:
    """Magnitude N:M mask: keep the N largest |w| of every group (float, same shape)."""
    check_n_m(N, M)
    return (group_ranks(weight, M, transposed) < N).to(weight.dtype)


def check_n_m(N: int, M: int) -> None:
    """Validate an N:M pair (1 <= N <= M, integers) with an explicit message."""
    for name, v in (("N", N), ("M", M)):
        if isinstance(v, bool) or not isinstance(v, int):
            raise TypeError(f"{name} must be an int, got {v!r} ({type(v).__name__})")
    if M <= 0:
        raise ValueError(f"M must be a positive int (e.g. 4, 8, 16, 32), got M={M}")
    if not 1 <= N <= M:
        raise ValueError(f"N must satisfy 1 <= N <= M={M}, got N={N}")


def eligible_layers(model: nn.Module, M: int, ignored: set[str] = frozenset()) -> tuple[dict[str, nn.Module], dict[str, str]]:
    """Split prunable layers into ``{name: module}`` eligible for N:M and ``{name: why}`` left dense."""
    ok: dict[str, nn.Module] = {}
    dense: dict[str, str] = {}
    for name, m in model.named_modules():
        if not is_nm_prunable(m):
            continue
        if name in ignored:
            dense[name] = "ignored"
        elif reduction_size(m) % M:
            dense[name] = f"reduction size {reduction_size(m)} not divisible by M={M}"
        else:
            ok[name] = m
    return ok, dense


@dataclass(frozen=True)
class LayerNM:
    """What :func:`check_nm` found in one layer: its N:M (None when dense) or why it is dense."""

    name: str
    N: int | None
    M: int | None
    density: float
    note: str = ""


@dataclass(frozen=True)
class NMReport:
    """Per-layer N:M of a model; ``plan`` maps sparse layers to ``(N, M)``."""

    layers: tuple[LayerNM, ...]

    @property
    def plan(self) -> dict[str, tuple[int, int]]:
        """``{layer: (N, M)}`` for the layers that are N:M sparse."""
        return {x.name: (x.N, x.M) for x in self.layers if x.N is not None}

    @property
    def dense(self) -> dict[str, str]:
        """``{layer: why}`` for the layers left dense."""
        return {x.name: x.note for x in self.layers if x.N is None}


def max_nonzeros_per_group(weight: torch.Tensor, M: int, transposed: bool = False) -> int:
    """Largest count of non-zeros in any N:M group of ``weight``."""
    return int((to_groups(weight.detach(), M, transposed) != 0).sum(1).max())


def check_nm(model: nn.Module, plan: dict[str, tuple[int, int]] | None = None) -> NMReport:
    """Report each prunable layer's N:M; raise ``ValueError`` on a block that breaks its plan.

    The plan defaults to ``model.irprune_nm_plan`` (set by ``finalize()``). Layers outside the
    plan are reported dense with their density.
    """
    plan = dict(plan if plan is not None else getattr(model, "irprune_nm_plan", {}))
    modules = dict(model.named_modules())
    unknown = sorted(set(plan) - set(modules))
    if unknown:
        raise ValueError(f"plan names layers the model does not have: {unknown}")
    out: list[LayerNM] = []
    for name, m in modules.items():
        if not is_nm_prunable(m):
            continue
        w = m.weight.detach()
        density = float((w != 0).float().mean())
        if name not in plan:
            out.append(LayerNM(name, None, None, density, "not in plan (dense)"))
            continue
        N, M = plan[name]
        check_n_m(N, M)
        if reduction_size(m) % M:
            raise ValueError(f"layer {name!r}: reduction size {reduction_size(m)} not divisible by M={M}")
        worst = max_nonzeros_per_group(w, M, isinstance(m, nn.ConvTranspose2d))
        if worst > N:
            raise ValueError(f"layer {name!r} violates {N}:{M}: a group holds {worst} non-zeros")
        out.append(LayerNM(name, N, M, density))
    return NMReport(tuple(out))


def apply_nm_plan(model: nn.Module, plan: dict[str, tuple[int, int]], *,
                  masks: bool = False) -> nn.Module | dict[str, dict[str, torch.Tensor]]:
    """Apply an N:M plan ``{layer: (N, M)}`` (SLS's decision): keep the N largest-magnitude weights of
    every group of M along each layer's reduction axis.

    ``masks=False``: a copy of ``model`` with the pruned weights zeroed and the plan recorded
    (``irprune_nm_plan``); ``model`` is never changed. ``masks=True``: ``{layer: {'weight': mask,
    'bias': ones}}`` 0/1 tensors (NNI's mask format) for ``model`` as it is.
    """
    modules = dict(model.named_modules())
    for name, nm in plan.items():
        if name not in modules or not is_nm_prunable(modules[name]):
            raise ValueError(f"plan names {name!r}, which is not an N:M-prunable layer of the model")
        if not (isinstance(nm, (tuple, list)) and len(nm) == 2):
            raise ValueError(f"plan entry {name!r}: {nm!r} is not (N, M)")
        check_n_m(int(nm[0]), int(nm[1]))
    if masks:
        out = {}
        for name, (n, m) in plan.items():
            layer = modules[name]
            w = layer.weight.detach()
            out[name] = {"weight": nm_mask(w, int(n), int(m), isinstance(layer, nn.ConvTranspose2d)).to(w.dtype)}
            if getattr(layer, "bias", None) is not None:
                out[name]["bias"] = torch.ones_like(layer.bias)
        return out
    work = copy.deepcopy(model)
    work_modules = dict(work.named_modules())
    with torch.no_grad():
        for name, (n, m) in plan.items():
            layer = work_modules[name]
            layer.weight.mul_(nm_mask(layer.weight, int(n), int(m), isinstance(layer, nn.ConvTranspose2d)))
    setattr(work, PLAN_ATTR, {k: (int(v[0]), int(v[1])) for k, v in plan.items()})
    return work
