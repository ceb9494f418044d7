"""Turn a ``pruning.options`` mapping into the pruners' option dataclasses (with keyed errors)."""
from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any, Mapping

if TYPE_CHECKING:
    from .options import PruningConfig


def _build(cls: type, options: Mapping[str, Any], converters: Mapping[str, Any]) -> Any:
    fields = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(options) - fields)
    if unknown:
        raise ValueError(f"unknown key(s) {', '.join('pruning.options.' + k for k in unknown)} for "
                         f"{cls.__name__}; known: {', '.join(sorted(fields))}")
    kwargs = {}
    for key, value in options.items():
        try:
            kwargs[key] = converters[key](value) if key in converters else value
        except (TypeError, ValueError) as exc:
            raise type(exc)(f"pruning.options.{key}: {exc}") from None
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise type(exc)(f"pruning.options: {exc}") from None


def _schedule(value: Any) -> Any:
    from ...sparsity import AnnealingSchedule
    if isinstance(value, Mapping):
        return AnnealingSchedule(**value)
    raise TypeError(f"expected a mapping like {{start: 1.0, end: 100.0}}, got {value!r}")


def _tuple(value: Any) -> Any:
    return tuple(value) if isinstance(value, (list, tuple)) else value


def sls_options(cfg: "PruningConfig") -> tuple[int, Any]:
    """``(M, SLSOptions)`` from the block; ``M`` defaults to 32 as in the paper."""
    from ...sparsity import SLSOptions
    opts = dict(cfg.options)
    M = opts.pop("M", 32)
    if isinstance(M, bool) or not isinstance(M, int) or M < 2:
        raise ValueError(f"pruning.options.M must be an int >= 2 (e.g. 4, 8, 16, 32), got {M!r}")
    if cfg.budget < 1.0 / M:
        raise ValueError(f"pruning.budget {cfg.budget} is below 1/M = {1 / M:.4f} (pruning.options.M={M}), "
                         "the least an N:M plan keeps")
    return M, _build(SLSOptions, opts, {"schedule": _schedule, "ignored_layers": _tuple})


def mosp_options(cfg: "PruningConfig") -> Any:
    """``MOSPOptions`` from the block."""
    from ...channels.mosp import MOSPOptions
    conv = {k: _tuple for k in ("memory_input_size", "ignored_layers", "sensitivity_points")}
    return _build(MOSPOptions, dict(cfg.options), conv)


def check_method_options(cfg: "PruningConfig") -> None:
    """Raise a keyed ValueError/TypeError if ``pruning.options`` does not fit the method."""
    if cfg.method == "sls":
        sls_options(cfg)
    else:
        mosp_options(cfg)
