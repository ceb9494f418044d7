"""Real colour photographs that ship inside scikit-image (no download), with a fixed split."""
from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

# Public-domain / CC0 colour photos bundled in skimage/data. The split is fixed by name.
TRAIN_IMAGES = ("astronaut", "coffee", "immunohistochemistry", "hubble_deep_field", "retina",
                "motorcycle_left", "motorcycle_right")
VAL_IMAGES = ("chelsea", "rocket")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


@functools.lru_cache(maxsize=None)
def load_photo(name: str) -> np.ndarray:
    """One bundled photo as an H x W x 3 uint8 RGB array (read-only)."""
    import skimage.data as sd

    if name in ("motorcycle_left", "motorcycle_right"):
        left, right, _ = sd.stereo_motorcycle()
        img = left if name == "motorcycle_left" else right
    elif name in TRAIN_IMAGES + VAL_IMAGES:
        img = getattr(sd, name)()
    else:
        raise ValueError(f"unknown embedded photo {name!r}; known: {', '.join(TRAIN_IMAGES + VAL_IMAGES)}")
    img = np.ascontiguousarray(img[..., :3])
    img.setflags(write=False)
    return img


def split_names(split: str) -> tuple[str, ...]:
    """Names of the embedded photos in ``split`` ('train' or 'val')."""
    if split == "train":
        return TRAIN_IMAGES
    if split == "val":
        return VAL_IMAGES
    raise ValueError(f"split must be 'train' or 'val', got {split!r}")


def load_split(split: str) -> list[np.ndarray]:
    """All embedded photos of a split, in a fixed order."""
    return [load_photo(n) for n in split_names(split)]


def load_folder(folder: str | Path) -> list[np.ndarray]:
    """All images (png/jpg/bmp/tif) of a folder as RGB uint8 arrays, sorted by file name."""
    from PIL import Image  # Pillow: only for writing images

    path = Path(folder)
    if not path.is_dir():
        raise ValueError(f"image folder {str(path)!r} does not exist or is not a directory")
    files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise ValueError(f"image folder {str(path)!r} contains no images "
                         f"(looked for {', '.join(IMAGE_SUFFIXES)})")
    return [np.asarray(Image.open(f).convert("RGB")) for f in files]
