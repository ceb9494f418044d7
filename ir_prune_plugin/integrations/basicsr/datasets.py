"""BasicSR dataset classes over the embedded photo tasks of :mod:`ir_prune_plugin.data`.

Options (YAML ``datasets.<phase>``): ``sigma`` (denoise, 0-255 scale), ``scale`` (SR; BasicSR
copies the top-level ``scale`` in), ``gt_size`` (training patch, GT pixels), ``length`` (items per
epoch for training), ``seed``, ``val_size`` (centre crop of validation images), ``names``.
Items are BasicSR's ``{'lq', 'gt', 'lq_path', 'gt_path'}`` dicts.
"""
from __future__ import annotations

from typing import Any, Mapping

from torch.utils.data import Dataset

from ...data import DenoiseDataset, SRDataset


def _common(opt: Mapping[str, Any]) -> dict[str, Any]:
    phase = opt.get("phase", "train")
    split = "train" if phase == "train" else "val"
    names = opt.get("names")
    return {"split": split, "patch": int(opt.get("gt_size", 64)), "length": opt.get("length"),
            "seed": int(opt.get("seed", 0)), "val_size": opt.get("val_size"),
            "names": tuple(names) if names is not None else None}


class IRPruneDenoiseDataset(Dataset):
    """Gaussian denoising pairs from the embedded photos (``type: IRPruneDenoiseDataset``)."""

    def __init__(self, opt: Mapping[str, Any]) -> None:
        super().__init__()
        self.opt = opt
        self.data = DenoiseDataset(sigma=float(opt.get("sigma", 25)), **_common(opt))

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, index: int) -> dict:
        return self.data[index]


class IRPruneSRDataset(Dataset):
    """Bicubic super-resolution pairs from the embedded photos (``type: IRPruneSRDataset``)."""

    def __init__(self, opt: Mapping[str, Any]) -> None:
        super().__init__()
        self.opt = opt
        if "scale" not in opt:
            raise ValueError("IRPruneSRDataset needs 'scale' (set the top-level scale: 2|4 in the YAML)")
        self.data = SRDataset(scale=int(opt["scale"]), **_common(opt))

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, index: int) -> dict:
        return self.data[index]
