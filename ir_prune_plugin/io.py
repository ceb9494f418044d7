"""Save and load pruned models: architecture spec + compactor sites + shapes + weights + N:M plan.

The file holds only plain containers and tensors, so ``torch.load(path, weights_only=True)``
reads it (no pickled modules). Loading rebuilds the arch (``build_arch``, or a user's own class
by import path and constructor arguments, or a ``factory``), fuses re-parameterised blocks as
they were, replays the compactor insertion, resizes every layer to the saved shapes and loads
the weights strictly.
"""
from __future__ import annotations

import logging
import os
from typing import Any, Callable, Mapping

import torch
from torch import nn
from torch.nn.utils import parametrize

from .archs import arch_spec, build_arch
from .archs.user_class import build_from_class_spec, class_spec
from .channels.compactor import replay_compactors
from .channels.rules.reparam import FUSED_ATTR, fuse_reparam
from .sparsity.nm import check_n_m
from .vocabulary import PLAN_ATTR as NM_PLAN_ATTR
from .vocabulary import SITES_ATTR, Compactor

__all__ = ["FORMAT", "FORMAT_VERSION", "load_pruned", "save_pruned"]

log = logging.getLogger(__name__)

FORMAT = "ir-prune-plugin/pruned-model"
FORMAT_VERSION = 1


def _check_path(path: Any) -> str:
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}")
    return os.fspath(path)


def _check_spec(spec: Any) -> dict[str, Any]:
    if not isinstance(spec, Mapping) or not (isinstance(spec.get("type"), str) or isinstance(spec.get("class"), str)):
        raise ValueError("arch spec must be a dict with a 'type' name (see build_arch) or a 'class' import path "
                         f"('package.module:QualName') and 'kwargs', got {spec!r}")
    return dict(spec)


def _nm_plan(model: nn.Module) -> dict[str, tuple[int, int]]:
    plan = getattr(model, NM_PLAN_ATTR, None) or {}
    if not isinstance(plan, Mapping):
        raise TypeError(f"{NM_PLAN_ATTR} must be a dict {{layer: (N, M)}}, got {type(plan).__name__}")
    out = {}
    for layer, nm in plan.items():
        if not (isinstance(layer, str) and isinstance(nm, (tuple, list)) and len(nm) == 2
                and all(isinstance(v, int) and not isinstance(v, bool) for v in nm)):
            raise ValueError(f"{NM_PLAN_ATTR} entry {layer!r}: {nm!r} is not 'name': (N, M) with int N, M")
        try:
            check_n_m(int(nm[0]), int(nm[1]))
        except ValueError as exc:
            raise ValueError(f"{NM_PLAN_ATTR} entry {layer!r}: {tuple(nm)!r} is not a valid N:M pair ({exc})") from None
        out[layer] = (int(nm[0]), int(nm[1]))
    return out


def save_pruned(model: nn.Module, path: str | os.PathLike, *, arch: Mapping[str, Any] | None = None,
                init_kwargs: Mapping[str, Any] | None = None) -> None:
    """Write a pruned model (widths, compactors, fused blocks, N:M plan, weights) to ``path``.

    The architecture is recorded as ``arch`` if given (``{'type': name, **kwargs}`` for
    ``build_arch``), else the ``build_arch`` spec the model carries, else -- any other model
    class -- its import path and constructor arguments (``init_kwargs``, or read back from the
    model's attributes, see :mod:`ir_prune_plugin.archs.user_class`).
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    path = _check_path(path)
    spec = arch if arch is not None else arch_spec(model)
    spec = _check_spec(spec) if spec is not None else class_spec(model, init_kwargs)
    meta = [n for n, t in list(model.named_parameters()) + list(model.named_buffers()) if t.is_meta]
    if meta:
        raise ValueError(f"model has tensors on the meta device (no values), e.g. {meta[0]!r}; move it to "
                         "a real device with weights (model.to_empty(device='cpu') and load a state dict) first")
    if any(parametrize.is_parametrized(m) for m in model.modules()):
        raise ValueError("model still has parametrizations (e.g. N:M masks); finalize them first "
                         "(SLSPruner.finalize() or torch.nn.utils.parametrize.remove_parametrizations)")
    parent = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise ValueError(f"cannot save to {path!r}: it is a directory; give a file name such as 'model.pt'")
    if not os.path.isdir(parent):
        raise ValueError(f"cannot save to {path!r}: directory {parent!r} does not exist")
    if not os.access(parent, os.W_OK):
        raise ValueError(f"cannot save to {path!r}: directory {parent!r} is not writable")
    state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
    payload = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "arch": spec,
        "compactors": [dict(s) for s in getattr(model, SITES_ATTR, None) or []],
        "shapes": {k: list(v.shape) for k, v in state.items()},
        "nm_plan": _nm_plan(model),
        "fused": list(getattr(model, FUSED_ATTR, None) or []),
        "state_dict": state,
    }
    _rebuild(payload, f"the model being saved (arch {spec!r})")  # refuse a file that would not load
    try:
        torch.save(payload, path)
    except (OSError, RuntimeError) as exc:
        raise ValueError(f"cannot write {path!r}: {str(exc).strip().splitlines()[0]}") from None
    log.info("saved pruned %s (%d tensors) to %s", spec.get("type", spec.get("class")), len(state), path)


def _resize_tensor(module: nn.Module, name: str, shape: list[int]) -> None:
    old = getattr(module, name)
    if old is None or list(old.shape) == list(shape):
        return
    new = torch.empty(shape, dtype=old.dtype, device=old.device)
    if isinstance(old, nn.Parameter):
        setattr(module, name, nn.Parameter(new, requires_grad=old.requires_grad))
    else:
        module._buffers[name] = new


def _fix_attributes(module: nn.Module) -> None:
    """Make a layer's size attributes agree with its (resized) tensors."""
    if isinstance(module, nn.modules.conv._ConvNd):
        w = module.weight
        if module.groups > 1 and module.groups == module.in_channels == module.out_channels:
            module.groups = w.shape[0] * (w.shape[1] if module.transposed else 1)  # depthwise stays depthwise
        a, b = w.shape[0], w.shape[1] * module.groups
        module.in_channels, module.out_channels = (a, b) if module.transposed else (b, a)
    elif isinstance(module, nn.Linear):
        module.out_features, module.in_features = module.weight.shape
    elif isinstance(module, nn.modules.batchnorm._NormBase):
        ref = module.running_mean if module.running_mean is not None else module.weight
        if ref is not None:
            module.num_features = ref.shape[0]
    elif isinstance(module, nn.GroupNorm) and module.weight is not None:
        module.num_channels = module.weight.shape[0]
    elif isinstance(module, nn.LayerNorm) and module.weight is not None:
        module.normalized_shape = tuple(module.weight.shape)
    elif isinstance(module, nn.PReLU):
        module.num_parameters = module.weight.shape[0]


def _resize_to(model: nn.Module, shapes: Mapping[str, list[int]]) -> None:
    for mname, module in model.named_modules():
        prefix = f"{mname}." if mname else ""
        changed = False
        for tname, t in list(module.named_parameters(recurse=False)) + list(module.named_buffers(recurse=False)):
            key = prefix + tname
            if t is not None and key in shapes and list(t.shape) != list(shapes[key]):
                _resize_tensor(module, tname, shapes[key])
                changed = True
        if changed:
            _fix_attributes(module)
            if not isinstance(module, (nn.modules.conv._ConvNd, nn.Linear, nn.modules.batchnorm._NormBase,
                                       nn.GroupNorm, nn.LayerNorm, nn.PReLU, Compactor)):
                log.warning("resized tensors of %s (%s) without knowing its size attributes",
                            mname or "<root>", type(module).__name__)


def load_pruned(path: str | os.PathLike, *, factory: Callable[[], nn.Module] | None = None) -> nn.Module:
    """Rebuild a model written by :func:`save_pruned` (arch, compactors, fused blocks, widths,
    weights, N:M plan) on the CPU; move it with ``.to(device)``. ``factory()`` (a fresh, unpruned
    model) replaces the recorded architecture, e.g. for a class whose constructor arguments are
    not plain values."""
    path = _check_path(path)
    if not os.path.isfile(path):
        raise ValueError(f"no such file: {path!r}")
    if os.path.getsize(path) == 0:
        raise ValueError(f"{path!r} is empty (0 bytes): not a file written by save_pruned")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 -- truncated zip, pickle refused, garbage: all one answer
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ValueError(f"{path!r} cannot be read as a save_pruned file (truncated, corrupt or "
                         f"not a torch file): {first}") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ValueError(f"{path!r} is not a file written by save_pruned (format {FORMAT!r})")
    if payload.get("version") != FORMAT_VERSION:
        raise ValueError(f"{path!r} has format version {payload.get('version')!r}; this "
                         f"ir-prune-plugin reads version {FORMAT_VERSION}")
    return _rebuild(payload, repr(path), factory)


def _fuse_as_saved(model: nn.Module, fused: list[str]) -> None:
    """Fuse the re-parameterised blocks that were fused when the model was saved."""
    if not fused:
        return
    fuse_reparam(model)
    missing = sorted(set(fused) - set(getattr(model, FUSED_ATTR, None) or []))
    if missing:
        raise ValueError(f"the saved model had re-parameterised blocks {missing} fused, which this model lacks")


def _rebuild(payload: Mapping[str, Any], source: str, factory: Callable[[], nn.Module] | None = None) -> nn.Module:
    """The model a save_pruned payload describes; ``ValueError`` naming ``source`` if it cannot be."""
    missing = [k for k in ("arch", "compactors", "shapes", "nm_plan", "state_dict") if k not in payload]
    if missing:
        raise ValueError(f"{source} lacks {missing}: not a complete save_pruned file")
    spec = _check_spec(payload["arch"])
    plan = payload["nm_plan"]
    if not isinstance(plan, Mapping):
        raise ValueError(f"{source}: nm_plan must be a dict {{layer: (N, M)}}, got {type(plan).__name__}")
    probe = nn.Module()
    setattr(probe, NM_PLAN_ATTR, dict(plan))
    try:
        plan = _nm_plan(probe)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{source}: {exc}") from None
    try:
        if factory is not None or "class" in spec:
            model = build_from_class_spec(spec, factory)
        else:
            model = build_arch(spec["type"], **{k: v for k, v in spec.items() if k != "type"})
        _fuse_as_saved(model, payload.get("fused") or [])
        model = replay_compactors(model, payload["compactors"])
        _resize_to(model, payload["shapes"])
        model.load_state_dict(payload["state_dict"], strict=True)
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ValueError(f"{source} does not rebuild: arch {spec!r} with the saved compactors and shapes "
                         f"does not take its weights ({type(exc).__name__}: {first}); pass the arch the "
                         "model was built with") from None
    unknown = sorted(set(plan) - {n for n, _ in model.named_modules()})
    if unknown:
        raise ValueError(f"{source}: nm_plan names layers the model does not have: {unknown[:5]}")
    if plan:
        setattr(model, NM_PLAN_ATTR, plan)
    return model
