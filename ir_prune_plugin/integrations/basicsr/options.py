"""The ``pruning:`` block of a BasicSR YAML: parsing and start-up validation.

Example (see ``basicsr_configs/README.md``)::

    pruning:
      method: mosp            # mosp | sls
      budget: 0.5             # mosp: ratio of the dense peak memory (0 < r < 1) or a size ("384MB", bytes)
                              # sls:  ratio of the prunable layers' dense MACs (0 < r < 1)
      start_iter: 0           # dense training iterations before pruning (0: prune pretrain_network_g at once)
      input_size: [64, 64]    # H, W of the LQ example input used to trace / count MACs
      finetune_iters: 10      # mosp: training iterations between two outer steps
      eval_batches: 2         # mosp: held-out training batches scoring sensitivities
      options: {}             # fields of MOSPOptions / SLSOptions (plus M for sls, e.g. M: 16,
                              #   search_steps: 500, schedule: {start: 1, end: 100})

Every error is a ``ValueError``/``TypeError`` naming the offending key (``pruning.budget`` ...),
raised before any training starts. Budgets are parsed by :mod:`ir_prune_plugin.budgets`, as in the
Python API, the CLI and NNI; ``options`` become the pruners' option dataclasses here.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Mapping

from ...budgets import check_memory_budget, parse_macs_budget
from ...channels.mosp import MOSPOptions
from ...sparsity import AnnealingSchedule, SLSOptions

__all__ = ["METHODS", "PruningConfig", "mosp_options", "parse_pruning_block", "pruning_config", "sls_options"]

METHODS = ("mosp", "sls")
_KEYS = {"method", "budget", "start_iter", "input_size", "finetune_iters", "eval_batches",
         "options"}


@dataclass(frozen=True)
class PruningConfig:
    """A validated ``pruning:`` block."""

    method: str
    budget: float | int | str
    start_iter: int = 0
    input_size: tuple[int, int] = (64, 64)
    finetune_iters: int = 10
    eval_batches: int = 2
    options: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Plain-container form (stored in checkpoints, safe for ``weights_only`` loading)."""
        d = dataclasses.asdict(self)
        d["input_size"] = list(self.input_size)
        d["options"] = dict(self.options)
        return d


def _int(block: Mapping[str, Any], key: str, default: int, minimum: int) -> int:
    value = block.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"pruning.{key} must be an int >= {minimum}, got {value!r}")
    if value < minimum:
        raise ValueError(f"pruning.{key} must be >= {minimum}, got {value!r}")
    return value


def _budget(method: str, value: Any) -> float | int | str:
    if value is None:
        what = ("a ratio of the dense peak memory in (0, 1) or a size such as '384MB'"
                if method == "mosp" else "a ratio of the dense MACs in (0, 1)")
        raise ValueError(f"pruning.budget is missing: give {what}")
    if isinstance(value, bool):
        raise TypeError(f"pruning.budget must be a number or a size string, got {value!r}")
    if method == "sls":
        return parse_macs_budget(value, name="pruning.budget for sls")
    # format and sign only: the dense peak is compared once the network is built
    return check_memory_budget(value, "pruning.budget for mosp")


def _options(method: str, options: Any) -> dict[str, Any]:
    if options is None:
        return {}
    if not isinstance(options, Mapping):
        raise TypeError(f"pruning.options must be a mapping of {method} options, got {options!r}")
    out = {}
    for k, v in options.items():
        out[str(k)] = tuple(tuple(x) if isinstance(x, list) else x for x in v) if isinstance(v, list) else v
    return out


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
    if isinstance(value, Mapping):
        return AnnealingSchedule(**value)
    raise TypeError(f"expected a mapping like {{start: 1.0, end: 100.0}}, got {value!r}")


def _tuple(value: Any) -> Any:
    return tuple(value) if isinstance(value, (list, tuple)) else value


def sls_options(cfg: PruningConfig) -> tuple[int, Any]:
    """``(M, SLSOptions)`` from the block; ``M`` defaults to 32 as in the paper."""
    opts = dict(cfg.options)
    M = opts.pop("M", 32)
    if isinstance(M, bool) or not isinstance(M, int) or M < 2:
        raise ValueError(f"pruning.options.M must be an int >= 2 (e.g. 4, 8, 16, 32), got {M!r}")
    try:
        parse_macs_budget(cfg.budget, M, name="pruning.budget")
    except ValueError as exc:
        raise ValueError(f"{exc} (pruning.options.M={M})") from None
    return M, _build(SLSOptions, opts, {"schedule": _schedule, "ignored_layers": _tuple})


def mosp_options(cfg: PruningConfig) -> Any:
    """``MOSPOptions`` from the block."""
    conv = {k: _tuple for k in ("memory_input_size", "ignored_layers", "sensitivity_points")}
    return _build(MOSPOptions, dict(cfg.options), conv)


def check_method_options(cfg: PruningConfig) -> None:
    """Raise a keyed ValueError/TypeError if ``pruning.options`` does not fit the method."""
    if cfg.method == "sls":
        sls_options(cfg)
    else:
        mosp_options(cfg)


def parse_pruning_block(block: Any) -> PruningConfig:
    """Validate a ``pruning:`` mapping; errors name the bad key and what would work."""
    if not isinstance(block, Mapping):
        raise TypeError(f"pruning must be a mapping with at least method and budget, got {block!r}")
    unknown = sorted(set(block) - _KEYS)
    if unknown:
        raise ValueError(f"unknown key(s) in pruning: {', '.join('pruning.' + str(k) for k in unknown)}; "
                         f"known keys: {', '.join(sorted(_KEYS))}")
    method = block.get("method")
    if not isinstance(method, str) or method.lower() not in METHODS:
        raise ValueError(f"pruning.method {method!r} is unknown; use one of {', '.join(METHODS)}")
    method = method.lower()
    budget = _budget(method, block.get("budget"))
    size = block.get("input_size", [64, 64])
    if isinstance(size, int) and not isinstance(size, bool):
        size = [size, size]
    if (not isinstance(size, (list, tuple)) or len(size) != 2
            or not all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in size)):
        raise ValueError(f"pruning.input_size must be [H, W] of positive ints, got {size!r}")
    cfg = PruningConfig(
        method=method, budget=budget,
        start_iter=_int(block, "start_iter", 0, 0),
        input_size=(int(size[0]), int(size[1])),
        finetune_iters=_int(block, "finetune_iters", 10, 0),
        eval_batches=_int(block, "eval_batches", 2, 1),
        options=_options(method, block.get("options")))
    check_method_options(cfg)
    return cfg


def pruning_config(opt: Mapping[str, Any]) -> PruningConfig:
    """The validated ``pruning:`` block of a full BasicSR option dict (it must be present)."""
    if "pruning" not in opt:
        raise ValueError("the options have no 'pruning:' block; add one with method and budget "
                         "(see basicsr_configs/README.md) or use BasicSR's SRModel")
    return parse_pruning_block(opt["pruning"])
