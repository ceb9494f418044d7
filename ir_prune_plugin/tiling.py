"""Overlapping-tile inference with blended seams: one implementation for every tiled restorer.

Pure torch, bottom layer (imports nothing of this package). An image is cut into a grid of
tiles (``tile_grid``); each tile's output is weighted by a separable window that is zero within
``margin`` pixels of an inner tile edge (the context the network needs there), ramps up across
the rest of the overlap and stays 1 inside and at image borders; the sum is divided by the
window sum (``run_tiled``). Because the grid is a product of row and column starts, the window
sum is an outer product of two vectors: apart from the output itself, blending allocates only
tile-sized buffers. With ``margin`` at least the network's receptive-field radius and tile
starts on the network's stride grid (``align``), tiled output equals untiled output.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, NamedTuple

import torch

__all__ = ["Box", "TileOptions", "axis_starts", "run_tiled", "tile_grid", "tile_window"]


@dataclass(frozen=True)
class TileOptions:
    """Tile side, overlap between neighbours, context margin and start alignment (input pixels).

    ``overlap`` must leave room for the margin on both tiles plus a blend: ``overlap >= 2 * margin``
    (the blend ramp is ``overlap - 2 * margin`` pixels wide) and ``overlap < tile``.
    """

    tile: int = 48
    overlap: int = 8
    margin: int = 0
    align: int = 1

    def __post_init__(self) -> None:
        for name in ("tile", "overlap", "margin", "align"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int):
                raise TypeError(f"TileOptions.{name} must be an int, got {type(v).__name__} {v!r}")
        if self.tile <= 0 or not 0 <= self.overlap < self.tile:
            raise ValueError(f"need tile > 0 and 0 <= overlap < tile, got tile={self.tile}, overlap={self.overlap}")
        if self.margin < 0 or self.overlap < 2 * self.margin:
            raise ValueError(f"need 0 <= margin and overlap >= 2 * margin, got margin={self.margin}, "
                             f"overlap={self.overlap}")
        if self.align < 1 or self.tile % self.align:
            raise ValueError(f"tile must be a multiple of align >= 1, got tile={self.tile}, align={self.align}")
        if self.stride < self.align:
            raise ValueError(f"tile - overlap = {self.tile - self.overlap} leaves no aligned step (align="
                             f"{self.align}): use a larger tile or a smaller overlap")

    @property
    def stride(self) -> int:
        """Distance between consecutive tile starts: ``tile - overlap`` rounded down to ``align``."""
        return (self.tile - self.overlap) // self.align * self.align


class Box(NamedTuple):
    """A tile: top, left, height, width (input pixels)."""

    y: int
    x: int
    h: int
    w: int


def axis_starts(length: int, tile: int, stride: int) -> list[int]:
    """Starts along one axis: 0, stride, ... until a tile reaches ``length`` (the last may be short)."""
    starts = [0]
    while starts[-1] + tile < length:
        starts.append(starts[-1] + stride)
    return starts


def tile_grid(h: int, w: int, opts: TileOptions) -> list[Box]:
    """Row-major tiles covering an ``h`` x ``w`` image; tiles at the bottom/right may be shorter."""
    ys, xs = axis_starts(h, opts.tile, opts.stride), axis_starts(w, opts.tile, opts.stride)
    return [Box(y, x, min(opts.tile, h - y), min(opts.tile, w - x)) for y in ys for x in xs]


def tile_window(start: int, size: int, length: int, margin: int, blend: int,
                device: torch.device | None = None) -> torch.Tensor:
    """1-D weights of one tile along one axis: 0 for ``margin`` pixels at an inner edge, then a
    linear ramp over ``blend`` pixels, 1 elsewhere; no ramp at the image's own borders."""
    pos = torch.arange(size, device=device, dtype=torch.float32)  # distance to the first edge
    w = torch.ones(size, device=device)
    if start > 0:
        w = w * ((pos - margin + 1) / (blend + 1)).clamp(0, 1)
    if start + size < length:
        w = w * ((size - pos - margin) / (blend + 1)).clamp(0, 1)
    return w


def run_tiled(x: torch.Tensor, opts: TileOptions, fn: Callable[[int, torch.Tensor], torch.Tensor],
              scale: int = 1) -> torch.Tensor:
    """``fn(i, tile_i)`` on every tile of ``x`` (1, C, H, W), blended into one (1, C', sH, sW) output.

    ``fn`` gets the tile index in ``tile_grid`` order and a view of ``x``; ``scale`` is the
    output/input size ratio (super-resolution).
    """
    if x.dim() != 4 or x.shape[0] != 1:
        raise ValueError(f"tiled inference expects one image (1, C, H, W), got {tuple(x.shape)}")
    h, w = x.shape[-2:]
    boxes = tile_grid(h, w, opts)
    s, m, blend = int(scale), opts.margin * int(scale), (opts.overlap - 2 * opts.margin) * int(scale)
    windows: dict[tuple[bool, bool, int], torch.Tensor] = {}

    def window(start: int, size: int, length: int) -> torch.Tensor:
        key = (start > 0, start + size < length, size)  # all a window depends on: few distinct ones
        if key not in windows:
            windows[key] = tile_window(start * s, size * s, length * s, m, blend, x.device).to(x.dtype)
        return windows[key]

    out = None
    for i, b in enumerate(boxes):
        r = fn(i, x[..., b.y:b.y + b.h, b.x:b.x + b.w])
        if r.shape[-2:] != (b.h * s, b.w * s):
            raise ValueError(f"tile {i} of size {b.h}x{b.w} gave an output of {tuple(r.shape[-2:])}, "
                             f"expected {b.h * s}x{b.w * s} (scale={s})")
        if out is None:
            out = x.new_zeros(1, r.shape[1], h * s, w * s)
        win = window(b.y, b.h, h)[:, None] * window(b.x, b.w, w)[None, :]
        out[..., b.y * s:(b.y + b.h) * s, b.x * s:(b.x + b.w) * s].addcmul_(r, win)
        del r
    # the window sum is separable: rows(y) * cols(x), divided out in place without an H x W buffer
    rows, cols = torch.zeros(h * s, device=x.device, dtype=x.dtype), torch.zeros(w * s, device=x.device, dtype=x.dtype)
    for start, size in {b.y: b.h for b in boxes}.items():
        rows[start * s:(start + size) * s] += window(start, size, h)
    for start, size in {b.x: b.w for b in boxes}.items():
        cols[start * s:(start + size) * s] += window(start, size, w)
    return out.div_(rows[:, None]).div_(cols[None, :])
