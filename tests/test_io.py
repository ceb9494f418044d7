"""save_pruned / load_pruned: round-trips widths, compactors, N:M plans and weights."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch_pruning as tp
from torch import nn
from torch.nn.utils import parametrize

from ir_prune_plugin.archs import SIDUNet, build_arch
from ir_prune_plugin.channels.compactor import insert_compactors
from ir_prune_plugin.channels.tp_graph import prune_channels
from ir_prune_plugin.integrations.torch_pruning import CompactorMagnitudeImportance, tp_kwargs
from ir_prune_plugin.io import FORMAT_VERSION, load_pruned, save_pruned

X = torch.rand(1, 3, 16, 16)


def _randomize(model: nn.Module) -> nn.Module:
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.1)
    return model.eval()


def _roundtrip(model: nn.Module, path: Path) -> nn.Module:
    save_pruned(model, path)
    loaded = load_pruned(path).eval()
    with torch.no_grad():
        assert torch.equal(model(X), loaded(X))
    assert {k: v.shape for k, v in loaded.state_dict().items()} == \
        {k: v.shape for k, v in model.state_dict().items()}
    return loaded


def test_roundtrip_unet_with_compactors_after_metapruner(tmp_path: Path) -> None:
    model = _randomize(insert_compactors(build_arch("res_unet", width=0.25), X))
    pruner = tp.pruner.MetaPruner(model, X, CompactorMagnitudeImportance(), pruning_ratio=0.5,
                                  **tp_kwargs(model, X))
    pruner.step()
    model.eval()
    loaded = _roundtrip(model, tmp_path / "res_unet.pt")
    assert loaded.irprune_compactors == model.irprune_compactors
    assert loaded.get_submodule("compactors.add").out_channels == 4
    assert loaded.get_submodule("block9.block.0").in_channels == 8  # 4 (up1) + 4 (compactor)


def test_roundtrip_edsr_with_pruned_upsampler_and_nm_plan(tmp_path: Path) -> None:
    model = _randomize(build_arch("edsr", num_feat=16, num_block=2, upscale=2))
    model = prune_channels(model, X, {"upsample.1": [0, 3, 9], "conv_first": [2]})
    model.irprune_nm_plan = {"body.0.conv1": (2, 4), "body.1.conv2": (8, 16)}
    loaded = _roundtrip(model, tmp_path / "edsr.pt")
    assert loaded.upsample[0].out_channels == 4 * 13 and loaded.conv_first.out_channels == 15
    assert loaded.irprune_nm_plan == model.irprune_nm_plan
    assert loaded.irprune_arch == model.irprune_arch


def test_file_loads_with_weights_only(tmp_path: Path) -> None:
    model = _randomize(insert_compactors(build_arch("sid_unet", width=0.25), X))
    save_pruned(model, tmp_path / "m.pt")
    raw = torch.load(tmp_path / "m.pt", weights_only=True)
    assert raw["version"] == FORMAT_VERSION and raw["arch"] == {"type": "sid_unet", "width": 0.25}
    assert len(raw["compactors"]) == 4 and "compactors.enc1_3.weight" in raw["state_dict"]


def test_model_without_spec_is_saved_by_class(tmp_path: Path) -> None:
    model = _randomize(SIDUNet(width=0.25))
    save_pruned(model, tmp_path / "m.pt")   # import path + constructor args (tests/test_modern_io.py)
    assert torch.load(tmp_path / "m.pt", weights_only=True)["arch"]["class"] == "ir_prune_plugin.archs.sid_unet:SIDUNet"
    with torch.no_grad():
        assert torch.equal(load_pruned(tmp_path / "m.pt").eval()(X), model(X))
    save_pruned(model, tmp_path / "m.pt", arch={"type": "sid_unet", "width": 0.25})
    with torch.no_grad():
        assert torch.equal(load_pruned(tmp_path / "m.pt").eval()(X), model(X))
    with pytest.raises(ValueError, match="'type'"):
        save_pruned(model, tmp_path / "m.pt", arch={"width": 0.25})


def test_bad_inputs(tmp_path: Path) -> None:
    model = build_arch("sid_unet", width=0.25)
    with pytest.raises(TypeError, match="path"):
        save_pruned(model, 3)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="nn.Module"):
        save_pruned({"a": 1}, tmp_path / "x.pt")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="does not exist"):
        save_pruned(model, tmp_path / "missing" / "x.pt")
    with pytest.raises(ValueError, match="no such file"):
        load_pruned(tmp_path / "none.pt")
    torch.save({"weights": torch.zeros(1)}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not a file written by save_pruned"):
        load_pruned(tmp_path / "other.pt")
    model.irprune_nm_plan = {"enc1.0": (2, "4")}
    with pytest.raises(ValueError, match="irprune_nm_plan"):
        save_pruned(model, tmp_path / "x.pt")


class _Mask(nn.Module):
    def forward(self, w: torch.Tensor) -> torch.Tensor:
        return w * (w.abs() > 0.01)


def test_parametrized_model_must_be_finalized(tmp_path: Path) -> None:
    model = build_arch("sid_unet", width=0.25)
    parametrize.register_parametrization(model.enc1[0], "weight", _Mask())
    with pytest.raises(ValueError, match="parametrizations"):
        save_pruned(model, tmp_path / "x.pt")


def test_roundtrip_keeps_pruned_depthwise_convs_depthwise(tmp_path: Path) -> None:
    pytest.importorskip("spandrel")
    from thirdparty_nets import NETS, build
    model, x = build("nafnet")
    model = prune_channels(_randomize(model), x, {"encoders.0.0.conv1": [0, 8]})   # its depthwise conv2 follows
    dw = model.encoders[0][0].conv2
    assert dw.groups == dw.out_channels < 16
    save_pruned(model, tmp_path / "nafnet.pt", init_kwargs=NETS["nafnet"][0].init_kwargs)
    loaded = load_pruned(tmp_path / "nafnet.pt").eval()
    assert loaded.encoders[0][0].conv2.groups == dw.groups
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))
