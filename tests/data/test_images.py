"""Image folders and preprocess_image (what ``torchship predict`` feeds a model)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from torchship.data import DataConfig, load_data, preprocess_image
from torchship.errors import DataError


def test_gray_folder_sorted_classes_common_size(image_folder):
    ds = load_data(DataConfig(name="imagefolder", path=str(image_folder("L")), val_fraction=0.25))
    assert ds.labels == ["cat", "dog"]
    assert ds.shape == [1, 10, 12]  # the first image's (h, w); the 8x8 ones are resized to it
    assert len(ds.train) + len(ds.val) == 8
    raw = ds.train.x * ds.input["std"][0] + ds.input["mean"][0]
    expected = torch.where(ds.train.y == 0, 40 / 255, 200 / 255)
    assert torch.allclose(raw.mean((1, 2, 3)), expected, atol=1e-4)


def test_rgb_folder_and_resize(image_folder):
    ds = load_data(DataConfig(name="imagefolder", path=str(image_folder("RGB")), resize=16))
    assert ds.shape == [3, 16, 16]
    assert len(ds.input["mean"]) == 3


def test_channels_one_turns_rgb_gray(image_folder):
    ds = load_data(DataConfig(name="imagefolder", path=str(image_folder("RGB")), channels=1, resize=[6, 6]))
    assert ds.shape == [1, 6, 6]


def test_one_color_image_makes_the_folder_rgb(image_folder):
    root = image_folder("L")
    Image.new("RGB", (8, 8), (255, 0, 0)).save(root / "dog" / "red.png")
    assert load_data(DataConfig(name="imagefolder", path=str(root), resize=8)).shape == [3, 8, 8]


def test_jpeg_and_bmp_are_read(tmp_path):
    for i, suffix in enumerate([".jpg", ".jpeg", ".bmp", ".PNG"]):
        (tmp_path / f"c{i % 2}").mkdir(exist_ok=True)
        Image.new("RGB", (5, 5), (i * 60, 0, 0)).save(tmp_path / f"c{i % 2}" / f"img{suffix}")
    (tmp_path / "c0" / "notes.txt").write_text("not an image, ignored")
    ds = load_data(DataConfig(name="imagefolder", path=str(tmp_path), val_fraction=0.0))
    assert len(ds.train) == 4
    assert ds.labels == ["c0", "c1"]


def test_unreadable_image_is_named(image_folder):
    root = image_folder("L")
    (root / "cat" / "broken.png").write_bytes(b"\x89PNG not really")
    with pytest.raises(DataError, match=r"broken\.png is not a readable image"):
        load_data(DataConfig(name="imagefolder", path=str(root)))


def test_empty_folders(tmp_path):
    with pytest.raises(DataError, match="has no class sub-folders"):
        load_data(DataConfig(name="imagefolder", path=str(tmp_path)))
    (tmp_path / "cat").mkdir()
    with pytest.raises(DataError, match=r"cat holds no images"):
        load_data(DataConfig(name="imagefolder", path=str(tmp_path)))
    with pytest.raises(DataError, match="is not a folder"):
        load_data(DataConfig(name="imagefolder", path=str(tmp_path / "missing")))
    with pytest.raises(DataError, match="needs a folder"):
        load_data(DataConfig(name="imagefolder"))


SPEC_GRAY = {
    "shape": [1, 4, 6],
    "dtype": "float32",
    "layout": "image",
    "scale": 1 / 255,
    "mean": [0.5],
    "std": [0.25],
}


def test_preprocess_png_resizes_and_normalizes(tmp_path):
    path = tmp_path / "x.png"
    Image.new("L", (12, 8), 255).save(path)
    x = preprocess_image(path, SPEC_GRAY)
    assert x.shape == (1, 4, 6)
    assert x.dtype == torch.float32
    assert torch.allclose(x, torch.full((1, 4, 6), (1.0 - 0.5) / 0.25))


def test_preprocess_matches_training_normalization(image_folder):
    root = image_folder("RGB", sizes=((8, 8),))
    ds = load_data(DataConfig(name="imagefolder", path=str(root), val_fraction=0.0))
    files = sorted((root / "cat").glob("*.png")) + sorted((root / "dog").glob("*.png"))
    x = torch.stack([preprocess_image(f, ds.input) for f in files])
    order = torch.argsort(ds.train.y, stable=True)
    assert torch.allclose(x, ds.train.x[order], atol=1e-5)


def test_preprocess_gray_png_for_an_rgb_model_and_pil_input(tmp_path):
    spec = {**SPEC_GRAY, "shape": [3, 4, 4], "mean": [0.0, 0.0, 0.0], "std": [1.0, 1.0, 1.0]}
    Image.new("L", (4, 4), 51).save(tmp_path / "g.png")
    x = preprocess_image(tmp_path / "g.png", spec)
    assert x.shape == (3, 4, 4)
    assert torch.allclose(x, torch.full_like(x, 0.2))
    pil = Image.new("RGB", (4, 4), (255, 0, 0))
    assert torch.allclose(preprocess_image(pil, spec)[0], torch.ones(4, 4))


def test_preprocess_npy_uses_the_dataset_scale(tmp_path):
    spec = {**SPEC_GRAY, "shape": [1, 8, 8], "scale": 1 / 16}
    np.save(tmp_path / "d.npy", np.full((8, 8), 16.0))
    assert torch.allclose(preprocess_image(tmp_path / "d.npy", spec), torch.full((1, 8, 8), 2.0))
    np.save(tmp_path / "hwc.npy", np.full((8, 8, 1), 8.0))
    assert torch.allclose(preprocess_image(tmp_path / "hwc.npy", spec), torch.zeros(1, 8, 8))


def test_preprocess_features_npy(tmp_path):
    spec = {
        "shape": [3],
        "dtype": "float32",
        "layout": "features",
        "scale": 1.0,
        "mean": [1, 2, 3],
        "std": [1, 1, 2],
    }
    np.save(tmp_path / "f.npy", np.array([1.0, 3.0, 7.0]))
    assert preprocess_image(tmp_path / "f.npy", spec).tolist() == [0.0, 1.0, 2.0]
    np.save(tmp_path / "short.npy", np.array([1.0, 3.0]))
    with pytest.raises(DataError, match="has 2 features, the model expects 3"):
        preprocess_image(tmp_path / "short.npy", spec)
    with pytest.raises(DataError, match="is not a .npy file"):
        preprocess_image(tmp_path / "f.png", spec)


def test_preprocess_errors_are_one_line(tmp_path):
    with pytest.raises(DataError, match="missing.png is not a readable image"):
        preprocess_image(tmp_path / "missing.png", SPEC_GRAY)
    (tmp_path / "bad.npy").write_bytes(b"nope")
    with pytest.raises(DataError, match="bad.npy is not a readable plain .npy array"):
        preprocess_image(tmp_path / "bad.npy", SPEC_GRAY)
    np.save(tmp_path / "5ch.npy", np.zeros((5, 4, 6)))
    with pytest.raises(DataError, match=r"gives an input of shape \[5, 4, 6\]"):
        preprocess_image(tmp_path / "5ch.npy", SPEC_GRAY)
