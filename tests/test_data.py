import numpy as np
import pytest
import torch

from ir_prune_plugin.data import (TRAIN_IMAGES, VAL_IMAGES, DenoiseDataset, SRDataset, load_folder,
                                  load_photo, split_names)


def test_split_is_fixed_and_disjoint():
    assert set(split_names("train")).isdisjoint(split_names("val"))
    assert split_names("train") == TRAIN_IMAGES and split_names("val") == VAL_IMAGES
    for name in TRAIN_IMAGES + VAL_IMAGES:
        img = load_photo(name)
        assert img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3 and min(img.shape[:2]) >= 256


def test_denoise_items_are_deterministic_and_noisy_at_sigma():
    ds = DenoiseDataset("train", sigma=25, patch=64, length=8, seed=3)
    a, b = ds[5], ds[5]
    assert torch.equal(a["lq"], b["lq"]) and torch.equal(a["gt"], b["gt"])
    assert not torch.equal(ds[4]["gt"], ds[5]["gt"])
    assert a["lq"].shape == a["gt"].shape == (3, 64, 64)
    assert 0 <= a["lq"].min() and a["lq"].max() <= 1
    val = DenoiseDataset("val", sigma=25, val_size=128)
    item = val[0]
    noise = (item["lq"] - item["gt"]) * 255
    assert 18 < float(noise.std()) < 27  # sigma=25, a little less where clipping at 0/1 bites
    assert torch.equal(val[0]["lq"], DenoiseDataset("val", sigma=25, val_size=128)[0]["lq"])


def test_sr_pairs_are_aligned_bicubic_downscales():
    ds = SRDataset("train", scale=2, patch=48, length=4)
    item = ds[1]
    assert item["lq"].shape == (3, 24, 24) and item["gt"].shape == (3, 48, 48)
    down = torch.nn.functional.avg_pool2d(item["gt"].unsqueeze(0), 2).squeeze(0)
    assert float((down - item["lq"]).abs().mean()) < 0.03  # the LR patch is the HR patch, downscaled
    val = SRDataset("val", scale=4, val_size=128)
    assert val[0]["gt"].shape == (3, 128, 128) and val[0]["lq"].shape == (3, 32, 32)


def test_bad_task_parameters_are_named():
    with pytest.raises(ValueError, match="sigma must be in .* got 0"):
        DenoiseDataset("train", sigma=0)
    with pytest.raises(ValueError, match="sigma must be in .* got 300"):
        DenoiseDataset("val", sigma=300)
    with pytest.raises(ValueError, match="scale must be one of .* got 5"):
        SRDataset("train", scale=5)
    with pytest.raises(ValueError, match="split must be 'train' or 'val', got 'test'"):
        DenoiseDataset("test")
    with pytest.raises(ValueError, match="unknown embedded photo 'lenna'"):
        load_photo("lenna")


def test_image_folders(tmp_path):
    with pytest.raises(ValueError, match="contains no images"):
        load_folder(tmp_path)
    with pytest.raises(ValueError, match="does not exist"):
        load_folder(tmp_path / "missing")
    from PIL import Image

    Image.fromarray(load_photo("chelsea")).save(tmp_path / "cat.png")
    (imgs,) = load_folder(tmp_path)
    assert np.array_equal(imgs, load_photo("chelsea"))


def test_standard_sets_load(shared_data):
    imgs = load_folder(shared_data / "Set5" / "HR")
    assert len(imgs) == 5
