"""MOSP run history: one JSON-serialisable record per inner step, enough to replay the removals."""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["StepRecord", "MOSPHistory", "HISTORY_VERSION"]

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
    """Run header (budget, options) plus the step records, in order."""

    budget_bytes: int
    original_peak_bytes: int
    options: dict[str, Any]
    records: list[StepRecord] = field(default_factory=list)
    finished: bool = False
    final_peak_bytes: int | None = None
    version: int = HISTORY_VERSION

    def to_dict(self) -> dict[str, Any]:
        """Plain containers only (JSON-ready)."""
        out = asdict(self)
        out["records"] = [asdict(r) for r in self.records]
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "MOSPHistory":
        """Inverse of :meth:`to_dict`; rejects an unknown format version."""
        if d.get("version") != HISTORY_VERSION:
            raise ValueError(f"MOSP history version {d.get('version')!r} is not supported "
                             f"(this build reads version {HISTORY_VERSION})")
        d = dict(d)
        d["records"] = [StepRecord.from_dict(r) for r in d.get("records", [])]
        return cls(**d)

    def save(self, path: str | os.PathLike) -> None:
        """Write JSON atomically (a crash mid-write keeps the previous file)."""
        tmp = f"{os.fspath(path)}.tmp"
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(self.to_dict(), fh, indent=1)
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "MOSPHistory":
        """Read a history written by :meth:`save`."""
        with open(path, encoding="utf-8") as fh:
            return cls.from_dict(json.load(fh))

    def plan(self) -> dict[str, int]:
        """Final width per unit root after the recorded steps."""
        widths: dict[str, int] = {}
        for r in self.records:
            widths.update(r.widths)
        return widths
