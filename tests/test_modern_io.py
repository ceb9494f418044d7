"""save_pruned / load_pruned for a user's own model class (not in our registry)."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from ir_prune_plugin import MOSPPruner, SLSPruner
from ir_prune_plugin.channels.mosp import MOSPOptions
from ir_prune_plugin.io import load_pruned, save_pruned

X = torch.rand(1, 3, 16, 16)


class MyUNet(nn.Module):
    """A user's net: a two-level U-Net with a concat skip; constructor args kept as attributes."""

    def __init__(self, width: int = 8, out_ch: int = 3, *, act: str = "relu") -> None:
        super().__init__()
        self.width, self.out_ch, self.act = width, out_ch, act
        self.enc = nn.Sequential(nn.Conv2d(3, width, 3, padding=1), nn.ReLU(inplace=True))
        self.down = nn.Sequential(nn.Conv2d(width, 2 * width, 3, stride=2, padding=1), nn.ReLU(),
                                  nn.Conv2d(2 * width, 2 * width, 3, padding=1), nn.ReLU())
        self.up = nn.ConvTranspose2d(2 * width, width, 2, stride=2)
        self.dec = nn.Sequential(nn.Conv2d(2 * width, width, 3, padding=1), nn.ReLU(),
                                 nn.Conv2d(width, out_ch, 3, padding=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        e = self.enc(x)
        return self.dec(torch.cat([self.up(self.down(e)), e], dim=1)) + x


def _check_roundtrip(model: nn.Module, path: Path, **load_kw) -> nn.Module:
    save_pruned(model, path)
    assert torch.load(path, weights_only=True)["arch"]["class"].endswith("test_modern_io:MyUNet")
    loaded = load_pruned(path, **load_kw).eval()
    with torch.no_grad():
        assert torch.equal(model.eval()(X), loaded(X))
    assert {k: v.shape for k, v in loaded.state_dict().items()} == {k: v.shape for k, v in model.state_dict().items()}
    return loaded


def test_user_class_roundtrips_after_mosp(tmp_path: Path) -> None:
    net = MyUNet(width=12).eval()
    small = MOSPPruner(net, X, 0.6, options=MOSPOptions(memory_input_size=(1, 3, 32, 32), min_channels=2)).prune(
        progress=False)
    assert small.irprune_compactors and small.irprune_init_kwargs == {"width": 12, "out_ch": 3, "act": "relu"}
    loaded = _check_roundtrip(small, tmp_path / "mosp.pt")
    assert loaded.irprune_compactors == small.irprune_compactors


def test_user_class_roundtrips_after_sls(tmp_path: Path) -> None:
    nm = SLSPruner(MyUNet(width=8), X, 0.5, M=4).finalize()
    loaded = _check_roundtrip(nm, tmp_path / "sls.pt")
    assert loaded.irprune_nm_plan == nm.irprune_nm_plan and nm.irprune_nm_plan


def test_factory_and_clear_errors(tmp_path: Path) -> None:
    nm = SLSPruner(MyUNet(width=8), X, 0.5, M=4).finalize()
    path = tmp_path / "f.pt"
    save_pruned(nm, path, init_kwargs={"width": 8})
    _check_roundtrip(nm, path, factory=lambda: MyUNet(width=8))
    with pytest.raises(ValueError, match="cannot rebuild .*MyUNet with the recorded arguments"):
        save_pruned(nm, path, init_kwargs={"width": 8, "nope": 1})
        load_pruned(path)

    class Local(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x

    with pytest.raises(ValueError, match="defined inside a function"):
        save_pruned(Local(), tmp_path / "local.pt")
    save_pruned(nm, path, init_kwargs={"width": 8})
    with pytest.raises(ValueError, match="does not rebuild"):
        load_pruned(path, factory=lambda: nn.Sequential(nn.Conv2d(3, 3, 1)))
