"""Support matrix: third-party IR nets x every method, each cell a real run (README "Support matrix").

Nets are the packages' own implementations (spandrel, BasicSR) at CPU-test widths, built by
tests/thirdparty_nets.py. A cell either works -- checked by measurement -- or is one of the
documented, specific refusals in ``REFUSALS`` (asserted by message). Whatever happens, no call may
return a model whose forward fails or whose output shape changed. Re-parameterised blocks are
fused to deploy form first where a method needs it (SPAN; ``fuse_reparam``).
"""
from __future__ import annotations

import copy
import time
from pathlib import Path

import pytest
import torch
import torch_pruning as tp
from torch import nn

from ir_prune_plugin import MOSPPruner, SLSPruner, estimate_peak_memory, load_pruned, save_pruned
from ir_prune_plugin.channels.checked_step import checked_step
from ir_prune_plugin.channels.compactor import Compactor, insert_compactors
from ir_prune_plugin.channels.mosp import MOSPOptions
from ir_prune_plugin.channels.rules.reparam import fuse_reparam
from ir_prune_plugin.integrations.torch_pruning import CompactorMagnitudeImportance, tp_kwargs
from ir_prune_plugin.memory.measure import measure_peak_memory
from ir_prune_plugin.sparsity.nm import nm_mask

from thirdparty_nets import NETS, build

pytest.importorskip("spandrel")

ARCHS = sorted(NETS)
#: (arch, method) -> regex of the documented refusal (the error message must match it)
REFUSALS: dict[tuple[str, str], str] = {
    # item assignment on a traced shape (img_mask[:, h, w, :] = cnt) in HAT's own forward
    ("hat", "compactors"): "cannot capture the graph of HAT",
    # no long skip: MSRResNet's and PLKSR's global skips come from the (upsampled) input
    ("msrresnet", "compactors"): "no long skip found",
    ("plksr", "compactors"): "no long skip found",
    # the peak is held by channels that cannot be cut: attention scores, q/k/v and residual streams (HAT),
    # the fixed-size split of the large-kernel conv and the repeated input (PLKSR), the
    # illumination-guided attention (RetinexFormer)
    ("hat", "mosp"): "cannot be reached",
    ("scunet", "mosp"): "cannot be reached",   # + the fixed-size split of its conv/transformer halves
    ("plksr", "mosp"): "cannot be reached",
    ("retinexformer", "mosp"): "cannot be reached",
    ("ditn", "mosp"): "cannot be reached",
    ("omnisr", "mosp"): "cannot be reached",
}
# The full matrix runs with the slow tests; the fast run keeps every column on several nets.
#: the largest nets: every cell slow, except the drop-in cells that guard a Torch-Pruning rule
#: (Restormer: channel concats after a 3-D parameter; OmniSR: einsum's 5-D expand)
SLOW_ARCHS = {"scunet", "uformer", "restormer", "omnisr"}
FAST_CELLS = {("restormer", "tp"), ("omnisr", "tp")}
#: memory estimates that take seconds (torch.export); the column stays fast on the other nets
SLOW_CELLS = {("hat", "memory"), ("nafnet", "memory"), ("retinexformer", "memory")}


def _cell(arch: str, method: str):
    slow = (method == "mosp" or (arch, method) in SLOW_CELLS
            or (arch in SLOW_ARCHS and (arch, method) not in FAST_CELLS))
    return pytest.param(arch, id=f"{arch}", marks=[pytest.mark.slow] if slow else [])


def _outputs_ok(model: nn.Module, x: torch.Tensor, shape: torch.Size) -> None:
    """The rule every method must keep: forward runs in both modes, same output shape."""
    for mode in (False, True):
        with torch.no_grad():
            assert model.train(mode)(x).shape == shape
    model.eval()


def _expect(arch: str, method: str, run) -> None:
    expected = REFUSALS.get((arch, method))
    if expected is None:
        run()
        return
    with pytest.raises(Exception, match=expected):
        run()


@pytest.fixture
def net(request) -> tuple[nn.Module, torch.Tensor, torch.Size]:
    model, x = build(request.param)
    model.eval()
    with torch.no_grad():
        shape = model(x).shape
    return model, x, shape


def _fused(model: nn.Module) -> nn.Module:
    work = copy.deepcopy(model)
    fuse_reparam(work)
    return work


@pytest.mark.parametrize("net", [_cell(a, "memory") for a in ARCHS], indirect=True)
def test_memory_estimate_equals_measurement(net) -> None:
    model, x, _ = net
    work = _fused(model)
    assert estimate_peak_memory(work, x).peak_bytes == measure_peak_memory(work, x, mode="scheduled")


@pytest.mark.parametrize("net", [_cell(a, "compactors") for a in ARCHS], indirect=True)
def test_compactors_insert_as_identity(net, request) -> None:
    model, x, shape = net
    arch = request.node.callspec.id

    def run() -> None:
        ref = _fused(model).double()   # float64: the identity is then exact to rounding
        work = insert_compactors(ref, x.double())
        assert any(isinstance(m, Compactor) for m in work.modules()), "no long skip found"
        with torch.no_grad():
            assert (work.eval()(x.double()) - ref(x.double())).abs().max() <= 1e-6
        _outputs_ok(work, x.double(), shape)
    _expect(arch, "compactors", run)


@pytest.mark.parametrize("net", [_cell(a, "mosp") for a in ARCHS], indirect=True)
def test_mosp_half_peak_meets_budget_by_measurement(net, request) -> None:
    model, x, shape = net
    arch = request.node.callspec.id

    def run() -> None:
        peak = estimate_peak_memory(_fused(model), x).peak_bytes
        opts = MOSPOptions(memory_input_size=tuple(x.shape), min_channels=1, inner_step=max(1, peak // 8))
        pruner = MOSPPruner(model, x, 0.5, options=opts)
        small = pruner.prune(progress=False)
        assert measure_peak_memory(small, x, mode="scheduled") <= pruner.budget_bytes
        _outputs_ok(small, x, shape)
    _expect(arch, "mosp", run)


def _exact_nm(model: nn.Module) -> None:
    plan = model.irprune_nm_plan
    assert plan
    for layer, (n, m) in plan.items():
        w = model.get_submodule(layer).weight.detach()
        transposed = isinstance(model.get_submodule(layer), nn.ConvTranspose2d)
        assert not ((w != 0) & ~nm_mask(w, n, m, transposed).bool()).any(), layer


@pytest.mark.parametrize("net", [_cell(a, "sls") for a in ARCHS], indirect=True)
def test_sls_exact_nm_after_further_forwards(net, request, tmp_path: Path) -> None:
    model, x, shape = net
    nm = SLSPruner(model, x, 0.5, M=4).finalize()
    _outputs_ok(nm, x, shape)   # two more forwards (train and eval)
    _exact_nm(nm)
    arch = request.node.callspec.id   # save/load of the third-party class (its constructor args given)
    save_pruned(nm, tmp_path / "nm.pt", init_kwargs=NETS[arch][0].init_kwargs)
    loaded = load_pruned(tmp_path / "nm.pt").eval()
    with torch.no_grad():
        assert torch.equal(loaded(x), nm(x))
    _exact_nm(loaded)


@pytest.mark.parametrize("net", [_cell(a, "tp") for a in ARCHS], indirect=True)
def test_torch_pruning_drop_in_half(net, request) -> None:
    model, x, shape = net
    arch = request.node.callspec.id

    def run() -> None:
        t0 = time.perf_counter()
        kwargs = tp_kwargs(model, x)
        params = sum(p.numel() for p in model.parameters())
        pruner = tp.pruner.MetaPruner(model, x, importance=CompactorMagnitudeImportance(p=2),
                                      pruning_ratio=0.5, **kwargs)
        report = checked_step(pruner, x)
        assert report.pruned, report.refused
        assert sum(p.numel() for p in model.parameters()) < params
        assert time.perf_counter() - t0 < 120
        _outputs_ok(model, x, shape)
    try:
        _expect(arch, "tp", run)
    finally:
        _outputs_ok(model, x, shape)   # refused or not, the model still works
