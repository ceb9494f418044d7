"""Shared tiling: grid coverage, windows, exactness against untiled inference, bad options."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from ir_prune_plugin.tiling import TileOptions, run_tiled, tile_grid, tile_window


def _convs(n: int, scale: int = 1) -> nn.Module:
    """n 3x3 convs (receptive-field radius n), optionally a PixelShuffle upsampler."""
    torch.manual_seed(0)
    layers: list[nn.Module] = [nn.Conv2d(3, 8, 3, padding=1)]
    layers += [m for _ in range(n - 2) for m in (nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1))]
    layers += [nn.ReLU(), nn.Conv2d(8, 3 * scale ** 2, 3, padding=1)]
    if scale > 1:
        layers.append(nn.PixelShuffle(scale))
    return nn.Sequential(*layers).eval()


def test_grid_covers_the_image_with_aligned_starts():
    opts = TileOptions(tile=32, overlap=10, margin=3, align=8)
    boxes = tile_grid(70, 100, opts)
    assert opts.stride == 16 and all(b.y % 8 == 0 and b.x % 8 == 0 for b in boxes)
    cover = torch.zeros(70, 100)
    for b in boxes:
        assert 0 < b.h <= 32 and 0 < b.w <= 32
        cover[b.y:b.y + b.h, b.x:b.x + b.w] += 1
    assert cover.min() >= 1


def test_window_is_zero_in_the_margin_and_one_at_image_borders():
    w = tile_window(start=16, size=32, length=100, margin=3, blend=4)
    assert w[:3].eq(0).all() and w[-3:].eq(0).all() and w[10:20].eq(1).all()
    assert tile_window(0, 32, 32, 3, 4).eq(1).all()  # a tile spanning the axis needs no ramp


@pytest.mark.parametrize("scale", [1, 2])
def test_margin_at_receptive_field_makes_tiling_exact(scale):
    net = _convs(4, scale)
    x = torch.rand(1, 3, 45, 61)
    opts = TileOptions(tile=20, overlap=10, margin=4)
    with torch.no_grad():
        tiled, full = run_tiled(x, opts, lambda _i, t: net(t), scale=scale), net(x)
        torch.testing.assert_close(tiled, full, atol=1e-5, rtol=1e-5)
        short = run_tiled(x, TileOptions(tile=20, overlap=2, margin=1), lambda _i, t: net(t), scale=scale)
    assert (short - full).abs().max() > 1e-3  # too little context shows at the seams


def test_bad_options_and_outputs():
    with pytest.raises(ValueError, match="overlap >= 2 \\* margin"):
        TileOptions(tile=32, overlap=4, margin=3)
    with pytest.raises(ValueError, match="multiple of align"):
        TileOptions(tile=30, overlap=4, align=16)
    with pytest.raises(ValueError, match="no aligned step"):
        TileOptions(tile=32, overlap=20, align=16)
    with pytest.raises(TypeError, match="tile must be an int"):
        TileOptions(tile=32.0)
    with pytest.raises(ValueError, match="one image"):
        run_tiled(torch.rand(2, 3, 8, 8), TileOptions(8, 0), lambda _i, t: t)
    with pytest.raises(ValueError, match="expected 16x16"):
        run_tiled(torch.rand(1, 3, 16, 16), TileOptions(8, 0), lambda _i, t: t, scale=2)
