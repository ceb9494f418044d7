"""SLS and the N:M baselines on BasicSR's EDSR, MSRResNet, RCAN, RRDBNet and the SID U-Net (tiny)."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from ir_prune_plugin.archs import build_arch
from ir_prune_plugin.sparsity import FitOptions, SLSOptions, SLSPruner, check_nm, layer_macs
from ir_prune_plugin.sparsity.nm_baselines import OneShotNM, SRSTEPruner

ARCHS = {
    "edsr": (dict(num_feat=16, num_block=2, upscale=2), 2),
    "msrresnet": (dict(num_feat=16, num_block=2, upscale=2), 2),
    "rcan": (dict(num_feat=16, num_group=1, num_block=2, squeeze_factor=4, upscale=2), 2),
    "rrdbnet": (dict(num_feat=16, num_block=1, num_grow_ch=8, scale=2), 2),
    "sid_unet": (dict(width=0.25), 1),
}


def _batches(scale: int, n: int = 2) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(0)
    return [(torch.rand(2, 3, 16, 16, generator=g), torch.rand(2, 3, 16 * scale, 16 * scale, generator=g))
            for _ in range(n)]


@pytest.mark.parametrize("name", list(ARCHS))
def test_sls_on_arch(name):
    kw, scale = ARCHS[name]
    model = build_arch(name, **kw)
    x = torch.rand(1, 3, 16, 16)
    p = SLSPruner(model, x, 0.4, M=8, options=SLSOptions(search_steps=4, refresh_every=2))
    assert len(p.layers) >= 3
    p.fit(_batches(scale), 6, FitOptions(lr=1e-3, progress=False))
    out = p.finalize()
    plan = check_nm(out).plan
    assert plan == p.plan and len(plan) == len(p.layers)
    dense = layer_macs(out, x)
    assert sum(dense[n] * N / M for n, (N, M) in plan.items()) <= 0.4 * sum(dense[n] for n in plan) + 1e-6
    assert out(x).shape == (1, 3, 16 * scale, 16 * scale)


@pytest.mark.parametrize("cls", [OneShotNM, SRSTEPruner])
def test_uniform_baselines_exact_nm(cls):
    model = build_arch("edsr", num_feat=16, num_block=2, upscale=2)
    x = torch.rand(1, 3, 16, 16)
    p = cls(model, x, 2, 8)
    p.fit(_batches(2), 3, FitOptions(lr=1e-3, progress=False))
    out = p.finalize()
    plan = check_nm(out).plan
    assert set(plan.values()) == {(2, 8)} and len(plan) == len(p.layers)
    assert p.macs()["ratio"] == pytest.approx(0.25)


def test_srste_gradient_reaches_pruned_weights_with_decay():
    conv = nn.Sequential(nn.Conv2d(3, 8, 3), nn.Conv2d(8, 8, 3), nn.Conv2d(8, 3, 3))
    p = SRSTEPruner(conv, torch.rand(1, 3, 12, 12), 1, 4, lambda_w=0.5)
    layer = p.layers["1"]
    from ir_prune_plugin.sparsity import masks as mk
    w = mk.original(layer)
    mask = mk.mask_module(layer).mask_of(w.detach())
    p.regularization().backward()
    assert torch.allclose(w.grad, 0.5 * (1 - mask) * w.detach())  # exactly lambda_w * (1 - mask) * W
    w.grad = None
    p.model(torch.rand(1, 3, 12, 12)).sum().backward()
    assert (w.grad[mask == 0] != 0).any()  # straight-through: pruned weights get task gradient too
