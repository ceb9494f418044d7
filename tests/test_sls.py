"""SLSPruner: budget, exact N:M, plan variation, determinism, bad input, caller's model untouched."""
from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from ir_prune_plugin.sparsity import PLAN_ATTR, FitOptions, SLSOptions, SLSPruner, check_nm, layer_macs, to_groups
from ir_prune_plugin.sparsity.schedule import AnnealingSchedule


class TwoScaleNet(nn.Module):
    """Layer ``a`` runs at full resolution (9x the MACs of ``b``): SLS should prune it harder."""

    def __init__(self) -> None:
        super().__init__()
        self.head = nn.Conv2d(3, 16, 3, padding=1)
        self.a = nn.Conv2d(16, 16, 3, padding=1)
        self.down = nn.Conv2d(16, 16, 4, stride=4)
        self.b = nn.Conv2d(16, 16, 3, padding=1)
        self.up = nn.ConvTranspose2d(16, 16, 4, stride=4)
        self.tail = nn.Conv2d(16, 3, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.a(torch.relu(self.head(x))))
        d = torch.relu(self.b(torch.relu(self.down(h))))
        return x + self.tail(h + self.up(d))


def _denoise_batches(n: int = 8, size: int = 32) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(0)
    out = []
    for _ in range(n):
        gt = torch.rand(4, 3, size, size, generator=g)
        out.append((gt + 0.1 * torch.randn(gt.shape, generator=g), gt))
    return out


def _run(seed: int = 0, budget: float = 0.3, steps: int = 80) -> SLSPruner:
    torch.manual_seed(seed)
    net = TwoScaleNet()
    p = SLSPruner(net, torch.rand(1, 3, 32, 32), budget, M=8, options=SLSOptions(search_steps=60, refresh_every=20))
    p.fit(_denoise_batches(), steps, FitOptions(lr=1e-3, progress=False, seed=seed))
    return p


def _independent_max_nonzeros(w: torch.Tensor, M: int, transposed: bool) -> int:
    """Max non-zeros over groups of M consecutive reduction channels, by explicit slicing."""
    red = 0 if transposed else 1
    worst = 0
    for c0 in range(0, w.shape[red], M):
        blk = w[c0:c0 + M] if transposed else w[:, c0:c0 + M]
        worst = max(worst, int((blk != 0).sum(dim=red).max()))
    return worst


def test_budget_met_exact_nm_and_plan_varies():
    p = _run()
    model = p.finalize()
    plan = getattr(model, PLAN_ATTR)
    assert plan == p.plan and set(plan) == {"a", "down", "b", "up"}  # head/tail excluded by default
    # total kept MACs of the prunable layers within the budget, from a fresh count
    dense = layer_macs(model, torch.rand(1, 3, 32, 32))
    kept = sum(dense[n] * N / M for n, (N, M) in plan.items())
    assert kept <= 0.3 * sum(dense[n] for n in plan) + 1e-6
    assert check_nm(model).plan == plan
    mods = dict(model.named_modules())
    for name, (N, M) in plan.items():
        w = mods[name].weight
        assert _independent_max_nonzeros(w, M, isinstance(mods[name], nn.ConvTranspose2d)) <= N
        assert (to_groups(w, M, isinstance(mods[name], nn.ConvTranspose2d)) != 0).sum(1).max() <= N
    ns = {n: N for n, (N, _) in plan.items()}
    assert len(set(ns.values())) > 1
    assert ns["a"] < ns["b"]  # the expensive full-resolution layer gives up more


def test_same_seed_same_plan():
    assert _run(seed=3, steps=40).plan == _run(seed=3, steps=40).plan


def test_callers_model_untouched_and_output_changes():
    net = TwoScaleNet()
    before = copy.deepcopy(net.state_dict())
    p = SLSPruner(net, torch.rand(1, 3, 32, 32), 0.3, M=8, options=SLSOptions(search_steps=5))
    p.fit(_denoise_batches(2), 6, FitOptions(lr=1e-3, progress=False))
    p.finalize()
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    assert not hasattr(net, PLAN_ATTR)
    with pytest.raises(RuntimeError, match="finalized"):
        p.step()


def test_projection_when_search_cannot_reach_budget():
    net = TwoScaleNet()
    opts = SLSOptions(search_steps=2, reg_weight=1e-9, schedule=AnnealingSchedule(1.0, 1.0))
    p = SLSPruner(net, torch.rand(1, 3, 32, 32), 0.2, M=8, options=opts)
    p.fit(_denoise_batches(2), 3, FitOptions(lr=1e-3, progress=False))
    assert p.projected and not p.searching
    assert p.kept_ratio() <= 0.2


def test_user_loop_hooks():
    net = TwoScaleNet()
    p = SLSPruner(net, torch.rand(1, 3, 32, 32), 0.5, M=8, options=SLSOptions(search_steps=50))
    opt = torch.optim.Adam(p.model.parameters(), lr=1e-3)
    assert not any(s is q for s in p.score_parameters() for q in p.model.parameters())
    x, y = _denoise_batches(1)[0]
    reg = p.regularization()
    assert reg.item() > 0 and reg.requires_grad
    (torch.nn.functional.l1_loss(p.model(x), y) + reg).backward()
    before = [s.detach().clone() for s in p.score_parameters()]
    opt.step()
    p.step()
    assert any(not torch.equal(b, s) for b, s in zip(before, p.score_parameters()))
    assert all(float(s.detach().min()) >= 0 and float(s.detach().max()) <= 1 for s in p.score_parameters())


def test_anneal_schedule_is_pure_and_geometric():
    s = AnnealingSchedule(1.0, 100.0)
    assert s(0.0) == 1.0 and s(1.0) == pytest.approx(100.0) and s(0.5) == pytest.approx(10.0) and s(7.0) == s(1.0)
    with pytest.raises(ValueError):
        AnnealingSchedule(0.0, 1.0)


@pytest.mark.parametrize("kwargs,exc,msg", [
    ({"macs_budget": 1.0}, ValueError, "macs_budget"),
    ({"macs_budget": 0.0}, ValueError, "macs_budget"),
    ({"macs_budget": "0.5"}, TypeError, "macs_budget"),
    ({"macs_budget": 0.05}, ValueError, "below 1/M"),
    ({"M": 0}, ValueError, "M must be a positive"),
    ({"M": 6}, ValueError, "no layer"),
    ({"M": 8.0}, TypeError, "M must be an int"),
])
def test_bad_input(kwargs, exc, msg):
    args = {"macs_budget": 0.3, "M": 8, **kwargs}
    net = TwoScaleNet()
    before = copy.deepcopy(net.state_dict())
    with pytest.raises(exc, match=msg):
        SLSPruner(net, torch.rand(1, 3, 32, 32), args.pop("macs_budget"), **args)
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())


def test_bad_options_and_layers():
    with pytest.raises(ValueError, match="search_steps"):
        SLSOptions(search_steps=0)
    with pytest.raises(ValueError, match="finetune"):
        SLSOptions(finetune="magic")
    with pytest.raises(ValueError, match="unknown layers"):
        SLSPruner(TwoScaleNet(), torch.rand(1, 3, 32, 32), 0.3, M=8, options=SLSOptions(ignored_layers=("nope",)))
    with pytest.raises(ValueError, match="no layer"):
        SLSPruner(nn.Sequential(nn.ReLU()), torch.rand(1, 3, 8, 8), 0.3, M=8)
    with pytest.raises(TypeError, match="torch.nn.Module"):
        SLSPruner("model", torch.rand(1, 3, 8, 8), 0.3, M=8)


def test_srste_finetune_after_search_trains_pruned_weights():
    net = TwoScaleNet()
    p = SLSPruner(net, torch.rand(1, 3, 32, 32), 0.3, M=8,
                  options=SLSOptions(search_steps=3, finetune="sr-ste", lambda_w=0.1))
    p.fit(_denoise_batches(2), 4, FitOptions(lr=1e-3, progress=False))
    assert not p.searching
    from ir_prune_plugin.sparsity import masks as mk
    layer = p.layers["a"]
    w = mk.original(layer)
    x, y = _denoise_batches(1)[0]
    (torch.nn.functional.l1_loss(p.model(x), y) + p.regularization()).backward()
    pruned = layer.parametrizations.weight[0].mask() == 0
    assert (w.grad[pruned] != 0).any()  # dense straight-through gradients reach pruned weights
    plan = p.plan
    model = p.finalize()
    assert check_nm(model).plan == plan
    assert p.macs()["ratio"] <= 0.3
