"""Degradations for the embedded tasks, through BasicSR's own utilities (seeded, reproducible)."""
from __future__ import annotations

import numpy as np

from ..compat import apply_basicsr_shims

SCALES = (2, 3, 4)


def check_sigma(sigma: float) -> float:
    """Validate a noise level in the 0-255 scale."""
    if isinstance(sigma, bool) or not isinstance(sigma, (int, float)):
        raise TypeError(f"sigma must be a number (0-255 scale), got {sigma!r}")
    if not 0 < sigma <= 100:
        raise ValueError(f"sigma must be in (0, 100] on the 0-255 scale, got {sigma!r} (25 or 50 are usual)")
    return float(sigma)


def check_scale(scale: int) -> int:
    """Validate a super-resolution scale factor."""
    if scale not in SCALES or isinstance(scale, bool):
        raise ValueError(f"scale must be one of {SCALES}, got {scale!r}")
    return int(scale)


def add_noise(img: np.ndarray, sigma: float, seed: int) -> np.ndarray:
    """Additive Gaussian noise (BasicSR's ``add_gaussian_noise``) on an HWC float image in [0,1]."""
    apply_basicsr_shims()
    from basicsr.data.degradations import add_gaussian_noise  # basicsr: heavy, imported on first use

    state = np.random.get_state()  # BasicSR draws from numpy's global RNG: seed it locally
    try:
        np.random.seed(seed % (2 ** 32))
        return add_gaussian_noise(img, sigma=sigma, clip=True, rounds=False).astype(np.float32)
    finally:
        np.random.set_state(state)


def bicubic_down(img: np.ndarray, scale: int) -> np.ndarray:
    """MATLAB-style bicubic downscaling (BasicSR's ``imresize``) of an HWC float image in [0,1]."""
    apply_basicsr_shims()
    from basicsr.utils.matlab_functions import imresize  # basicsr: heavy, imported on first use

    return np.clip(imresize(img, 1.0 / scale), 0, 1).astype(np.float32)


def mod_crop(img: np.ndarray, scale: int) -> np.ndarray:
    """Crop H and W down to multiples of ``scale``."""
    h, w = img.shape[:2]
    return img[: h - h % scale, : w - w % scale]
