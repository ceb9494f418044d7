"""AdaptiveRestorer: tiling/blending exactness, budgeted allocation, difficulty ordering, comparison rows."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from ir_prune_plugin.sparsity.adaptive import (AdaptiveRestorer, TileOptions, compare_adaptive,
                                               laplacian_difficulty, macs_per_pixel)


def _models() -> tuple[nn.Module, nn.Module]:
    torch.manual_seed(0)
    cheap = nn.Conv2d(3, 3, 1)
    rich = nn.Sequential(nn.Conv2d(3, 16, 1), nn.Conv2d(16, 3, 1))
    return cheap, rich


def test_pointwise_model_tiles_blend_exactly():
    cheap, rich = _models()
    r = AdaptiveRestorer([cheap, rich], [macs_per_pixel(cheap), macs_per_pixel(rich)], tiles=TileOptions(16, 6))
    x = torch.rand(1, 3, 37, 45)
    with torch.no_grad():
        torch.testing.assert_close(r(x), rich(x), atol=1e-5, rtol=1e-5)  # 1x1 convs: tiling is exact


def test_budget_respected_and_hard_tiles_get_the_big_model():
    cheap, rich = _models()
    costs = [macs_per_pixel(cheap), macs_per_pixel(rich)]
    assert costs == [9.0, 96.0]
    r = AdaptiveRestorer([cheap, rich], costs, tiles=TileOptions(16, 0))
    x = torch.zeros(1, 3, 32, 32)
    x[..., :16, :16] = torch.rand(1, 3, 16, 16)  # one textured tile, three flat ones
    budget = (costs[1] + 3 * costs[0]) / 4  # room for exactly one big tile
    r(x, budget)
    assert r.last_choice == [1, 0, 0, 0]
    assert r.last_macs <= budget * 32 * 32 + 1e-6
    r(x, costs[0])
    assert r.last_choice == [0, 0, 0, 0]


def test_difficulty_orders_texture_above_flat():
    flat = torch.full((1, 3, 16, 16), 0.5)
    assert laplacian_difficulty(torch.rand(1, 3, 16, 16)) > laplacian_difficulty(flat) == 0.0


def test_compare_rows_and_bad_input():
    cheap, rich = _models()
    r = AdaptiveRestorer([cheap, rich], [9.0, 96.0], tiles=TileOptions(16, 4))
    x = torch.rand(1, 3, 24, 24)
    rows = compare_adaptive(r, [(x, x)], [60.0])  # overlap: 4 tiles of 256 px cover 576 px
    assert [row["method"] for row in rows] == ["model0", "model1", "adaptive@60"]
    assert rows[0]["macs_per_pixel"] < rows[2]["macs_per_pixel"] <= 60.0 < rows[1]["macs_per_pixel"]
    with pytest.raises(ValueError, match="one macs_per_pixel per model"):
        AdaptiveRestorer([cheap, rich], [1.0])
    with pytest.raises(ValueError, match="overlap"):
        TileOptions(16, 16)
    with pytest.raises(ValueError, match="one image"):
        r(torch.rand(2, 3, 8, 8))
