"""MOSP run history: one JSON-serialisable record per inner step, enough to replay the removals."""
from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from torch import nn

from ..atomic import write_text_atomic

__all__ = ["StepRecord", "MOSPHistory", "HISTORY_VERSION", "check_history_path", "check_resume", "model_fingerprint"]

log = logging.getLogger(__name__)

HISTORY_VERSION = 1


@dataclass(frozen=True)
class StepRecord:
    """One inner step: the group it cut, what the LP decided and which channels went."""

    outer: int
    inner: int
    group_step: int
    group_layers: tuple[str, ...]
    group_bytes_before: int
    group_bytes_after: int
    peak_bytes_before: int
    need_bytes: int
    base_loss: float
    sensitivities: dict[str, float]
    bytes_per_channel: dict[str, int]
    lp_removal: dict[str, int]
    removed: dict[str, list[int]]
    widths: dict[str, int]
    seconds: float

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "StepRecord":
        """Rebuild a record from its JSON form."""
        d = dict(d)
        d["group_layers"] = tuple(d["group_layers"])
        return cls(**d)


@dataclass
class MOSPHistory:
    """Run header (budget, options) plus the step records, in order: MOSP's plan, in plain containers."""

    budget_bytes: int
    original_peak_bytes: int
    options: dict[str, Any]
    records: list[StepRecord] = field(default_factory=list)
    finished: bool = False
    final_peak_bytes: int | None = None
    version: int = HISTORY_VERSION
    model: dict[str, Any] | None = None   #: :func:`model_fingerprint` of the model it was made on
    #: compactor sites inserted before pruning and the layers kept whole (output layers included):
    #: what :func:`~ir_prune_plugin.channels.plan_apply.apply_history` needs to replay the plan
    compactor_sites: list[dict[str, Any]] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """Plain containers only (JSON-ready)."""
        out = asdict(self)
        out["records"] = [asdict(r) for r in self.records]
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "MOSPHistory":
        """Inverse of :meth:`to_dict`; rejects an unknown format version."""
        if not isinstance(d, dict):
            raise ValueError(f"a MOSP history is a JSON object, got {type(d).__name__}")
        if d.get("version") != HISTORY_VERSION:
            raise ValueError(f"MOSP history version {d.get('version')!r} is not supported "
                             f"(this build reads version {HISTORY_VERSION})")
        known = {f.name for f in fields(cls)}
        missing = sorted({"budget_bytes", "original_peak_bytes", "options"} - set(d))
        if missing or set(d) - known:
            raise ValueError(f"not a MOSP history: missing {missing}, unknown {sorted(set(d) - known)}")
        d = dict(d)
        try:
            d["records"] = [StepRecord.from_dict(r) for r in d.get("records", [])]
        except (TypeError, KeyError) as exc:
            raise ValueError(f"a MOSP history step record is malformed ({exc})") from None
        return cls(**d)

    def save(self, path: str | os.PathLike) -> None:
        """Write JSON atomically (a crash mid-write keeps the previous file)."""
        write_text_atomic(path, json.dumps(self.to_dict(), indent=1))

    @classmethod
    def load(cls, path: str | os.PathLike) -> "MOSPHistory":
        """Read a history written by :meth:`save`; ``ValueError`` naming the file if it is not one."""
        if not isinstance(path, (str, os.PathLike)):
            raise TypeError(f"history path must be a str or os.PathLike, got {type(path).__name__}")
        if not os.path.isfile(path):
            raise ValueError(f"MOSP history file {os.fspath(path)!r} does not exist")
        try:
            with open(path, encoding="utf-8") as fh:
                return cls.from_dict(json.load(fh))
        except (json.JSONDecodeError, UnicodeDecodeError, ValueError) as exc:
            raise ValueError(f"{os.fspath(path)!r} is not a MOSP history written by MOSPPruner.prune "
                             f"(history_file=...): {exc}") from None

    def plan(self) -> dict[str, int]:
        """Final width per unit root after the recorded steps."""
        widths: dict[str, int] = {}
        for r in self.records:
            widths.update(r.widths)
        return widths


def check_history_path(path: str | os.PathLike) -> str:
    """A path a history can be written to (checked before a run starts, not at its first step)."""
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"history_file must be a str or os.PathLike, got {type(path).__name__}")
    path = os.fspath(path)
    parent = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise ValueError(f"history_file {path!r} is a directory; give a file name such as 'mosp_history.json'")
    if not os.path.isdir(parent) or not os.access(parent, os.W_OK):
        raise ValueError(f"history_file {path!r}: directory {parent!r} does not exist or is not writable")
    return path


def model_fingerprint(model: nn.Module) -> dict[str, Any]:
    """What a history must be replayed onto: class, arch spec (if built by ``build_arch``) and a
    digest of every parameter/buffer name and shape."""
    shapes = sorted((k, tuple(v.shape)) for k, v in model.state_dict().items())
    digest = hashlib.sha1(repr(shapes).encode()).hexdigest()[:16]
    spec = getattr(model, "irprune_arch", None)
    return {"class": type(model).__name__, "arch": dict(spec) if isinstance(spec, dict) else None,
            "tensors": len(shapes), "shapes_sha1": digest}


def check_resume(history: MOSPHistory, model: dict[str, Any], options: dict[str, Any], budget_bytes: int,
                 *, strict: bool = True) -> None:
    """Refuse (``ValueError``) to resume ``history`` for a different model, options or budget.

    ``strict=False`` logs the differences instead. Histories without a model record (written
    before it was kept) are compared on options and budget only.
    """
    problems = []
    if history.model is not None and history.model.get("shapes_sha1") != model["shapes_sha1"]:
        problems.append(f"it was recorded on {history.model.get('class')} (arch {history.model.get('arch')}, "
                        f"{history.model.get('tensors')} tensors) but this model is {model['class']} "
                        f"(arch {model['arch']}, {model['tensors']} tensors)")
    diff = sorted(k for k in set(history.options) | set(options) if history.options.get(k) != options.get(k))
    if diff:
        problems.append("its options differ: " + ", ".join(
            f"{k}={history.options.get(k)!r} there vs {options.get(k)!r} here" for k in diff))
    if history.budget_bytes != budget_bytes:
        problems.append(f"its budget is {history.budget_bytes} bytes, this run's is {budget_bytes} bytes")
    if not problems:
        return
    text = "cannot resume this MOSP history: " + "; ".join(problems)
    if strict:
        raise ValueError(text + "; start a new run, or pass strict_resume=False to replay it anyway")
    log.warning("%s (strict_resume=False: replaying anyway)", text)
