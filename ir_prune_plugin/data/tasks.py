"""Paired restoration datasets (denoising, super-resolution) over the embedded photos.

Items follow BasicSR's convention: ``{'lq': CHW float32 in [0,1], 'gt': ..., 'lq_path': str,
'gt_path': str}``. Training items are random patches with flips, deterministic per
``(seed, index)``; validation items are whole images (optionally centre-cropped) with fixed noise.
"""
from __future__ import annotations

import functools
import zlib
from typing import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from .degrade import add_noise, bicubic_down, check_scale, check_sigma, mod_crop
from .images import load_photo, split_names


def _to_float(img: np.ndarray) -> np.ndarray:
    return img.astype(np.float32) / 255.0


def _chw(img: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)))


def _center_crop(img: np.ndarray, size: int | None, multiple: int = 1) -> np.ndarray:
    if size is None:
        return img
    h, w = img.shape[:2]
    ch, cw = min(size, h) // multiple * multiple, min(size, w) // multiple * multiple
    top, left = (h - ch) // 2 // multiple * multiple, (w - cw) // 2 // multiple * multiple
    return img[top:top + ch, left:left + cw]


def _augment(rng: np.random.Generator, *imgs: np.ndarray) -> list[np.ndarray]:
    hflip, vflip, rot = rng.random(3) < 0.5
    out = []
    for im in imgs:
        if hflip:
            im = im[:, ::-1]
        if vflip:
            im = im[::-1]
        if rot:
            im = im.transpose(1, 0, 2)
        out.append(im)
    return out


@functools.lru_cache(maxsize=64)
def _lr_image(name: str, scale: int) -> np.ndarray:
    return bicubic_down(mod_crop(_to_float(load_photo(name)), scale), scale)


class _PairedPhotos(Dataset):
    def __init__(self, split: str, patch: int, length: int | None, seed: int,
                 val_size: int | None, names: Sequence[str] | None) -> None:
        self.names = tuple(names) if names is not None else split_names(split)
        if split not in ("train", "val"):
            raise ValueError(f"split must be 'train' or 'val', got {split!r}")
        if not self.names:
            raise ValueError("no images selected (names is empty)")
        if patch <= 0:
            raise ValueError(f"patch must be a positive int, got {patch!r}")
        self.split, self.patch, self.seed, self.val_size = split, int(patch), int(seed), val_size
        self.length = int(length) if length is not None else (1000 if split == "train" else len(self.names))

    def __len__(self) -> int:
        return self.length if self.split == "train" else len(self.names)

    def _rng(self, index: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, index])

    def _item(self, lq: np.ndarray, gt: np.ndarray, name: str) -> dict:
        return {"lq": _chw(lq), "gt": _chw(gt), "lq_path": name, "gt_path": name}


class DenoiseDataset(_PairedPhotos):
    """Gaussian denoising pairs (sigma on the 0-255 scale) from the embedded photos."""

    def __init__(self, split: str = "train", sigma: float = 25.0, patch: int = 64, *,
                 length: int | None = None, seed: int = 0, val_size: int | None = None,
                 names: Sequence[str] | None = None) -> None:
        self.sigma = check_sigma(sigma)
        super().__init__(split, patch, length, seed, val_size, names)

    def __getitem__(self, index: int) -> dict:
        if self.split == "val":
            name = self.names[index]
            gt = _center_crop(_to_float(load_photo(name)), self.val_size)
            return self._item(add_noise(gt, self.sigma, zlib.crc32(name.encode()) + self.seed), gt, name)
        rng = self._rng(index)
        name = self.names[index % len(self.names)]
        img = load_photo(name)
        h, w = img.shape[:2]
        p = min(self.patch, h, w)
        top, left = rng.integers(0, h - p + 1), rng.integers(0, w - p + 1)
        (gt,) = _augment(rng, _to_float(img[top:top + p, left:left + p]))
        gt = np.ascontiguousarray(gt)
        return self._item(add_noise(gt, self.sigma, int(rng.integers(2 ** 31))), gt, name)


class SRDataset(_PairedPhotos):
    """Bicubic x``scale`` super-resolution pairs; ``patch`` is the HR patch size."""

    def __init__(self, split: str = "train", scale: int = 2, patch: int = 64, *,
                 length: int | None = None, seed: int = 0, val_size: int | None = None,
                 names: Sequence[str] | None = None) -> None:
        self.scale = check_scale(scale)
        if patch % self.scale:
            raise ValueError(f"patch ({patch}) must be a multiple of scale ({scale})")
        super().__init__(split, patch, length, seed, val_size, names)

    def __getitem__(self, index: int) -> dict:
        s = self.scale
        if self.split == "val":
            name = self.names[index]
            hr = mod_crop(_to_float(load_photo(name)), s)
            if self.val_size is None:
                return self._item(_lr_image(name, s), hr, name)
            gt = _center_crop(hr, self.val_size, multiple=s)
            return self._item(bicubic_down(gt, s), gt, name)
        rng = self._rng(index)
        name = self.names[index % len(self.names)]
        hr, lr = mod_crop(_to_float(load_photo(name)), s), _lr_image(name, s)
        lp = min(self.patch // s, lr.shape[0], lr.shape[1])
        top, left = rng.integers(0, lr.shape[0] - lp + 1), rng.integers(0, lr.shape[1] - lp + 1)
        lq = lr[top:top + lp, left:left + lp]
        gt = hr[top * s:(top + lp) * s, left * s:(left + lp) * s]
        lq, gt = _augment(rng, lq, gt)
        return self._item(np.ascontiguousarray(lq), np.ascontiguousarray(gt), name)
