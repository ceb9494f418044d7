"""Annealing schedule of the SLS MACs-regulariser coefficient: a pure function of progress."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class AnnealingSchedule:
    """Geometric ramp ``start * (end / start) ** where`` for ``where`` in [0, 1] (fvcore style).

    The reference multiplies its coefficient by 1.2 whenever compression stalls; a fixed ramp
    keeps the value a pure function of progress (reproducible, resumable) and still grows the
    pressure until the budget is met. ``where`` beyond 1 holds ``end``.
    """

    start: float = 1.0
    end: float = 100.0

    def __post_init__(self) -> None:
        for name in ("start", "end"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise TypeError(f"annealing {name} must be a number, got {v!r}")
        if not (0 < self.start < float("inf") and 0 < self.end < float("inf")):
            raise ValueError(f"annealing start/end must be > 0, got start={self.start}, end={self.end}")

    def __call__(self, where: float) -> float:
        if where < 0:
            raise ValueError(f"progress must be >= 0, got {where}")
        w = min(float(where), 1.0)
        return self.start * (self.end / self.start) ** w
