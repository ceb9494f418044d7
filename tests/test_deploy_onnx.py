"""ONNX export of pruned models checked against ONNX Runtime; ONNX Runtime's real peak memory."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from ir_prune_plugin import MOSPOptions, MOSPPruner, SLSOptions, SLSPruner, check_nm, estimate_peak_memory
from ir_prune_plugin.archs import build_arch
from ir_prune_plugin.channels.compactor import Compactor
from ir_prune_plugin.deploy.onnx_export import OnnxExportError, OnnxMismatchError, export_onnx, ort_session
from ir_prune_plugin.deploy.ort_memory import peak_rss
from ir_prune_plugin.sparsity import FitOptions

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")


def _ort_equals_torch(model: nn.Module, path, hw: tuple[int, int]) -> float:
    x = torch.rand(1, 3, *hw)
    session = ort_session(path)
    got = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
    with torch.no_grad():
        return float(np.abs(got - model(x).numpy()).max())


@pytest.mark.slow  # the dynamo exporter takes ~30-120 s here; the SLS EDSR test is the fast path
def test_sid_unet_with_compactors_after_mosp(tmp_path):
    torch.manual_seed(0)
    model = build_arch("sid_unet", width=0.125).eval()
    nn.init.normal_(model.out.weight, std=0.2)  # the zero-initialised head would make the output the input
    pruned = MOSPPruner(model, torch.rand(2, 3, 32, 32), 0.6,
                        options=MOSPOptions(memory_input_size=(1, 3, 64, 64), min_channels=1,
                                            outer_stride=2 ** 13, compactors=True)).prune()
    assert any(isinstance(m, Compactor) for m in pruned.modules())
    res = export_onnx(pruned, tmp_path / "unet.onnx", torch.rand(1, 3, 48, 64))  # dynamo, PyTorch's default
    assert res.export_hw == (49, 65) and set(res.max_abs_diff) == {(49, 65), (48, 64)}
    assert max(res.max_abs_diff.values()) <= 1e-4
    assert _ort_equals_torch(pruned, res.path, (40, 88)) <= 1e-4  # a third size: H and W are dynamic


def test_sls_edsr_exports_nm_layers_as_dense_weights_with_zeros(tmp_path):
    import onnx
    from onnx import numpy_helper

    torch.manual_seed(0)
    model = build_arch("edsr", num_feat=16, num_block=2, upscale=2)
    x = torch.rand(2, 3, 16, 16)
    sls = SLSPruner(model, x, 0.4, M=8, options=SLSOptions(search_steps=4, refresh_every=2))
    g = torch.Generator().manual_seed(0)
    sls.fit([(torch.rand(2, 3, 16, 16, generator=g), torch.rand(2, 3, 32, 32, generator=g))], 4,
            FitOptions(lr=1e-3, progress=False))
    nm = sls.finalize().eval()
    plan = check_nm(nm).plan
    res = export_onnx(nm, tmp_path / "edsr.onnx", torch.rand(1, 3, 20, 24), exporter="torchscript")
    assert max(res.max_abs_diff.values()) <= 1e-4
    weights = [numpy_helper.to_array(t) for t in onnx.load(str(res.path)).graph.initializer]
    zeros = sum(int((w == 0).sum()) for w in weights if w.ndim == 4)
    expected = sum(int((dict(nm.named_modules())[name].weight == 0).sum()) for name in plan)
    assert zeros >= expected > 0  # every masked weight is an exact zero in the file


def _drunet() -> nn.Module:
    from spandrel.architectures.DRUNet import DRUNet
    return DRUNet(in_nc=3, out_nc=3, nc=[8, 16, 32, 64], nb=1)


def _plksr() -> nn.Module:
    from spandrel.architectures.PLKSR import PLKSR
    return PLKSR(dim=16, n_blocks=2, upscaling_factor=2, kernel_size=7, split_ratio=0.25)


@pytest.mark.parametrize("build, exporter, compactors", [
    (_drunet, "torchscript", True), pytest.param(_plksr, "dynamo", False, marks=pytest.mark.slow)],
    ids=["drunet", "plksr"])
def test_modern_archs_pruned_by_mosp(tmp_path, build, exporter, compactors):
    pytest.importorskip("spandrel")
    torch.manual_seed(0)
    model = build().eval()
    x = torch.rand(1, 3, 32, 32)
    pruner = MOSPPruner(model, x, 0.85, options=MOSPOptions(memory_input_size=(1, 3, 48, 48), min_channels=1))
    pruned = pruner.prune()
    assert estimate_peak_memory(pruned, (1, 3, 48, 48)).peak_bytes <= pruner.budget_bytes  # really pruned
    kept = sum(p.numel() for n, p in pruned.named_parameters() if not n.startswith("compactors."))
    assert kept < sum(p.numel() for p in model.parameters())   # compactors can outweigh a 15 % cut
    assert any(isinstance(m, Compactor) for m in pruned.modules()) == compactors
    res = export_onnx(pruned, tmp_path / "net.onnx", x, exporter=exporter)
    assert max(res.max_abs_diff.values()) <= 1e-4
    # DRUNet only runs at multiples of 8 (exported at the example size), PLKSR at any size
    assert res.export_hw == ((32, 32) if compactors else (33, 33))
    assert _ort_equals_torch(pruned, res.path, (48, 64)) <= 1e-4


def test_safmn_adaptive_pooling_exports_at_a_fixed_size_only(tmp_path):
    pytest.importorskip("spandrel")
    from spandrel.architectures.SAFMN import SAFMN

    torch.manual_seed(0)
    model = SAFMN(dim=8, n_blocks=1, ffn_scale=2.0, upscaling_factor=2).eval()
    x = torch.rand(1, 3, 32, 48)
    with pytest.raises(OnnxExportError, match="SAFMN.*adaptive pooling.*dynamic_hw=False"):
        export_onnx(model, tmp_path / "dyn.onnx", x, exporter="torchscript")
    res = export_onnx(model, tmp_path / "fixed.onnx", x, exporter="torchscript", dynamic_hw=False)
    assert res.export_hw == (32, 48) and max(res.max_abs_diff.values()) <= 1e-4
    assert ort_session(res.path).get_inputs()[0].shape == [1, 3, 32, 48]  # static: this size only


def test_bad_arguments_and_unexportable_model(tmp_path):
    net = nn.Conv2d(3, 3, 3, padding=1)
    x = torch.rand(1, 3, 8, 8)
    with pytest.raises(ValueError, match=r"\.onnx"):
        export_onnx(net, tmp_path / "net.pt", x)
    with pytest.raises(ValueError, match="does not exist"):
        export_onnx(net, tmp_path / "missing" / "net.onnx", x)
    with pytest.raises(ValueError, match="exporter"):
        export_onnx(net, tmp_path / "net.onnx", x, exporter="tf")
    with pytest.raises(ValueError, match="image batch"):
        export_onnx(net, tmp_path / "net.onnx", torch.rand(3, 8, 8))
    with pytest.raises(TypeError, match="nn.Module"):
        export_onnx(lambda t: t, tmp_path / "net.onnx", x)

    class SizeSpecific(nn.Module):  # branches on the width: a graph traced at one size is wrong at others
        def forward(self, t: torch.Tensor) -> torch.Tensor:
            return t * 2 if t.shape[-1] % 2 else t + 1

    with pytest.raises(OnnxMismatchError, match="differs from PyTorch"):
        export_onnx(SizeSpecific(), tmp_path / "s.onnx", x, exporter="torchscript")

    class Unexportable(nn.Module):  # kthvalue has no ONNX translation
        def forward(self, t: torch.Tensor) -> torch.Tensor:
            return torch.kthvalue(t, 2, -1, keepdim=True)[0] + t

    with pytest.raises(OnnxExportError, match="Unexportable.*kthvalue"):
        export_onnx(Unexportable(), tmp_path / "u.onnx", x, exporter="torchscript")


def test_ort_peak_memory_in_a_subprocess(tmp_path):
    net = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 3, 3, padding=1)).eval()
    res = export_onnx(net, tmp_path / "small.onnx", torch.rand(1, 3, 16, 16), exporter="torchscript")
    r = peak_rss("onnxruntime", res.path, (256, 256), repeats=1, arena=False)
    out_bytes = 3 * 256 * 256 * 4
    assert r.first_rise >= out_bytes and r.rise >= out_bytes  # the output, at least, is new memory
    assert r.rise < 64 * 2 ** 20 and r.latency_s > 0
    with pytest.raises(ValueError, match="engine"):
        peak_rss("tensorrt", res.path, (8, 8))
    with pytest.raises(ValueError, match="does not exist"):
        peak_rss("onnxruntime", tmp_path / "none.onnx", (8, 8))


def test_irprune_export_command(tmp_path, capsys):
    from ir_prune_plugin.cli import main

    out = tmp_path / "unet.onnx"
    assert main(["export", "--arch", "sid_unet", "--arch-args", '{"width": 0.125}', "--out", str(out),
                 "--size", "32x48", "--exporter", "torchscript", "--measure-size", "64x96"]) == 0
    printed = capsys.readouterr().out
    assert out.is_file() and "max |diff|" in printed and "MEMORY_PLAN" in printed and "RSS rise" in printed
    assert main(["export", "--arch", "sid_unet", "--out", str(tmp_path / "unet.pt")]) == 2
    assert ".onnx" in capsys.readouterr().err
