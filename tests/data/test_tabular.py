"""NPZ arrays (tables and images in every axis order) and CSV tables."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from torchship.data import DataConfig, load_data
from torchship.data.tabular import encode_labels
from torchship.errors import DataError


def _npz(tmp_path, **arrays):
    path = tmp_path / "data.npz"
    np.savez(path, **arrays)
    return str(path)


def test_npz_features_per_feature_stats(tmp_path):
    x = np.stack([np.arange(20.0), np.full(20, 5.0), np.arange(20.0) * 10], 1)
    ds = load_data(DataConfig(name="npz", path=_npz(tmp_path, x=x, y=np.arange(20) % 2), val_fraction=0.0))
    assert ds.shape == [3]
    assert ds.input["layout"] == "features"
    assert ds.input["scale"] == 1.0
    assert ds.input["mean"] == pytest.approx([9.5, 5.0, 95.0])
    assert ds.input["std"][1] == 1.0  # a constant feature is centred, not blown up
    assert torch.allclose(ds.train.x.mean(0), torch.zeros(3), atol=1e-5)


@pytest.mark.parametrize(
    ("shape", "expected"),
    [
        ((10, 6, 5), [1, 6, 5]),
        ((10, 3, 6, 5), [3, 6, 5]),
        ((10, 6, 5, 3), [3, 6, 5]),
        ((10, 6, 5, 1), [1, 6, 5]),
        ((10, 1, 6, 1), [1, 6, 1]),
    ],
)
def test_npz_image_layouts(tmp_path, shape, expected):
    x = np.random.default_rng(0).integers(0, 256, shape).astype(np.uint8)
    ds = load_data(DataConfig(name="npz", path=_npz(tmp_path, x=x, y=np.arange(10) % 3)))
    assert ds.shape == expected
    assert ds.input["layout"] == "image"
    assert ds.input["scale"] == 1 / 255


def test_npz_channels_last_values_land_in_the_right_channel(tmp_path):
    x = np.zeros((4, 5, 5, 3), np.uint8)
    x[..., 2] = 255
    ds = load_data(
        DataConfig(name="npz", path=_npz(tmp_path, x=x, y=np.array([0, 1, 0, 1])), val_fraction=0.0)
    )
    assert ds.input["mean"] == pytest.approx([0.0, 0.0, 1.0])


def test_npz_label_names_and_string_labels(tmp_path):
    path = _npz(
        tmp_path, x=np.zeros((6, 2)), y=np.array([0, 1, 2, 0, 1, 2]), labels=np.array(["a", "b", "c"])
    )
    assert load_data(DataConfig(name="npz", path=path)).labels == ["a", "b", "c"]
    path = _npz(tmp_path, x=np.zeros((4, 2)), y=np.array(["dog", "cat", "dog", "cat"]))
    ds = load_data(DataConfig(name="npz", path=path, val_fraction=0.0))
    assert ds.labels == ["cat", "dog"]
    assert sorted(ds.train.y.tolist()) == [0, 0, 1, 1]


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        ({"x": np.zeros((3, 2))}, "has no array 'y' \\(it has: x\\)"),
        ({"inputs": np.zeros((3, 2)), "y": np.zeros(3)}, "has no array 'x'"),
        ({"x": np.zeros((3, 2)), "y": np.zeros(4)}, "x has 3 samples but y has shape \\[4\\]"),
        ({"x": np.zeros((3, 2, 2, 2, 2)), "y": np.zeros(3)}, "x has 5 dimensions"),
        (
            {"x": np.zeros((3, 2)), "y": np.array([0, 1, 5]), "labels": np.array(["a", "b"])},
            "y must hold integers 0..1",
        ),
    ],
)
def test_npz_errors(tmp_path, arrays, message):
    with pytest.raises(DataError, match=message):
        load_data(DataConfig(name="npz", path=_npz(tmp_path, **arrays)))


def test_npz_with_pickled_objects_or_not_a_zip(tmp_path):
    path = tmp_path / "obj.npz"
    np.savez(path, x=np.array([{"a": 1}, None], dtype=object), y=np.zeros(2))
    with pytest.raises(DataError, match="not a readable .npz of plain arrays"):
        load_data(DataConfig(name="npz", path=str(path)))
    (tmp_path / "junk.npz").write_bytes(b"PK junk")
    with pytest.raises(DataError, match="not a readable .npz"):
        load_data(DataConfig(name="npz", path=str(tmp_path / "junk.npz")))
    with pytest.raises(DataError, match="does not exist"):
        load_data(DataConfig(name="npz", path=str(tmp_path / "none.npz")))


def _csv(tmp_path, text):
    path = tmp_path / "t.csv"
    path.write_text(text)
    return str(path)


def test_csv_string_labels_in_the_last_column(tmp_path):
    path = _csv(tmp_path, "a,b,species\n1,2,versicolor\n3,4,setosa\n5,6,setosa\n7,8,virginica\n\n")
    ds = load_data(DataConfig(name="csv", path=path, val_fraction=0.0))
    assert ds.labels == ["setosa", "versicolor", "virginica"]
    assert ds.shape == [2]
    assert ds.input["mean"] == pytest.approx([4.0, 5.0])
    assert ds.info["source"]["columns"] == ["a", "b"]


def test_csv_named_label_column_with_int_labels(tmp_path):
    path = _csv(tmp_path, "label,f1,f2\n1,0.5,1\n0,1.5,2\n2,2.5,3\n")
    ds = load_data(DataConfig(name="csv", path=path, label_column="label", val_fraction=0.0))
    assert ds.labels == ["0", "1", "2"]
    assert ds.shape == [2]
    raw = ds.train.x * torch.tensor(ds.input["std"]) + torch.tensor(ds.input["mean"])
    by_label = dict(zip(ds.train.y.tolist(), raw[:, 0].tolist(), strict=True))
    assert by_label == pytest.approx({1: 0.5, 0: 1.5, 2: 2.5})


def test_csv_without_header_and_with_bom(tmp_path):
    ds = load_data(DataConfig(name="csv", path=_csv(tmp_path, "1,2,0\n3,4,1\n5,6,1\n"), val_fraction=0.0))
    assert len(ds.train) == 3
    assert ds.labels == ["0", "1"]
    path = tmp_path / "bom.csv"
    path.write_bytes("\ufeffx,y\n1,a\n2,b\n".encode())
    assert (
        load_data(DataConfig(name="csv", path=str(path), val_fraction=0.0)).info["source"]["label_column"]
        == "y"
    )


@pytest.mark.parametrize(
    ("text", "kwargs", "message"),
    [
        ("a,b,y\n1,2,0\n3,oops,1\n", {}, "line 3, column 'b': 'oops' is not a number"),
        ("a,b,y\n1,2,0\n3,1\n", {}, "line 3 has 2 fields but the header has 3"),
        ("a,b,y\n1,2,0\n", {"label_column": "target"}, "has no column 'target'.*one of: a, b, y"),
        ("a,b,y\n", {}, "has a header but no data rows"),
        ("", {}, "is empty"),
        ("y\n1\n2\n", {}, "has only the label column"),
    ],
)
def test_csv_errors(tmp_path, text, kwargs, message):
    with pytest.raises(DataError, match=message):
        load_data(DataConfig(name="csv", path=_csv(tmp_path, text), **kwargs))


def test_encode_labels():
    assert encode_labels(np.array([2, 0, 1]))[1] == ["0", "1", "2"]
    y, names = encode_labels(np.array([-1, 5, -1]))
    assert y.tolist() == [0, 1, 0]
    assert names == ["-1", "5"]
    y, names = encode_labels(np.array([0.5, 0.25]))
    assert y.tolist() == [1, 0]
    assert names == ["0.25", "0.5"]
    assert encode_labels(np.array(["10", "9"]))[1] == ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "10"]
