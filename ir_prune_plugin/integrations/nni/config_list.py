"""NNI ``config_list`` checks with errors that name the entry, and the Compactor's NNI setting."""
from __future__ import annotations

import difflib
import numbers
import re
from typing import Any, Iterable, Sequence

from nni.compression.base.config import select_modules_by_config
from nni.compression.base.setting import PruningSetting
from torch import nn

from ...budgets import BudgetLike, check_memory_budget, parse_macs_budget

__all__ = ["ALLOWED_KEYS", "register_compactor", "validate_config_list"]

SELECT_KEYS = ("op_types", "op_names", "op_names_re")
EXCLUDE_KEYS = ("exclude_op_types", "exclude_op_names", "exclude_op_names_re")
BUDGET_KEYS = ("sparse_ratio", "budget")
ALLOWED_KEYS = SELECT_KEYS + EXCLUDE_KEYS + BUDGET_KEYS

_COMPACTOR_SETTING = {"weight": {k: v for k, v in PruningSetting.default_setting["weight"].items()}}


def register_compactor() -> None:
    """Let NNI configs target ``Compactor`` (``op_types: ['Compactor']``); idempotent."""
    if "Compactor" not in PruningSetting.registry:
        PruningSetting.register("Compactor", _COMPACTOR_SETTING)


def _suggest(name: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(choices), n=3)
    return f"; did you mean {close}?" if close else ""


def _entry_budget(entry: dict, where: str, kind: str) -> BudgetLike:
    """The budget an entry keeps: its ``budget`` (parsed as everywhere else) or ``1 - sparse_ratio``."""
    if "budget" in entry:
        if "sparse_ratio" in entry:
            raise ValueError(f"{where} gives both sparse_ratio and budget; give one of them")
        if kind == "macs":
            return parse_macs_budget(entry["budget"], name=f"{where}['budget']")
        return check_memory_budget(entry["budget"], f"{where}['budget']")
    ratio = entry.get("sparse_ratio")
    if isinstance(ratio, bool) or not isinstance(ratio, numbers.Real):
        raise ValueError(f"{where} needs sparse_ratio, a number in (0, 1), got {ratio!r} "
                         "(or budget, the share or size to keep, as in the CLI and BasicSR YAML)")
    if not 0 < float(ratio) < 1:
        raise ValueError(f"{where} has sparse_ratio={ratio!r}; it must be in (0, 1) "
                         "(the fraction of the budgeted cost to remove)")
    return 1.0 - float(ratio)


def validate_config_list(model: nn.Module, config_list: Any, prunable: Sequence[type],
                         owner: str, kind: str = "memory") -> tuple[BudgetLike, list[str]]:
    """Check ``config_list`` for ``owner``; return (the common budget to keep, the selected module names).

    Every entry needs one of ``op_types``/``op_names``/``op_names_re``, may use the ``exclude_op_*``
    keys, and must give ``sparse_ratio`` in (0, 1) (the share to remove) or ``budget`` (what to keep,
    a ``kind`` = ``'memory'`` or ``'macs'`` budget of :mod:`ir_prune_plugin.budgets`). Unknown keys,
    names or types that match nothing, and entries selecting no prunable layer raise ``ValueError``
    naming the entry.
    """
    if not isinstance(config_list, (list, tuple)) or not config_list:
        raise TypeError(f"config_list must be a non-empty list of dicts, got {config_list!r}")
    modules = dict(model.named_modules())
    types = {type(m).__name__ for m in modules.values()}
    prunable_names = {t.__name__ for t in prunable}
    budgets: list[BudgetLike] = []
    given: list[Any] = []
    selected: list[str] = []
    for i, entry in enumerate(config_list):
        where = f"{owner} config_list[{i}]"
        if not isinstance(entry, dict):
            raise TypeError(f"{where} must be a dict, got {type(entry).__name__} {entry!r}")
        unknown = sorted(set(entry) - set(ALLOWED_KEYS))
        if unknown:
            raise ValueError(f"{where} has unknown key(s) {unknown}; allowed keys: {list(ALLOWED_KEYS)} "
                             "(N, M and the memory input size are constructor arguments)")
        if not any(k in entry for k in SELECT_KEYS):
            raise ValueError(f"{where} selects nothing: give one of {list(SELECT_KEYS)}")
        for key in SELECT_KEYS + EXCLUDE_KEYS:
            if key in entry and (not isinstance(entry[key], (list, tuple))
                                 or not all(isinstance(s, str) for s in entry[key])):
                raise TypeError(f"{where}[{key!r}] must be a list of strings, got {entry[key]!r}")
        for key in ("op_names", "exclude_op_names"):
            for name in entry.get(key, ()):
                if name not in modules:
                    raise ValueError(f"{where}[{key!r}] names {name!r}, which matches no module of the model"
                                     + _suggest(name, modules))
        wanted = entry.get("op_types", ())
        if wanted and not set(wanted) & types:  # a generic list may name absent types, but not only those
            raise ValueError(f"{where}['op_types'] {list(wanted)} matches no module of the model; "
                             f"types present: {sorted(types)}")
        for key in ("op_names_re", "exclude_op_names_re"):
            for pattern in entry.get(key, ()):
                try:
                    rx = re.compile(pattern)
                except re.error as exc:
                    raise ValueError(f"{where}[{key!r}] has an invalid regular expression {pattern!r}: {exc}") from None
                if not any(rx.match(n) for n in modules):
                    raise ValueError(f"{where}[{key!r}] pattern {pattern!r} matches no module name")
        budget = _entry_budget(entry, where, kind)
        chosen, _, _ = select_modules_by_config(model, {k: v for k, v in entry.items() if k not in BUDGET_KEYS})
        bad = sorted(n for n, m in chosen.items() if type(m).__name__ not in prunable_names)
        if bad:
            raise ValueError(f"{where} selects modules {owner} cannot prune: {bad[:5]} "
                             f"(types {sorted({type(chosen[n]).__name__ for n in bad})}); "
                             f"prunable types: {sorted(prunable_names)}")
        if not chosen:
            raise ValueError(f"{where} selects no module (after the exclude_op_* keys)")
        budgets.append(budget)
        given.append(entry["budget"] if "budget" in entry else entry["sparse_ratio"])
        selected.extend(n for n in sorted(chosen) if n not in selected)
    if len(set(budgets)) > 1:
        keys = "sparse_ratio" if all("budget" not in e for e in config_list) else "budget / sparse_ratio"
        raise ValueError(f"{owner} applies one budget to all selected layers, but config_list gives "
                         f"different {keys} values {given}; use one value")
    return budgets[0], selected
