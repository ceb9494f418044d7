"""Rebuilding a user's own model class (not in the registry) by import path and constructor args.

``save_pruned`` records ``{'class': 'package.module:QualName', 'kwargs': {...}}`` for a model
that ``build_arch`` did not build. The constructor arguments come from, in order: what the
caller passes (``init_kwargs``), ``model.irprune_init_kwargs`` if the model set it, or the
constructor's parameters read back from same-named attributes (``self.dim = dim``, the usual
style); parameters with defaults that cannot be read back keep their defaults. The load then
resizes every tensor to the saved shapes and loads strictly, so a wrong width argument does no
harm, and a wrong depth argument fails with the missing/unexpected keys named. ``load_pruned``
also accepts ``factory=`` (a callable returning a fresh model) for classes that need more.
"""
from __future__ import annotations

import importlib
import inspect
from typing import Any, Callable, Mapping

from torch import nn

__all__ = ["INIT_KWARGS_ATTR", "SOURCE_CLASS_ATTR", "build_from_class_spec", "class_spec", "read_init_kwargs"]

INIT_KWARGS_ATTR = "irprune_init_kwargs"
#: set on wrappers (e.g. the compactor GraphModule) to the class they were made from
SOURCE_CLASS_ATTR = "irprune_source_class"
_PLAIN = (int, float, str, bool, type(None))


def _plain(value: Any) -> bool:
    """Storable with ``torch.load(weights_only=True)``: plain scalars and containers of them."""
    if isinstance(value, _PLAIN):
        return True
    if isinstance(value, (list, tuple)):
        return all(_plain(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _plain(v) for k, v in value.items())
    return False


def _class_path(model: nn.Module) -> str:
    source = getattr(model, SOURCE_CLASS_ATTR, None)
    if isinstance(source, str):
        return source
    cls = type(model)
    return f"{cls.__module__}:{cls.__qualname__}"


def read_init_kwargs(model: nn.Module) -> dict[str, Any]:
    """Constructor arguments of ``model``'s class read back from same-named plain attributes."""
    return _read_back(model, type(model))


def _read_back(model: nn.Module, cls: type) -> dict[str, Any]:
    try:
        params = inspect.signature(cls.__init__).parameters
    except (TypeError, ValueError):
        return {}
    out = {}
    for name, p in list(params.items())[1:]:
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        if name in vars(model) and _plain(vars(model)[name]):
            v = vars(model)[name]
            out[name] = list(v) if isinstance(v, tuple) else v
    return out


def _import(path: str) -> Any:
    module_name, _, qualname = path.partition(":")
    if not module_name or not qualname:
        raise ValueError(f"class path must be 'package.module:QualName', got {path!r}")
    try:
        obj: Any = importlib.import_module(module_name)
        for part in qualname.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"cannot import the model class {path!r} ({type(exc).__name__}: {exc}); make its "
                         "module importable (PYTHONPATH) or pass load_pruned(path, factory=...)") from exc
    return obj


def class_spec(model: nn.Module, init_kwargs: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """``{'class': 'module:QualName', 'kwargs': {...}}`` to rebuild ``model``'s architecture."""
    path = _class_path(model)
    if "<locals>" in path:
        raise ValueError(f"{path!r} is defined inside a function and cannot be imported at load time; "
                         "define it at module level or pass load_pruned(path, factory=...) when loading")
    if init_kwargs is None:
        init_kwargs = getattr(model, INIT_KWARGS_ATTR, None)
    if init_kwargs is None:
        init_kwargs = _read_back(model, _import(path))
    if not isinstance(init_kwargs, Mapping) or not _plain(dict(init_kwargs)):
        raise ValueError(f"constructor arguments of {path} must be a dict of plain values (numbers, strings, "
                         f"lists), got {init_kwargs!r}; pass load_pruned(path, factory=...) instead")
    return {"class": path, "kwargs": dict(init_kwargs)}


def build_from_class_spec(spec: Mapping[str, Any], factory: Callable[[], nn.Module] | None = None) -> nn.Module:
    """A fresh model from a :func:`class_spec` (or from ``factory()`` when given)."""
    if factory is not None:
        if not callable(factory):
            raise TypeError(f"factory must be a callable returning an nn.Module, got {type(factory).__name__}")
        model = factory()
        if not isinstance(model, nn.Module):
            raise TypeError(f"factory() must return an nn.Module, got {type(model).__name__}")
        return model
    cls = _import(str(spec["class"]))
    kwargs = dict(spec.get("kwargs") or {})
    try:
        return cls(**kwargs)
    except Exception as exc:  # noqa: BLE001 - any constructor failure: say how to fix it
        raise ValueError(f"cannot rebuild {spec['class']} with the recorded arguments {kwargs} "
                         f"({type(exc).__name__}: {exc}); save with save_pruned(..., init_kwargs={{...}}) "
                         "or load with load_pruned(path, factory=lambda: YourNet(...))") from exc
