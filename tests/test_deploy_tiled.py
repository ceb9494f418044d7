"""TiledRestorer: measured receptive field, tile chosen to fit the budget, tiled == untiled."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from ir_prune_plugin.archs import build_arch
from ir_prune_plugin.deploy import TiledRestorer, receptive_radius
from ir_prune_plugin.memory import LiveBytesTracker, estimate_peak_memory


def _convs(n: int) -> nn.Module:
    torch.manual_seed(0)
    layers: list[nn.Module] = [nn.Conv2d(3, 8, 3, padding=1)]
    layers += [m for _ in range(n - 1) for m in (nn.ReLU(), nn.Conv2d(8, 8 if _ < n - 2 else 3, 3, padding=1))]
    return nn.Sequential(*layers).eval()


def _measured(restorer: TiledRestorer, x: torch.Tensor) -> tuple[torch.Tensor, int]:
    tracker = LiveBytesTracker()
    with torch.no_grad(), tracker:
        y = restorer(x)
    return y, tracker.peak


def test_receptive_radius_of_a_conv_stack():
    assert receptive_radius(_convs(5), torch.rand(1, 3, 32, 32), tolerance=1e-9) == 5
    assert receptive_radius(_convs(5), torch.rand(1, 3, 32, 32), tolerance=0.5) < 5
    with pytest.raises(ValueError, match="larger probe"):
        receptive_radius(_convs(5), torch.rand(1, 3, 8, 8), tolerance=1e-9)


def test_tile_fits_the_budget_and_matches_untiled():
    net = _convs(4)
    x = torch.rand(1, 3, 72, 100)
    full = estimate_peak_memory(net, x).peak_bytes
    r = TiledRestorer(net, 0.4, image_size=(72, 100), align=4, blend=4, tolerance=1e-9)
    plan = r.plan(72, 100)
    assert r.margin == 4 and plan.n_tiles > 1 and plan.overhead > 0
    assert plan.total <= r.budget == int(0.4 * full)
    # the next larger aligned tile would not have fitted: the choice is the largest
    bigger = plan.tiles.tile + 4
    assert r.tile_peak(min(bigger, 72), min(bigger, 100)) + plan.fixed > r.budget
    y, peak = _measured(r, x)
    assert peak <= plan.total  # real live bytes of the whole tiled run (input image excluded)
    with torch.no_grad():
        torch.testing.assert_close(y, net(x), atol=1e-5, rtol=1e-5)
        small = x[..., :40, :60]  # a smaller image with the larger image's tiles: still exact
        torch.testing.assert_close(r(small, plan.tiles), net(small), atol=1e-5, rtol=1e-5)


def test_budget_out_of_reach_and_bad_input():
    net = _convs(3)
    with pytest.raises(ValueError, match="below the smallest tiling"):
        TiledRestorer(net, 1000, image_size=(64, 64), margin=3)
    r = TiledRestorer(net, "10MB", image_size=(32, 32), margin=3)
    assert r.plan(32, 32).n_tiles == 1  # everything fits: one untiled forward
    with pytest.raises(ValueError, match="one image"):
        r(torch.rand(1, 4, 32, 32))
    with pytest.raises(ValueError, match="margin must be"):
        TiledRestorer(net, "10MB", margin=-1)


@pytest.mark.slow
def test_sid_unet_tiles_on_its_pooling_grid():
    net = build_arch("sid_unet", width=0.125).eval()
    torch.manual_seed(0)   # the random weights this test was written with (the arch's init draws more
    for m in net.modules():  # numbers since it became He's: replay PyTorch's default init, then redraw)
        if isinstance(m, torch.nn.Conv2d | torch.nn.ConvTranspose2d):
            m.reset_parameters()
    for p in net.parameters():
        p.data.normal_(0, 0.1)
    x = torch.rand(1, 3, 150, 230)
    r = TiledRestorer(net, 0.5, image_size=(150, 230), blend=4)
    plan = r.plan(150, 230)
    assert plan.n_tiles > 1 and plan.tiles.tile % 16 == 0
    y, peak = _measured(r, x)
    assert peak <= plan.total <= r.budget
    with torch.no_grad():
        assert (y - net(x)).abs().max() < 2e-3
