"""Peak activation memory: hand-worked golden cases, estimate == scheduled measurement, errors."""
from __future__ import annotations

import resource

import pytest
import torch
from torch import nn

from ir_prune_plugin.archs import build_arch
from ir_prune_plugin.memory import (TraceError, estimate_peak_memory, measure_both,
                                    measure_peak_memory)

F32 = 4  # bytes per float32 element


def nbytes(*shape: int) -> int:
    n = F32
    for s in shape:
        n *= s
    return n


class Chain(nn.Module):
    """x -> conv(1->2) -> conv(2->4) -> conv(4->1), intermediates held in locals."""

    def __init__(self) -> None:
        super().__init__()
        self.c1, self.c2, self.c3 = nn.Conv2d(1, 2, 3, padding=1), nn.Conv2d(2, 4, 3, padding=1), nn.Conv2d(4, 1, 3, padding=1)

    def forward(self, x):
        a = self.c1(x)
        b = self.c2(a)
        return self.c3(b)


class Residual(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.c1, self.c2 = nn.Conv2d(2, 2, 3, padding=1), nn.Conv2d(2, 2, 3, padding=1)

    def forward(self, x):
        return self.c2(self.c1(x)) + x


class ConcatSkip(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.enc, self.dec, self.out = nn.Conv2d(1, 2, 3, padding=1), nn.Conv2d(2, 3, 3, padding=1), nn.Conv2d(5, 1, 1)

    def forward(self, x):
        e = self.enc(x)
        return self.out(torch.cat([self.dec(e), e], 1))


class ReluNet(nn.Module):
    def __init__(self, inplace: bool) -> None:
        super().__init__()
        self.c1, self.act, self.c2 = nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(inplace=inplace), nn.Conv2d(4, 1, 3, padding=1)

    def forward(self, x):
        return self.c2(self.act(self.c1(x)))


class ViewNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.c = nn.Conv2d(2, 4, 3, padding=1)

    def forward(self, x):
        return self.c(x).view(1, 4, 16) * 2


def check(model: nn.Module, shape: tuple[int, ...], peak: int, step: int) -> None:
    """Estimate == hand value == real scheduled measurement, at the expected step."""
    p = estimate_peak_memory(model, shape)
    assert p.peak_bytes == peak
    assert p.peak_step == step
    assert measure_peak_memory(model, torch.rand(shape)) == peak


def test_three_layer_chain_by_hand():
    x, a, b, c = nbytes(1, 1, 4, 4), nbytes(1, 2, 4, 4), nbytes(1, 4, 4, 4), nbytes(1, 1, 4, 4)
    # step 0 conv1: x + a;  step 1 conv2: a + b (x freed after its last use);  step 2: b + c
    assert (x + a, a + b, b + c) == (192, 384, 320)
    check(Chain(), (1, 1, 4, 4), a + b, 1)
    p = estimate_peak_memory(Chain(), (1, 1, 4, 4))
    assert p.timeline == (x + a, a + b, b + c)


def test_eager_holds_python_locals():
    x, a, b, c = nbytes(1, 1, 4, 4), nbytes(1, 2, 4, 4), nbytes(1, 4, 4, 4), nbytes(1, 1, 4, 4)
    m = measure_both(Chain(), torch.rand(1, 1, 4, 4))
    assert m.scheduled == a + b
    assert m.eager == x + a + b + c  # forward's x, a, b all alive while conv3 runs
    assert m.eager_overhead == x + c + a + b - (a + b)


def test_residual_add_by_hand():
    t = nbytes(1, 2, 4, 4)
    # x stays live until the add: step 1 (conv2) holds x + c1 + c2
    check(Residual(), (1, 2, 4, 4), 3 * t, 1)
    p = estimate_peak_memory(Residual(), (1, 2, 4, 4))
    assert p.timeline == (2 * t, 3 * t, 3 * t)
    assert "c2" in p.pinned  # added to the fixed-width input: c2 cannot be pruned


def test_concat_skip_by_hand():
    x, e, d, c, o = nbytes(1, 1, 4, 4), nbytes(1, 2, 4, 4), nbytes(1, 3, 4, 4), nbytes(1, 5, 4, 4), nbytes(1, 1, 4, 4)
    assert (x + e, e + d, e + d + c, c + o) == (192, 320, 640, 384)
    check(ConcatSkip(), (1, 1, 4, 4), e + d + c, 2)
    g = next(g for g in estimate_peak_memory(ConcatSkip(), (1, 1, 4, 4)).groups if g.step == 2)
    per_ch = nbytes(1, 1, 4, 4)  # one channel of a 4x4 map
    assert g.channel_bytes() == {"enc": 2 * per_ch, "dec": 2 * per_ch}  # own output + its copy in cat
    assert g.fixed_bytes == 0 and g.bytes == 2 * per_ch * 2 + 2 * per_ch * 3


def test_inplace_relu_allocates_nothing():
    x, a, b = nbytes(1, 1, 4, 4), nbytes(1, 4, 4, 4), nbytes(1, 1, 4, 4)
    check(ReluNet(inplace=True), (1, 1, 4, 4), x + a, 0)  # (x+a, a, a+b) = (320, 256, 320)
    check(ReluNet(inplace=False), (1, 1, 4, 4), 2 * a, 1)  # relu output is a second 256 bytes


def test_view_shares_storage():
    x, a = nbytes(1, 2, 4, 4), nbytes(1, 4, 4, 4)
    # conv: x + a (384); view: a (256); mul: a + product (512) -- a view would add another 256
    check(ViewNet(), (1, 2, 4, 4), 2 * a, 2)
    assert estimate_peak_memory(ViewNet(), (1, 2, 4, 4)).timeline == (x + a, a, 2 * a)


def test_dtype_halves_float16():
    p32 = estimate_peak_memory(Chain(), (1, 1, 8, 8))
    p16 = estimate_peak_memory(Chain(), (1, 1, 8, 8), dtype=torch.float16)
    assert p16.peak_bytes * 2 == p32.peak_bytes
    assert all(t.dtype == torch.float16 for t in p16.live_at_peak)


def test_two_inputs_and_tensor_inputs():
    class Two(nn.Module):
        def forward(self, x, y):
            return x * 2 + y

    x, y = torch.rand(1, 2, 4, 4), torch.rand(1, 2, 4, 4)
    p = estimate_peak_memory(Two(), (x, y))
    t = nbytes(1, 2, 4, 4)
    # both inputs are live from step 0: mul holds x, y, x*2; add holds y, x*2, out
    assert p.timeline == (3 * t, 3 * t) and p.peak_bytes == 3 * t
    assert measure_peak_memory(Two(), (x, y)) == p.peak_bytes


NETS = [
    ("sid_unet", {"width": 0.25}, (1, 3, 30, 44)),
    ("res_unet", {"width": 0.25}, (1, 3, 30, 30)),
    ("edsr", {"num_feat": 16, "num_block": 2, "upscale": 2}, (1, 3, 12, 12)),
    ("msrresnet", {"num_feat": 16, "num_block": 2, "upscale": 4}, (1, 3, 10, 10)),
    ("rcan", {"num_feat": 16, "num_group": 2, "num_block": 2, "squeeze_factor": 4, "upscale": 2}, (1, 3, 12, 12)),
    ("rrdbnet", {"num_feat": 16, "num_block": 2, "num_grow_ch": 8, "scale": 4}, (1, 3, 10, 10)),
]


@pytest.mark.parametrize("name,kw,shape", NETS, ids=[n[0] for n in NETS])
def test_estimate_equals_scheduled_measurement(name, kw, shape):
    model = build_arch(name, **kw)
    p = estimate_peak_memory(model, shape)
    m = measure_both(model, torch.rand(shape))
    assert p.peak_bytes == m.scheduled
    assert m.eager >= m.scheduled
    assert max(p.timeline) == p.peak_bytes == sum(t.bytes for t in p.live_at_peak)


def test_full_sid_unet_2k_on_meta_matches_formula():
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    model = build_arch("sid_unet")
    p = estimate_peak_memory(model, (1, 3, 1080, 2048))
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    # peak at the last decoder concat: cat (64 ch) + skip e1 (32) + up1 output (32), on the
    # 1088-row padded map, plus the input kept for the global residual
    assert p.peak_bytes == nbytes(1, 128, 1088, 2048) + nbytes(1, 3, 1080, 2048)
    assert p.steps[p.peak_step].op == "cat"
    assert grown_mb < 500  # a real forward would need > 1.1 GB
    assert next(model.parameters()).device.type == "cpu" and model.training


def test_caller_model_untouched():
    model = Chain().train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    estimate_peak_memory(model, torch.rand(1, 1, 4, 4))
    measure_both(model, torch.rand(1, 1, 4, 4))
    assert model.training
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


class DataDependent(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.inner = Gate()

    def forward(self, x):
        return self.inner(x)


class Gate(nn.Module):
    def forward(self, x):
        if x.mean() > 0:
            return x * 2
        return x


def test_untraceable_model_gets_clear_error():
    with pytest.raises(TraceError) as info:
        estimate_peak_memory(DataDependent(), (1, 3, 8, 8))
    msg = str(info.value)
    assert isinstance(info.value, RuntimeError)
    assert "'inner' (Gate)" in msg and "if x.mean() > 0" in msg
    assert "data-dependent" in msg and "static" in msg


@pytest.mark.parametrize("bad", ["1x3x8x8", (1, 0, 8), [], None, (torch.rand(2), 3)])
def test_bad_inputs_rejected(bad):
    with pytest.raises((TypeError, ValueError), match="example_inputs|shape|input"):
        estimate_peak_memory(Chain(), bad)


def test_bad_arguments_rejected():
    with pytest.raises(TypeError, match="nn.Module"):
        estimate_peak_memory(lambda x: x, (1, 1, 4, 4))
    with pytest.raises(TypeError, match="dtype"):
        estimate_peak_memory(Chain(), (1, 1, 4, 4), dtype="half")
    with pytest.raises(ValueError, match="mode"):
        measure_peak_memory(Chain(), torch.rand(1, 1, 4, 4), mode="fast")
    with pytest.raises(ValueError, match="real tensors"):
        measure_peak_memory(Chain(), (1, 1, 4, 4))
