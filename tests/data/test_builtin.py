"""digits and synthetic, and what load_data does with any dataset: split, normalize, shape."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from torchship.data import DataConfig, load_data
from torchship.errors import DataError


@pytest.fixture(scope="module")
def digits():
    return load_data(DataConfig(name="digits"))


def test_digits_is_the_full_sklearn_set(digits):
    assert len(digits.train) + len(digits.val) == 1797
    assert (len(digits.train), len(digits.val)) == (1438, 359)
    assert digits.test is None
    assert digits.num_classes == 10
    assert digits.labels == [str(i) for i in range(10)]
    assert digits.shape == [1, 8, 8]
    assert digits.train.x.dtype == torch.float32
    assert digits.train.y.dtype == torch.int64
    assert digits.input["scale"] == 1 / 16
    assert digits.input["layout"] == "image"
    assert set(digits.input) == {"shape", "dtype", "layout", "scale", "mean", "std"}
    json.dumps(digits.info)  # goes into the manifest as JSON


def test_normalization_uses_the_training_split_only(digits):
    train = digits.train.x
    assert abs(train.mean().item()) < 1e-5
    assert abs(train.std().item() - 1) < 1e-3
    assert abs(digits.val.x.mean().item()) > 1e-4  # val is normalized with train's numbers, not its own
    raw = load_data(DataConfig(name="digits", val_fraction=0.5))
    assert raw.input["mean"] != digits.input["mean"]  # another train split, other statistics


def test_normalization_round_trips_to_raw_units(digits):
    mean, std, scale = digits.input["mean"][0], digits.input["std"][0], digits.input["scale"]
    raw = (digits.train.x * std + mean) / scale
    assert torch.allclose(raw, raw.round(), atol=1e-3)  # sklearn digits are integers 0..16
    assert raw.min() >= -1e-3
    assert raw.max() <= 16 + 1e-3


def test_digits_resized_to_three_channels_32x32():
    ds = load_data(DataConfig(name="digits", resize=32, channels=3, limit=300))
    assert ds.shape == [3, 32, 32]
    assert list(ds.train.x.shape[1:]) == [3, 32, 32]
    assert len(ds.input["mean"]) == len(ds.input["std"]) == 3
    assert torch.equal(ds.train.x[:, 0], ds.train.x[:, 2])  # gray repeated


def test_resize_accepts_height_width():
    assert load_data(DataConfig(name="digits", resize=[12, 16], limit=50)).shape == [1, 12, 16]


def test_same_seed_same_split_other_seed_other_split():
    a = load_data(DataConfig(name="digits", seed=1, limit=400))
    b = load_data(DataConfig(name="digits", seed=1, limit=400))
    c = load_data(DataConfig(name="digits", seed=2, limit=400))
    assert torch.equal(a.train.x, b.train.x)
    assert torch.equal(a.val.y, b.val.y)
    assert not torch.equal(a.train.y, c.train.y)


def test_limit_and_held_out_test_fraction():
    ds = load_data(DataConfig(name="digits", limit=100, val_fraction=0.2, test_fraction=0.1))
    assert (len(ds.train), len(ds.val), len(ds.test)) == (70, 20, 10)
    assert ds.info["sizes"] == {"train": 70, "val": 20, "test": 10}
    assert ds.info["test_split"] == "held-out"


def test_no_val_fraction_validates_on_train_and_says_so():
    ds = load_data(DataConfig(name="digits", limit=60, val_fraction=0.0))
    assert len(ds.train) == 60
    assert torch.equal(ds.val.y, ds.train.y)
    assert ds.info["val_is_train"] is True


def test_too_few_samples_for_the_fractions():
    with pytest.raises(DataError, match="too few"):
        load_data(DataConfig(name="digits", limit=2, val_fraction=0.5, test_fraction=0.4))


def test_features_cannot_be_resized():
    with pytest.raises(DataError, match="feature vectors"):
        load_data(DataConfig(name="synthetic", synthetic={"shape": [5], "size": 20}, resize=8))


def test_synthetic_is_seeded_and_learnable():
    cfg = DataConfig(name="synthetic", synthetic={"shape": [3, 8, 8], "classes": 4, "size": 400, "seed": 5})
    a, b = load_data(cfg), load_data(cfg)
    assert torch.equal(a.train.x, b.train.x)
    assert a.shape == [3, 8, 8]
    assert a.labels == ["class_0", "class_1", "class_2", "class_3"]
    # nearest class mean (from train) classifies val almost perfectly: the classes are separable
    centroids = torch.stack([a.train.x[a.train.y == k].mean(0) for k in range(4)]).flatten(1)
    predicted = torch.cdist(a.val.x.flatten(1), centroids).argmin(1)
    assert (predicted == a.val.y).float().mean() > 0.95


@pytest.mark.parametrize(
    ("shape", "layout", "expected"),
    [
        ([6], "features", [6]),
        ([5, 7], "image", [1, 5, 7]),
        ([2, 4, 4], "image", [2, 4, 4]),
    ],
)
def test_synthetic_shapes(shape, layout, expected):
    ds = load_data(DataConfig(name="synthetic", synthetic={"shape": shape, "size": 50}))
    assert ds.shape == expected
    assert ds.input["layout"] == layout
    assert len(ds.input["mean"]) == expected[0]


def test_rgb_to_one_channel_uses_luminance():
    ds = load_data(
        DataConfig(
            name="synthetic",
            channels=1,
            val_fraction=0.0,
            synthetic={"shape": [3, 4, 4], "size": 30, "classes": 2},
        )
    )
    assert ds.shape == [1, 4, 4]
    with pytest.raises(DataError, match="cannot become 2"):
        load_data(DataConfig(name="synthetic", channels=2, synthetic={"shape": [3, 4, 4], "size": 30}))


def test_digits_known_first_sample():
    from torchship.data.builtin import read_digits

    raw = read_digits(DataConfig())
    assert raw.x.shape == (1797, 1, 8, 8)
    assert raw.x.dtype == np.uint8
    assert raw.x[0, 0, 0].tolist() == [0, 0, 5, 13, 9, 1, 0, 0]
    assert raw.y[:10].tolist() == list(range(10))
    assert raw.x.max() == 16


@pytest.mark.slow  # importing scikit-learn costs seconds; the reader itself avoids it
def test_digits_match_sklearn_load_digits():
    from sklearn.datasets import load_digits

    from torchship.data.builtin import read_digits

    bunch = load_digits()
    raw = read_digits(DataConfig())
    assert raw.x.shape == (1797, 1, 8, 8)
    assert (raw.x[:, 0] == bunch.images).all()
    assert (raw.y == bunch.target).all()
