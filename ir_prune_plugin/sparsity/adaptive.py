"""Adaptive per-patch inference over several restorers of different cost (the SLS paper's idea).

The input is cut into overlapping tiles; each tile gets a cheap difficulty score (mean squared
Laplacian of its luminance); a multiple-choice knapsack (``scipy.optimize.milp``, HiGHS) picks
one model per tile maximising ``sum difficulty * quality[model]`` under a total MACs budget;
outputs are blended by the shared tiling (``ir_prune_plugin.tiling``: linear ramps across the
overlaps) so seams do not show.
"""
from __future__ import annotations

import logging
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..macs import layer_macs
from ..tiling import TileOptions, run_tiled, tile_grid
from ..vocabulary import PLAN_ATTR

log = logging.getLogger(__name__)


def macs_per_pixel(model: nn.Module, size: int = 32, in_ch: int = 3) -> float:
    """Weight MACs per input pixel (N:M layers counted at N/M, from ``irprune_nm_plan``)."""
    plan = getattr(model, PLAN_ATTR, {})
    macs = layer_macs(model, torch.zeros(1, in_ch, size, size, device=next(model.parameters()).device))
    return sum(v * (plan[n][0] / plan[n][1] if n in plan else 1.0) for n, v in macs.items()) / size ** 2


def laplacian_difficulty(patch: torch.Tensor) -> float:
    """Mean squared Laplacian of the patch's luminance: high on texture/edges, ~0 on flat areas."""
    y = patch.mean(dim=-3, keepdim=True) if patch.shape[-3] > 1 else patch
    k = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]], dtype=y.dtype, device=y.device)
    lap = F.conv2d(y.reshape(-1, 1, *y.shape[-2:]), k.view(1, 1, 3, 3))
    return float(lap.pow(2).mean())


class AdaptiveRestorer(nn.Module):
    """Restore an image tile by tile, choosing per tile among ``models`` under a MACs budget.

    ``macs_per_pixel[k]`` is model k's cost per input pixel (see :func:`macs_per_pixel`);
    ``quality[k]`` its value (e.g. validation PSNR; default: cost rank scaled to [0, 1]).
    """

    def __init__(self, models: Sequence[nn.Module], macs_per_pixel: Sequence[float], *, scale: int = 1,
                 quality: Sequence[float] | None = None, tiles: TileOptions = TileOptions(),
                 difficulty: Callable[[torch.Tensor], float] = laplacian_difficulty) -> None:
        super().__init__()
        if not models or len(models) != len(macs_per_pixel):
            raise ValueError(f"need one macs_per_pixel per model, got {len(models)} models and "
                             f"{len(macs_per_pixel)} costs")
        if any(not c > 0 for c in macs_per_pixel):
            raise ValueError(f"macs_per_pixel must all be > 0, got {list(macs_per_pixel)}")
        if quality is not None and len(quality) != len(models):
            raise ValueError(f"need one quality per model, got {len(quality)} for {len(models)} models")
        order = np.argsort(macs_per_pixel, kind="stable")
        default_q = np.empty(len(models))
        default_q[order] = np.linspace(0, 1, len(models)) if len(models) > 1 else [1.0]
        self.models = nn.ModuleList(models)
        self.costs = [float(c) for c in macs_per_pixel]
        self.quality = [float(q) for q in (quality if quality is not None else default_q)]
        self.scale, self.tiles, self.difficulty = int(scale), tiles, difficulty
        self.last_choice: list[int] = []
        self.last_macs = 0.0

    def allocate(self, difficulties: Sequence[float], areas: Sequence[int], macs_budget: float) -> list[int]:
        """Model index per tile: max sum d_i * quality_k s.t. sum cost_k * area_i <= budget (MILP)."""
        from scipy.optimize import Bounds, LinearConstraint, milp  # scipy: heavy, needed only here

        n, k = len(difficulties), len(self.models)
        d, a = np.asarray(difficulties, float), np.asarray(areas, float)
        cost = np.outer(a, self.costs)
        cheapest = int(np.argmin(self.costs))
        if cost[:, cheapest].sum() > macs_budget:
            log.warning("MACs budget %.3g below the cheapest model on every tile (%.3g): using it everywhere",
                        macs_budget, cost[:, cheapest].sum())
            return [cheapest] * n
        gain = -(np.outer(d / (d.max() + 1e-12), self.quality) + 1e-6 * np.asarray(self.quality))
        one_each = np.kron(np.eye(n), np.ones(k))
        cons = [LinearConstraint(one_each, 1, 1), LinearConstraint(cost.reshape(1, -1), -np.inf, macs_budget)]
        res = milp(gain.ravel(), constraints=cons, integrality=np.ones(n * k), bounds=Bounds(0, 1))
        if res.x is None:
            raise RuntimeError(f"tile allocation failed: {res.message}")
        return [int(i) for i in res.x.reshape(n, k).argmax(1)]

    @torch.no_grad()
    def forward(self, x: torch.Tensor, macs_per_pixel_budget: float | None = None) -> torch.Tensor:
        """Restore ``x`` (1, C, H, W); budget in MACs per input pixel (None: best model everywhere)."""
        if x.dim() != 4 or x.shape[0] != 1:
            raise ValueError(f"AdaptiveRestorer expects one image (1, C, H, W), got {tuple(x.shape)}")
        boxes = tile_grid(*x.shape[-2:], self.tiles)
        patches = [x[..., b.y:b.y + b.h, b.x:b.x + b.w] for b in boxes]
        areas = [b.h * b.w for b in boxes]
        if macs_per_pixel_budget is None:
            choice = [int(np.argmax(self.quality))] * len(boxes)
        else:
            choice = self.allocate([self.difficulty(p) for p in patches], areas,
                                   macs_per_pixel_budget * x.shape[-2] * x.shape[-1])
        out = run_tiled(x, self.tiles, lambda i, p: self.models[choice[i]](p), scale=self.scale)
        self.last_choice = choice
        self.last_macs = float(sum(self.costs[k] * a for k, a in zip(choice, areas)))
        return out


def compare_adaptive(restorer: AdaptiveRestorer, images: Sequence[tuple[torch.Tensor, torch.Tensor]],
                     budgets: Sequence[float] | None = None, crop_border: int = 0) -> list[dict]:
    """PSNR vs MACs/pixel for each single model (same tiling) and the adaptive mix at each budget.

    ``budgets=None``: the midpoints between consecutive single models' measured MACs/pixel.
    """
    from skimage.metrics import peak_signal_noise_ratio  # skimage: heavy, needed only here

    def psnr(out: torch.Tensor, gt: torch.Tensor) -> float:
        a = out.clamp(0, 1)[0].permute(1, 2, 0).cpu().numpy().astype(np.float64)
        b = gt[0].permute(1, 2, 0).cpu().numpy().astype(np.float64)
        if crop_border:
            a, b = a[crop_border:-crop_border, crop_border:-crop_border], b[crop_border:-crop_border, crop_border:-crop_border]
        return float(peak_signal_noise_ratio(b, a, data_range=1.0))

    def run(label: str, budget: float | None, force: int | None = None) -> dict:
        ps, macs, pix = [], 0.0, 0
        saved_q = restorer.quality
        if force is not None:
            restorer.quality = [1.0 if i == force else 0.0 for i in range(len(saved_q))]
        try:
            for lq, gt in images:
                ps.append(psnr(restorer(lq, budget), gt))
                macs += restorer.last_macs
                pix += lq.shape[-1] * lq.shape[-2]
        finally:
            restorer.quality = saved_q
        return {"method": label, "psnr": float(np.mean(ps)), "macs_per_pixel": macs / pix}

    rows = [run(f"model{k}", None, force=k) for k in range(len(restorer.models))]
    if budgets is None:
        used = sorted(r["macs_per_pixel"] for r in rows)
        budgets = [(a + b) / 2 for a, b in zip(used, used[1:])]
    rows += [run(f"adaptive@{b:.4g}", b) for b in budgets]
    return rows
