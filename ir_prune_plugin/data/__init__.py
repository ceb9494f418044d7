"""Embedded real-image restoration tasks (photos bundled with scikit-image; nothing downloaded)."""
from .degrade import SCALES, add_noise, bicubic_down, check_scale, check_sigma
from .images import TRAIN_IMAGES, VAL_IMAGES, load_folder, load_photo, load_split, split_names
from .tasks import DenoiseDataset, SRDataset

__all__ = ["SCALES", "TRAIN_IMAGES", "VAL_IMAGES", "DenoiseDataset", "SRDataset", "add_noise",
           "bicubic_down", "check_scale", "check_sigma", "load_folder", "load_photo", "load_split",
           "split_names"]
