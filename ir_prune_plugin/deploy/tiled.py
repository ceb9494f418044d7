"""Tiled inference sized to a memory budget: the largest tile whose exact estimated peak fits.

``TiledRestorer(model, memory_budget)`` measures the model's receptive-field radius (input
gradient of one output pixel, :func:`receptive_radius`), uses it as the context margin of the
shared tiling (:mod:`ir_prune_plugin.tiling`), and picks by bisection the largest tile whose
``estimate_peak_memory`` plus the full-size output and the blending window fits the budget.
Each tile runs as the exported graph with every value freed after its last use, which is what
the estimate models, so the real peak is the estimate (the module's eager forward keeps Python
locals alive and would exceed it; ``scheduled=False`` runs it anyway).
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..budgets import BudgetLike, parse_memory_budget
from ..memory import estimate_peak_memory
from ..memory.measure import run_scheduled
from ..memory.trace import export_graph
from ..tiling import TileOptions, run_tiled, tile_grid
from ..vocabulary import format_bytes

__all__ = ["TilePlan", "TiledRestorer", "WithTiles", "receptive_radius"]

log = logging.getLogger(__name__)


def receptive_radius(model: nn.Module, probe: torch.Tensor, tolerance: float = 1e-3) -> int:
    """Smallest radius r (input pixels) beyond which the probe's input can move the centre output
    pixel by at most ``tolerance`` (to first order, per unit change of every pixel out there).

    Measured from the input gradient of each output channel at the probe's centre (the summed
    absolute gradient outside the (2r+1)^2 square, the worst channel), not derived from the layer
    list: it is the *effective* receptive field of this model on this kind of input. Raises
    ``ValueError`` when the probe is too small to contain it.
    """
    if not 0 < tolerance < 1:
        raise ValueError(f"tolerance must lie in (0, 1), got {tolerance!r}")
    if probe.dim() != 4 or probe.shape[0] != 1:
        raise ValueError(f"probe must be one image (1, C, H, W), got {tuple(probe.shape)}")
    was_training = model.training
    model.eval()
    x = probe.detach().clone().requires_grad_(True)
    cy, cx = x.shape[-2] // 2, x.shape[-1] // 2
    iy = torch.arange(x.shape[-2]).sub(cy).abs()[:, None]
    ix = torch.arange(x.shape[-1]).sub(cx).abs()[None, :]
    dist = torch.maximum(iy, ix).flatten()  # Chebyshev distance to the centre
    outside = None
    try:
        with torch.enable_grad():
            y = model(x)
            s = y.shape[-1] // x.shape[-1]
            for c in range(y.shape[1]):
                (g,) = torch.autograd.grad(y[0, c, cy * s, cx * s], x, retain_graph=c + 1 < y.shape[1])
                mass = torch.bincount(dist, weights=g.detach().abs().sum(dim=(0, 1)).double().flatten())
                tail = mass.flip(0).cumsum(0).flip(0) - mass  # gradient mass strictly beyond each radius
                outside = tail if outside is None else torch.maximum(outside, tail)
    finally:
        model.train(was_training)
    radius = int((outside <= tolerance).nonzero()[0])
    reach = min(cy, cx, x.shape[-2] - 1 - cy, x.shape[-1] - 1 - cx)
    if radius >= reach:
        raise ValueError(f"the receptive field ({radius} px at tolerance {tolerance:g}) reaches the probe's "
                         f"border ({tuple(probe.shape[-2:])}); pass a larger probe")
    return radius


@dataclass(frozen=True)
class TilePlan:
    """The chosen tiling for one image size and the memory it needs (bytes, by estimate)."""

    image_hw: tuple[int, int]
    tiles: TileOptions
    n_tiles: int
    tile_peak: int       # estimated peak of one full tile's forward (its input and output included)
    fixed: int           # the full-size output plus the blending windows
    budget: int

    @property
    def total(self) -> int:
        """Estimated peak of the whole tiled run (the caller's input image excluded)."""
        return self.tile_peak + self.fixed

    @property
    def overhead(self) -> float:
        """Pixels computed / image pixels - 1: the extra work the overlaps cost."""
        h, w = self.image_hw
        area = sum(b.h * b.w for b in tile_grid(h, w, self.tiles))
        return area / (h * w) - 1.0

    def summary(self) -> str:
        """One line for logs and reports."""
        t = self.tiles
        return (f"{self.n_tiles} tiles of {t.tile}px (overlap {t.overlap}, margin {t.margin}) for "
                f"{self.image_hw[1]}x{self.image_hw[0]}: {format_bytes(self.total)} of {format_bytes(self.budget)}, "
                f"overlap overhead {self.overhead:.1%}")


class TiledRestorer(nn.Module):
    """Restore images tile by tile within ``memory_budget`` (bytes, ``"30MB"``, or a ratio of the
    model's own untiled peak at ``image_size``).

    ``margin`` (context pixels per inner tile edge) defaults to the measured
    :func:`receptive_radius` on ``probe`` (default: a seeded 1 x ``in_channels`` x 256 x 256
    uniform image); ``blend`` is the ramp width beyond it; tile starts are multiples of ``align``
    (the network's total downsampling, so tiles see the pooling grid the whole image sees).
    """

    def __init__(self, model: nn.Module, memory_budget: BudgetLike, *, image_size: tuple[int, int] = (1080, 2048),
                 in_channels: int = 3, margin: int | None = None, blend: int = 8, align: int = 16,
                 probe: torch.Tensor | None = None, tolerance: float = 1e-3, scheduled: bool = True) -> None:
        super().__init__()
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
        for name, v, low in (("blend", blend, 0), ("align", align, 1), ("in_channels", in_channels, 1)):
            if isinstance(v, bool) or not isinstance(v, int) or v < low:
                raise ValueError(f"{name} must be an int >= {low}, got {v!r}")
        self.model = model.eval()
        self.in_channels, self.blend, self.align, self.scheduled = in_channels, blend, align, scheduled
        self.image_size = tuple(int(v) for v in image_size)
        if margin is None:
            if probe is None:
                gen = torch.Generator().manual_seed(0)
                probe = torch.rand(1, in_channels, 256, 256, generator=gen)  # 256: room for U-Net fields
            margin = receptive_radius(model, probe, tolerance)
            log.info("measured receptive-field margin: %d px (tolerance %g)", margin, tolerance)
        if isinstance(margin, bool) or not isinstance(margin, int) or margin < 0:
            raise ValueError(f"margin must be an int >= 0, got {margin!r}")
        self.margin = margin
        self._peaks: dict[tuple[int, int], int] = {}
        self._plans: dict[tuple[int, int], TilePlan] = {}
        self._graphs: dict[tuple[int, ...], Any] = {}
        self._scale, self._out_ch = self._probe_shape()
        if isinstance(memory_budget, float) or (isinstance(memory_budget, str) and "%" in memory_budget):
            self.budget = parse_memory_budget(memory_budget, self.tile_peak(*self.image_size))
        else:
            self.budget = parse_memory_budget(memory_budget, 2 ** 62)
        self.plan(*self.image_size)  # fail now, not at the first image, when the budget is out of reach

    def _probe_shape(self) -> tuple[int, int]:
        """Output scale and channels from one forward on a small aligned input."""
        n = 2 * self.align
        p = next(self.model.parameters(), None)
        dtype, device = (p.dtype, p.device) if p is not None else (torch.float32, None)
        with torch.no_grad():
            y = self.model(torch.zeros(1, self.in_channels, n, n, dtype=dtype, device=device))
        self._elem = y.element_size()
        return y.shape[-1] // n, y.shape[1]

    def tile_peak(self, h: int, w: int) -> int:
        """Estimated peak bytes of the model's forward on one h x w tile (cached)."""
        if (h, w) not in self._peaks:
            self._peaks[(h, w)] = estimate_peak_memory(self.model, (1, self.in_channels, h, w)).peak_bytes
        return self._peaks[(h, w)]

    def plan(self, h: int, w: int) -> TilePlan:
        """The largest aligned tile for an h x w image whose estimated total fits the budget."""
        if (h, w) in self._plans:
            return self._plans[(h, w)]
        s, elem = self._scale, self._elem
        out_bytes = self._out_ch * h * s * w * s * elem

        def total(k: int) -> tuple[int, int, int]:
            th, tw = min(k * self.align, h), min(k * self.align, w)
            # + the tile's 2-D window, the 1-D windows (<= 4 kinds per axis, cached) and the window sums
            blending = (th * tw * s * s + 8 * (th + tw) * s + (h + w) * s) * elem
            return self.tile_peak(th, tw) + out_bytes + blending, th, tw

        overlap = 2 * self.margin + self.blend
        lo = -(-(overlap + self.align) // self.align)  # the smallest tile that still advances by align
        hi = max(math.ceil(h / self.align), math.ceil(w / self.align))
        lo = min(lo, hi)
        if total(lo)[0] > self.budget:
            raise ValueError(f"memory budget {format_bytes(self.budget)} is below the smallest tiling of a "
                             f"{w}x{h} image: {lo * self.align}px tiles (margin {self.margin} + blend {self.blend}) "
                             f"need {format_bytes(total(lo)[0])}, the output alone {format_bytes(out_bytes)}")
        while lo < hi:  # the estimate grows with the tile: bisect on multiples of align
            mid = (lo + hi + 1) // 2
            lo, hi = (mid, hi) if total(mid)[0] <= self.budget else (lo, mid - 1)
        tot, th, tw = total(lo)
        tile = lo * self.align
        if tile >= max(h, w):  # the whole image fits: one untiled forward, no output buffer of ours
            opts, fixed = TileOptions(tile=tile, overlap=0, align=self.align), 0
        else:
            opts = TileOptions(tile=tile, overlap=overlap, margin=self.margin, align=self.align)
            fixed = tot - self.tile_peak(th, tw)
        plan = TilePlan(image_hw=(h, w), tiles=opts, n_tiles=len(tile_grid(h, w, opts)),
                        tile_peak=self.tile_peak(th, tw), fixed=fixed, budget=self.budget)
        log.info("tiling plan: %s", plan.summary())
        if self.scheduled:  # export each distinct tile shape now, not inside the measured forward
            for b in {(b.h, b.w) for b in tile_grid(h, w, opts)}:
                self._graph((1, self.in_channels, *b))
        self._plans[(h, w)] = plan
        return plan

    def _graph(self, shape: tuple[int, ...]) -> Any:
        if shape not in self._graphs:
            p = next(self.model.parameters(), None)
            example = torch.zeros(shape, dtype=p.dtype if p is not None else torch.float32,
                                  device=p.device if p is not None else None)
            self._graphs[shape] = export_graph(self.model, (example,))
        return self._graphs[shape]

    def _run_tile(self, tile: torch.Tensor) -> torch.Tensor:
        if not self.scheduled:
            return self.model(tile)
        out = run_scheduled(self._graph(tuple(tile.shape)), [tile])
        return out[0] if isinstance(out, (tuple, list)) else out

    @torch.no_grad()
    def forward(self, x: torch.Tensor, tiles: TileOptions | None = None) -> torch.Tensor:
        """Restore one image (1, C, H, W) with the plan for its size, or with explicit ``tiles``
        (e.g. the plan of a larger image, to check that tiling on images of another size)."""
        if x.dim() != 4 or x.shape[0] != 1 or x.shape[1] != self.in_channels:
            raise ValueError(f"TiledRestorer expects one image (1, {self.in_channels}, H, W), got {tuple(x.shape)}")
        if tiles is None:
            tiles = self.plan(*x.shape[-2:]).tiles
        if len(tile_grid(*x.shape[-2:], tiles)) == 1:
            return self._run_tile(x)
        return run_tiled(x, tiles, lambda _i, tile: self._run_tile(tile), scale=self._scale)


class WithTiles(nn.Module):
    """A :class:`TiledRestorer` that restores every image with the same ``tiles`` (e.g. a 2048x1080
    plan's tiles on smaller photos, so that their PSNR shows that plan's seams); for ``evaluate``."""

    def __init__(self, restorer: TiledRestorer, tiles: TileOptions) -> None:
        super().__init__()
        self.restorer, self.tiles = restorer, tiles

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Restore one image (1, C, H, W) with the fixed tiles."""
        return self.restorer(x, self.tiles)
