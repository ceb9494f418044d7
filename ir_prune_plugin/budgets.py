"""The one place user budgets are parsed and resolved, with one set of error messages.

* A **memory budget** (MOSP) is a ratio of the dense peak (``0.5``, ``"0.5"``, ``"50%"``) or a size
  (``"384MB"``, ``"1.5GiB"``, int bytes ``40000000`` or the string ``"40000000"``). Units follow
  SI/IEC strictly: ``KB/MB/GB/TB`` are powers of 1000, ``KiB/MiB/GiB/TiB`` powers of 1024, ``B``
  or no unit is bytes; case-insensitive. A unitless decimal (``"0.5"``) is a ratio like the float,
  a unitless integer (``"40000000"``) bytes like the int.
* A **MACs budget** (SLS, N:M) is the ratio of the prunable layers' dense MACs to keep, at least
  ``1/M`` (an N:M plan keeps one weight per group). The pruners take the float (``0.25``); the text
  entry points (CLI, YAML, NNI ``budget``) also read ``"0.25"`` and ``"25%"`` through
  :func:`parse_macs_budget`.

The Python API, the CLI (strings), BasicSR YAML (numbers or strings) and NNI ``config_list``
entries (``budget`` or ``sparse_ratio = 1 - budget``) all go through these functions.
"""
from __future__ import annotations

import math
import re
from numbers import Integral, Real
from typing import Any, Union

from .vocabulary import format_bytes

__all__ = ["BudgetLike", "check_memory_budget", "check_ratio", "parse_macs_budget", "parse_memory_budget",
           "parse_size"]

BudgetLike = Union[int, float, str]

_UNITS = {
    "": 1, "b": 1,
    "kb": 10 ** 3, "mb": 10 ** 6, "gb": 10 ** 9, "tb": 10 ** 12,
    "k": 10 ** 3, "m": 10 ** 6, "g": 10 ** 9, "t": 10 ** 12,
    "kib": 2 ** 10, "mib": 2 ** 20, "gib": 2 ** 30, "tib": 2 ** 40,
}
_SIZE_RE = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*([a-zA-Z]*)\s*$")
_PERCENT_RE = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*%\s*$")
_DECIMAL_RE = re.compile(r"^\s*[-+]?(?:[0-9]*\.[0-9]+|[0-9]+\.)(?:[eE][-+]?[0-9]+)?\s*$")  # "0.5": a float


def parse_size(text: str) -> int:
    """Parse a size string such as ``"384MB"``, ``"1.5GiB"`` or ``"4096"`` into bytes."""
    if not isinstance(text, str):
        raise TypeError(f"size must be a str like '384MB', got {type(text).__name__} {text!r}")
    match = _SIZE_RE.match(text)
    if match is None or match.group(2).lower() not in _UNITS:
        raise ValueError(
            f"cannot parse size {text!r}; use a number with an optional unit "
            f"(B, KB, MB, GB, KiB, MiB, GiB), e.g. '384MB' or '1.5GiB'")
    value = float(match.group(1)) * _UNITS[match.group(2).lower()]
    if not math.isfinite(value) or value < 1:
        raise ValueError(f"size {text!r} is below one byte; give a positive size such as '384MB'")
    return int(round(value))


def parse_memory_budget(budget: BudgetLike, reference_bytes: int) -> int:
    """Turn ``budget`` into bytes: a ratio ``0 < r < 1`` or ``"r%"`` of ``reference_bytes``, or a size.

    Raises ``ValueError`` for a budget <= 0 or >= ``reference_bytes`` (nothing to prune) and
    ``TypeError`` for anything that is not an int, float or str.
    """
    if isinstance(reference_bytes, bool) or not isinstance(reference_bytes, Integral) \
            or reference_bytes <= 0:
        raise ValueError(f"reference_bytes must be a positive int, got {reference_bytes!r}")
    if isinstance(budget, bool):
        raise TypeError(f"memory budget must be a ratio, a size str or int bytes, got bool {budget!r}")
    if isinstance(budget, Integral):
        nbytes = int(budget)
        if nbytes <= 0:
            raise ValueError(f"memory budget must be positive, got {budget!r} bytes")
    elif isinstance(budget, Real):
        ratio = float(budget)
        if not math.isfinite(ratio) or not 0.0 < ratio < 1.0:
            raise ValueError(
                f"a float memory budget is a ratio of the reference peak and must lie in (0, 1), "
                f"got {budget!r}; pass int bytes or a size string like '384MB' for absolute budgets")
        nbytes = int(math.floor(ratio * reference_bytes))
    elif isinstance(budget, str):
        percent = _PERCENT_RE.match(budget)
        if _DECIMAL_RE.match(budget):  # a unitless decimal means what the float means (a ratio)
            return parse_memory_budget(float(budget), reference_bytes)
        if percent is not None:
            return parse_memory_budget(float(percent.group(1)) / 100.0, reference_bytes) \
                if 0 < float(percent.group(1)) < 100 else _raise_percent(budget)
        nbytes = parse_size(budget)
    else:
        raise TypeError(
            f"memory budget must be a ratio in (0, 1), a size str like '384MB' or int bytes, "
            f"got {type(budget).__name__} {budget!r}")
    if nbytes >= reference_bytes:
        raise ValueError(
            f"memory budget {budget!r} = {format_bytes(nbytes)} is not below the current peak "
            f"{format_bytes(reference_bytes)}; nothing to prune (use a ratio in (0, 1) or a smaller size)")
    if nbytes <= 0:
        raise ValueError(f"memory budget {budget!r} rounds to {nbytes} bytes; it must be positive")
    return nbytes


def _raise_percent(text: str) -> int:
    raise ValueError(f"a percentage budget must lie strictly between 0% and 100%, got {text!r}")


def check_memory_budget(budget: Any, what: str = "memory budget") -> BudgetLike:
    """Check a memory budget's type and format before the dense peak is known; returns it unchanged."""
    try:
        parse_memory_budget(budget, 2 ** 62)
    except (TypeError, ValueError) as exc:
        raise type(exc)(f"{what} {budget!r} is invalid: {exc}") from None
    return budget


def check_ratio(name: str, value: Any) -> float:
    """A ratio strictly inside (0, 1), else ``TypeError``/``ValueError`` naming it."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a float in (0, 1), got {value!r} ({type(value).__name__})")
    if not 0.0 < float(value) < 1.0:
        raise ValueError(f"{name} must be a ratio in (0, 1), got {value} (e.g. 0.25 keeps a quarter)")
    return float(value)


def parse_macs_budget(budget: Any, M: int | None = None, *, name: str = "macs_budget") -> float:
    """The kept share of the dense MACs as a float in (0, 1): ``0.25``, ``"0.25"`` or ``"25%"``.

    With ``M``, the budget must also be at least ``1/M``, the least any N:M plan keeps.
    """
    if isinstance(budget, str):
        percent = _PERCENT_RE.match(budget)
        try:
            budget = float(percent.group(1)) / 100.0 if percent is not None else float(budget)
        except ValueError:
            raise ValueError(f"{name} must be a ratio in (0, 1) such as 0.25 or '25%', got {budget!r}") from None
    ratio = check_ratio(name, budget)
    if M is not None and ratio < 1.0 / M:
        raise ValueError(f"{name}={ratio} is below 1/M={1 / M:.4f}, the least any N:{M} plan keeps; "
                         "use a larger budget or a larger M")
    return ratio
