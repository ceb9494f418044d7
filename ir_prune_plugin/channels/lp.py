"""The MOSP inner-step program: cut at least ``need`` bytes at the least predicted loss.

``min  s . d   s.t.  m . d >= need,  0 <= d <= upper,  d integer (multiples of ``step``)``
solved with scipy's HiGHS MILP (``scipy.optimize.milp``). ``d`` counts channels removed per unit,
``s`` is the fitted loss increase per removed channel, ``m`` the bytes one channel costs in the
selected memory group.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
from scipy.optimize import Bounds, LinearConstraint, milp

__all__ = ["LPResult", "solve_memory_lp", "floor_sensitivities"]


@dataclass(frozen=True)
class LPResult:
    """Channels to remove per unit, the predicted loss increase and the bytes saved."""

    removal: tuple[int, ...]
    predicted_loss: float
    bytes_saved: int
    feasible: bool


def floor_sensitivities(sens: Sequence[float], rel: float = 1e-3) -> np.ndarray:
    """Clamp sensitivities to a small positive floor.

    A measured slope <= 0 is noise or a local effect: taken literally, the LP would remove
    every channel of that unit for free. The floor keeps such units cheapest while the
    objective still prefers removing as few channels as possible.
    """
    s = np.asarray(sens, dtype=np.float64)
    if s.size == 0:
        return s
    positive = s[s > 0]
    scale = float(positive.max()) if positive.size else 1.0
    return np.maximum(s, max(rel * scale, 1e-12))


def solve_memory_lp(sens: Sequence[float], mem: Sequence[int], need: int,
                    upper: Sequence[int], step: int = 1) -> LPResult:
    """Solve the inner-step MILP; if ``need`` exceeds what ``upper`` allows, remove all of it.

    ``step`` > 1 removes channels in multiples of ``step`` (Torch-Pruning's ``round_to``).
    """
    s = np.asarray(sens, dtype=np.float64)
    m = np.asarray(mem, dtype=np.float64)
    ub = np.asarray(upper, dtype=np.int64)
    if not (s.shape == m.shape == ub.shape) or s.ndim != 1:
        raise ValueError(f"sens, mem and upper must be 1-D of one length, got shapes "
                         f"{s.shape}, {m.shape}, {ub.shape}")
    if step < 1:
        raise ValueError(f"step must be >= 1, got {step}")
    if np.any(ub < 0) or np.any(m < 0):
        raise ValueError("upper bounds and per-channel bytes must be non-negative")
    zmax = ub // step                       # variables count blocks of `step` channels
    reachable = float(np.dot(m * step, zmax))
    if need <= 0:
        z = np.zeros_like(zmax)
    elif reachable < need:
        z = zmax.copy()
    else:
        res = milp(c=s * step, integrality=np.ones_like(s),
                   bounds=Bounds(np.zeros_like(s), zmax.astype(np.float64)),
                   constraints=LinearConstraint((m * step)[None, :], lb=float(need), ub=np.inf),
                   options={"disp": False})
        if res.x is None:
            raise RuntimeError(f"HiGHS failed on the MOSP inner step: {res.message}")
        z = np.rint(res.x).astype(np.int64)
    d = z * step
    return LPResult(removal=tuple(int(v) for v in d), predicted_loss=float(np.dot(s, d)),
                    bytes_saved=int(np.dot(m, d)), feasible=reachable >= need)
