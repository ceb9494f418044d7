"""Never a broken model, never a hang: forward check + rollback, time limit, construct rules.

Third-party nets (spandrel, BasicSR) at tiny widths; see tests/thirdparty_nets.py.
"""
from __future__ import annotations

import copy
import time

import pytest
import torch
import torch_pruning as tp
from torch import nn

from ir_prune_plugin.channels.checked_step import checked_step
from ir_prune_plugin.channels.deadline import WALL_FACTOR, AnalysisTimeout, time_limit
from ir_prune_plugin.channels.rules.reparam import FUSED_ATTR, fuse_reparam
from ir_prune_plugin.channels.safety import BrokenForwardError, checked_change
from ir_prune_plugin.integrations.torch_pruning import CompactorMagnitudeImportance, tp_kwargs

from thirdparty_nets import build

pytest.importorskip("spandrel")


class _Fixed(nn.Module):
    """A net with a hard-coded channel count in forward: removing channels of ``a`` breaks it."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv2d(3, 8, 3, padding=1)
        self.b = nn.Conv2d(8, 3, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.a(x)
        y = y.view(y.shape[0], 8, y.shape[2], y.shape[3])   # the constant 8 does not follow pruning
        return self.b(y)


def _state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_broken_change_is_rolled_back_and_named() -> None:
    model, x = _Fixed(), torch.rand(1, 3, 8, 8)
    before, y0 = _state(model), model(x).detach()
    with pytest.raises(BrokenForwardError) as info:
        with checked_change(model, x, "removing 2 channels of 'a'"):
            tp.prune_conv_out_channels(model.a, [0, 1])
            tp.prune_conv_in_channels(model.b, [0, 1])
    err = info.value
    assert err.layer == "" and "view" in err.op and err.mode == "eval"
    assert "removing 2 channels of 'a'" in str(err) and "view" in str(err)
    assert model.a.out_channels == 8 and model.b.in_channels == 8   # rolled back, same objects
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert torch.equal(model(x), y0)


def test_shape_change_is_refused() -> None:
    model, x = nn.Sequential(nn.Conv2d(3, 8, 1), nn.Conv2d(8, 3, 1)), torch.rand(1, 3, 4, 4)
    with pytest.raises(BrokenForwardError, match="output shapes"):
        with checked_change(model, x, "cutting the output"):
            tp.prune_conv_out_channels(model[1], [0])
    assert model[1].out_channels == 3 and model(x).shape == (1, 3, 4, 4)


def test_train_mode_check_keeps_batchnorm_statistics() -> None:
    model, x = nn.Sequential(nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4)), torch.rand(2, 3, 4, 4)
    stats = model[1].running_mean.clone()
    with checked_change(model, x, "nothing"):
        pass
    assert torch.equal(model[1].running_mean, stats) and model.training


def test_time_limit_interrupts_python_loops() -> None:
    t0 = time.perf_counter()
    with pytest.raises(AnalysisTimeout, match="did not finish within 1 s"):
        with time_limit("a runaway analysis", 1.0):
            while True:
                pass
    assert time.perf_counter() - t0 < 10
    with time_limit("a quick one", 5.0):   # no leftover exception afterwards
        sum(range(1000))
    time.sleep(0.05)


def test_time_limit_counts_cpu_time_not_waiting() -> None:
    """A loaded machine (the thread waiting, not computing) must not turn into a timeout; a
    thread that stalls past the wall-clock backstop still gets one."""
    with time_limit("a waiting analysis", 0.5):
        time.sleep(1.0)           # 1 s wall, ~0 s CPU: under the 0.5 s CPU limit
    t0 = time.perf_counter()
    with pytest.raises(AnalysisTimeout):
        with time_limit("a stalled analysis", 0.25):
            while True:
                time.sleep(0.01)  # no CPU used: only the backstop (WALL_FACTOR x limit) ends it
    assert time.perf_counter() - t0 < 0.25 * WALL_FACTOR + 2


@pytest.mark.parametrize("name", ["nafnet", "drunet", "safmn", "span", "swinir"])
def test_torch_pruning_drop_in_keeps_a_working_model(name: str) -> None:
    """The drop-in at 50 %: NAFNet's SimpleGate chunk, DRUNet's in-place ReLU, SAFMN's chunk(4)
    into per-chunk convs, SPAN's re-parameterised convs, SwinIR's attention."""
    model, x = build(name)
    model.eval()
    with torch.no_grad():
        shape = model(x).shape
    kwargs = tp_kwargs(model, x)   # fuses re-parameterised blocks in place (same eval output)
    params = sum(p.numel() for p in model.parameters())
    pruner = tp.pruner.MetaPruner(model, x, importance=CompactorMagnitudeImportance(p=2), pruning_ratio=0.5,
                                  **kwargs)
    report = checked_step(pruner, x)
    assert report.pruned, report.refused
    for mode in (False, True):
        with torch.no_grad():
            assert model.train(mode)(x).shape == shape
    assert sum(p.numel() for p in model.parameters()) < 0.8 * params


def test_reparam_blocks_fuse_and_keep_nm_masks() -> None:
    from ir_prune_plugin import SLSPruner
    from ir_prune_plugin.sparsity.nm import nm_mask

    model, x = build("span")
    model.eval()
    with torch.no_grad():
        y0 = model(x)
    fused = copy.deepcopy(model)
    names = fuse_reparam(fused)
    assert len(names) >= 10 and getattr(fused, FUSED_ATTR) == names
    with torch.no_grad():
        assert torch.allclose(fused.train()(x), y0, atol=1e-5)   # deploy path in train mode too
    nm = SLSPruner(model, x, 0.5, M=4).finalize()
    for _ in range(2):
        with torch.no_grad():
            nm.train()(x)
            nm.eval()(x)
    plan = nm.irprune_nm_plan
    assert plan
    for layer, (n, m) in plan.items():
        w = nm.get_submodule(layer).weight.detach()
        assert not ((w != 0) & ~nm_mask(w, n, m).bool()).any(), layer


@pytest.mark.slow
def test_scunet_analysis_ends_at_the_attention() -> None:
    """Torch-Pruning's group building used to run for many minutes on SCUNet (q/k/v groups looping
    around the attention products); ending propagation at channel-mixing ops makes it take
    seconds of CPU, and the attention and fixed-size-split layers are left alone."""
    model, x = build("scunet")
    t0 = time.process_time()
    kwargs = tp_kwargs(model, x)
    assert time.process_time() - t0 < 60
    ignored = {n for n, m in model.named_modules() if any(m is i for i in kwargs["ignored_layers"])}
    assert "m_body.0.trans_block.msa.embedding_layer" in ignored   # q/k/v: through the attention
    assert "m_body.0.conv1_1" in ignored                           # torch.split with fixed sizes
    assert "m_body.0.trans_block.mlp.0" not in ignored             # the MLP hidden width prunes
