"""Compactor module and insert_compactors: exact identity at insertion, skip-branch only, replay."""
from __future__ import annotations

import copy
import operator

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ir_prune_plugin.archs import build_arch
from ir_prune_plugin.channels.compactor import (
    Compactor, CompactorGraphModule, find_skip_connections, insert_compactors, replay_compactors)


@pytest.fixture(params=["sid_unet", "res_unet"])
def unet(request: pytest.FixtureRequest) -> nn.Module:
    return build_arch(request.param, width=0.25).eval()


def test_compactor_identity_and_validation() -> None:
    c = Compactor(5)
    x = torch.randn(2, 5, 7, 3)
    assert torch.equal(c(x), x)
    assert (c.in_channels, c.out_channels) == (5, 5)
    for bad in (0, -1, 2.0, True, "3"):
        with pytest.raises(ValueError, match="positive int"):
            Compactor(bad)  # type: ignore[arg-type]


def test_insertion_is_exact_and_one_per_concat_skip(unet: nn.Module) -> None:
    x = torch.rand(1, 3, 20, 24)  # not a multiple of 16: the U-Nets pad internally
    model = insert_compactors(unet, x)
    sites = model.irprune_compactors
    assert len(sites) == 4 and {s["kind"] for s in sites} == {"concat"}
    assert sorted(s["channels"] for s in sites) == [8, 16, 32, 64]
    assert len([m for m in model.modules() if isinstance(m, Compactor)]) == 4
    with torch.no_grad():
        assert (model(x) - unet(x)).abs().max().item() <= 1e-6
    assert model.irprune_arch == unet.irprune_arch


def test_compactor_sits_on_the_skip_branch_only(unet: nn.Module) -> None:
    model = insert_compactors(unet, torch.rand(1, 3, 16, 16))
    for node in model.graph.nodes:
        if node.op == "call_module" and node.target.startswith("compactors."):
            (src,) = node.args
            assert [u.target for u in node.users] == [torch.cat]  # only the concat sees it
            others = [u for u in src.users if u is not node]
            assert others and all(u.target is not torch.cat for u in others)  # main branch keeps src


def test_user_model_untouched_and_result_is_trainable(unet: nn.Module) -> None:
    nn.init.normal_(unet.out.weight, std=0.1)  # the reference nets zero-init their head
    before = {k: v.clone() for k, v in unet.state_dict().items()}
    model = insert_compactors(unet, torch.rand(1, 3, 16, 16))
    own = {id(p) for p in unet.parameters()}
    assert not any(id(p) in own for p in model.parameters())
    model.train()
    loss = model(torch.rand(2, 3, 16, 16)).square().mean()
    loss.backward()
    grads = [m.weight.grad for m in model.modules() if isinstance(m, Compactor)]
    assert all(g is not None and g.abs().sum() > 0 for g in grads)
    assert all(torch.equal(before[k], v) for k, v in unet.state_dict().items())
    keys = [k for k in model.state_dict() if k.startswith("compactors.")]
    assert len(keys) == 4 and "Compactor" in str(model)
    assert [k for k in model.state_dict() if k not in keys] == list(unet.state_dict())
    assert isinstance(model.get_submodule(next(iter(dict(unet.named_children())))), type(
        next(iter(unet.children()))))  # containers keep their class (indexable Sequentials)


def test_deepcopy_keeps_sites_and_spec() -> None:
    base = build_arch("sid_unet", width=0.25)
    nn.init.normal_(base.out.weight, std=0.1)
    model = insert_compactors(base, torch.rand(1, 3, 16, 16))
    clone = copy.deepcopy(model)
    assert isinstance(clone, CompactorGraphModule)
    assert clone.irprune_compactors == model.irprune_compactors
    assert clone.irprune_arch == {"type": "sid_unet", "width": 0.25}
    assert isinstance(clone.dec1, nn.Sequential) and clone.dec1[0] is not model.dec1[0]
    assert list(clone.state_dict()) == list(model.state_dict())
    assert str(clone).startswith("SIDUNetWithCompactors(")
    x = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        clone.get_submodule("compactors.enc1_3").weight.mul_(2)
        assert not torch.equal(clone(x), model(x))  # the clone owns its weights


def test_which_selects_sites() -> None:
    base = build_arch("sid_unet", width=0.25)
    x = torch.rand(1, 3, 16, 16)
    sites = find_skip_connections(base, x)
    assert len(sites) == 4 and all(s.distance >= 6 for s in sites)
    one = insert_compactors(base, x, which=[sites[0].key])
    assert [s["source"] for s in one.irprune_compactors] == [sites[0].source]
    deep_only = insert_compactors(base, x, which=lambda s: s.channels == 8)
    assert [s["channels"] for s in deep_only.irprune_compactors] == [8]
    assert len(insert_compactors(base, x, which="long", min_distance=30).irprune_compactors) == 1
    with pytest.raises(ValueError, match="unknown skip sites"):
        insert_compactors(base, x, which=["nope->cat"])
    with pytest.raises(ValueError, match="which must be"):
        insert_compactors(base, x, which="short")
    with pytest.raises(ValueError, match="min_distance"):
        insert_compactors(base, x, min_distance=0)


class _ResidualNet(nn.Module):
    """A long add skip and a short one."""

    def __init__(self) -> None:
        super().__init__()
        self.head = nn.Conv2d(3, 8, 3, padding=1)
        self.body = nn.Sequential(*[nn.Conv2d(8, 8, 3, padding=1) for _ in range(6)])
        self.inner = nn.Conv2d(8, 8, 3, padding=1)
        self.tail = nn.Conv2d(8, 3, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.head(x)
        b = self.body(h)
        b = operator.add(b, F.relu(self.inner(b)))
        return self.tail(b + h)


def test_long_add_skip_gets_a_compactor_short_one_does_not() -> None:
    net = _ResidualNet().eval()
    x = torch.rand(1, 3, 8, 8)
    model = insert_compactors(net, x)
    assert [(s["source"], s["kind"]) for s in model.irprune_compactors] == [("head", "add")]
    assert len(insert_compactors(net, x, which="all").irprune_compactors) == 2
    with torch.no_grad():
        assert torch.equal(model(x), net(x))


def test_rrdbnet_global_residual_is_long_dense_links_are_not() -> None:
    net = build_arch("rrdbnet", num_feat=8, num_block=1, num_grow_ch=4, scale=4).eval()
    x = torch.rand(1, 3, 8, 8)
    model = insert_compactors(net, x)
    assert [(s["source"], s["kind"], s["top_level"]) for s in model.irprune_compactors] == [
        ("conv_first", "add", True)]
    assert len(find_skip_connections(net, x)) > 10  # the dense links exist but are not "long"
    with torch.no_grad():
        assert torch.equal(model(x), net(x))


def test_replay_rebuilds_the_same_structure() -> None:
    x = torch.rand(1, 3, 16, 16)
    model = insert_compactors(build_arch("res_unet", width=0.25), x)
    again = replay_compactors(build_arch("res_unet", width=0.25), model.irprune_compactors)
    assert list(again.state_dict()) == list(model.state_dict())
    assert again.code == model.code
    with pytest.raises(ValueError, match="malformed"):
        replay_compactors(build_arch("res_unet", width=0.25), [{"source": "add"}])


def test_errors_are_clear() -> None:
    x = torch.rand(1, 3, 8, 8)

    class DataDependent(nn.Module):   # control flow on values in the top-level forward
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 3, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.conv(x) if x.mean() > 0 else x

    with pytest.raises(ValueError, match=r"cannot capture the graph of DataDependent.*x.mean\(\) > 0"):
        insert_compactors(DataDependent(), x)
    model = insert_compactors(build_arch("sid_unet", width=0.25), torch.rand(1, 3, 16, 16))
    with pytest.raises(ValueError, match="already has compactors"):
        insert_compactors(model, torch.rand(1, 3, 16, 16))


def test_model_with_compactors_pickles():
    """DDP and multiprocessing pickle the module: unpickling re-traces it with the tracer's class."""
    import pickle

    from ir_prune_plugin import insert_compactors
    from ir_prune_plugin.archs import build_arch

    model = insert_compactors(build_arch("sid_unet", width=0.125), torch.rand(1, 3, 32, 32))
    x = torch.rand(1, 3, 32, 32)
    assert torch.allclose(pickle.loads(pickle.dumps(model))(x), model(x))
