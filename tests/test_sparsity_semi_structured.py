"""2:4 export: layout (CPU-checkable), reasons per layer, CPU fallback, and the CUDA kernels when present."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from ir_prune_plugin.archs import build_arch
from ir_prune_plugin.sparsity import nm_mask
from ir_prune_plugin.sparsity.semi_structured import (_out_hw, conv_weight_2d, im2col, semi_structured_plan,
                                                      to_semi_structured, why_not_semi_structured)


def _two_four(model: nn.Module) -> nn.Module:
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.Conv2d) and m.in_channels % 4 == 0:
                m.weight.mul_(nm_mask(m.weight, 2, 4))
    return model


@pytest.mark.parametrize("stride,padding,dilation", [(1, 1, 1), (2, 0, 1), (1, 2, 2)])
def test_permuted_im2col_matmul_equals_conv(stride, padding, dilation):
    conv = nn.Conv2d(8, 6, 3, stride=stride, padding=padding, dilation=dilation)
    x = torch.randn(2, 8, 11, 9)
    oh, ow = _out_hw(x, conv)
    y = (conv_weight_2d(conv.weight) @ im2col(x, conv)).view(6, 2, oh, ow).transpose(0, 1)
    torch.testing.assert_close(y + conv.bias.view(1, -1, 1, 1), conv(x), atol=1e-5, rtol=1e-5)


def test_nm_groups_are_2to4_blocks_of_the_gemm_weight():
    conv = _two_four(nn.Sequential(nn.Conv2d(8, 4, 3)))[0]
    w2 = conv_weight_2d(conv.weight)
    assert ((w2.view(-1, 4) != 0).sum(1) <= 2).all()
    assert ((conv.weight.reshape(4, -1).view(-1, 4) != 0).sum(1) > 2).any()  # W.view(Cout,-1) is not N:M


def test_plan_reasons():
    net = _two_four(nn.Sequential(nn.Conv2d(3, 32, 3), nn.Conv2d(32, 32, 3), nn.Conv2d(32, 32, 3),
                                  nn.ConvTranspose2d(32, 8, 2, 2)))
    with torch.no_grad():
        net[2].weight.fill_(1.0)
    plan = semi_structured_plan(net)
    assert plan["1"] == "ok"
    assert "not divisible by 4" in plan["0"] and "not 2:4" in plan["2"] and "ConvTranspose2d" in plan["3"]
    assert "dtype" in semi_structured_plan(net, torch.float32)["1"]


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU fallback")
def test_cpu_returns_model_unchanged_with_reason():
    net = nn.Sequential(nn.Conv2d(32, 32, 3))
    assert "CUDA" in why_not_semi_structured()
    with pytest.warns(RuntimeWarning, match="returned unchanged"):
        assert to_semi_structured(net) is net


def _sm80() -> bool:
    return torch.cuda.is_available() and torch.cuda.get_device_capability()[0] >= 8


@pytest.mark.gpu
@pytest.mark.skipif(not _sm80(), reason="needs CUDA with compute capability >= 8.0")
def test_cuda_sparse_matches_masked_dense():
    model = _two_four(build_arch("edsr", num_feat=64, num_block=2, upscale=2)).cuda().half().eval()
    x = torch.rand(1, 3, 32, 32, device="cuda", dtype=torch.half)
    sparse = to_semi_structured(model, x)
    assert sparse is not model
    assert sum(v == "sparse" for v in sparse.irprune_semi_structured.values()) >= 4
    with torch.no_grad():
        torch.testing.assert_close(sparse(x), model(x), atol=1e-2, rtol=1e-3)
