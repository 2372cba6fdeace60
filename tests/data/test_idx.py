"""MNIST-family IDX files: raw and gzipped, official test split, and every way they can be broken."""

from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest
import torch

from torchship.data import DataConfig, load_data
from torchship.data.idx import IMAGES_MAGIC, LABELS_MAGIC, read_idx
from torchship.errors import DataError


@pytest.mark.parametrize("gz", [False, True])
def test_mnist_reads_train_and_official_test(mnist_dir, gz):
    root = mnist_dir(n_train=40, n_test=10, gz=gz)
    ds = load_data(DataConfig(name="mnist", path=str(root), val_fraction=0.25))
    assert ds.shape == [1, 28, 28]
    assert ds.input["scale"] == 1 / 255
    assert (len(ds.train), len(ds.val), len(ds.test)) == (30, 10, 10)
    assert ds.info["test_split"] == "official"
    assert torch.equal(ds.test.y, torch.arange(10))  # the t10k file, in file order
    # every pixel of sample i holds (10 * label + i) % 256: undo the normalization and check
    raw = ds.test.x * ds.input["std"][0] + ds.input["mean"][0]
    expected = torch.tensor([(10 * i + i) % 256 for i in range(10)], dtype=torch.float32) / 255
    assert torch.allclose(raw[:, 0, 3, 5], expected, atol=1e-5)


@pytest.mark.parametrize(
    ("name", "first", "last"),
    [
        ("mnist", "0", "9"),
        ("fashion-mnist", "T-shirt/top", "Ankle boot"),
        ("kmnist", "o", "wo"),
    ],
)
def test_label_names_per_dataset(mnist_dir, name, first, last):
    ds = load_data(DataConfig(name=name, path=str(mnist_dir(n_train=20, n_test=0))))
    assert ds.labels[0] == first
    assert ds.labels[-1] == last
    assert ds.num_classes == 10


def test_limit_applies_to_the_official_test_split_too(mnist_dir):
    ds = load_data(DataConfig(name="mnist", path=str(mnist_dir(n_train=40, n_test=20)), limit=12))
    assert len(ds.train) + len(ds.val) == 12
    assert len(ds.test) == 12


def test_without_test_files_there_is_no_test_split(mnist_dir):
    root = mnist_dir(n_train=20)
    for f in root.glob("t10k-*"):
        f.unlink()
    assert load_data(DataConfig(name="mnist", path=str(root))).test is None


def test_wrong_magic_names_the_file(tmp_path, write_idx):
    path = write_idx(tmp_path / "train-images-idx3-ubyte", np.zeros((2, 4, 4)), LABELS_MAGIC)
    with pytest.raises(
        DataError, match=r"train-images-idx3-ubyte has IDX magic 0x00000801, expected 0x00000803"
    ):
        read_idx(path, IMAGES_MAGIC)


def test_swapped_image_and_label_files_are_caught(mnist_dir):
    root = mnist_dir(n_train=10, n_test=0)
    images, labels = root / "train-images-idx3-ubyte", root / "train-labels-idx1-ubyte"
    a, b = images.read_bytes(), labels.read_bytes()
    images.write_bytes(b)
    labels.write_bytes(a)
    with pytest.raises(DataError, match="magic"):
        load_data(DataConfig(name="mnist", path=str(root)))


@pytest.mark.parametrize("cut", [1, 100])
def test_truncated_payload(tmp_path, write_idx, cut):
    path = write_idx(tmp_path / "x-idx3-ubyte", np.zeros((5, 28, 28)), IMAGES_MAGIC)
    path.write_bytes(path.read_bytes()[:-cut])
    with pytest.raises(
        DataError, match=rf"holds {5 * 784 - cut} bytes of data but its header says 3920 \(5x28x28\)"
    ):
        read_idx(path, IMAGES_MAGIC)


def test_extra_bytes_are_refused_too(tmp_path, write_idx):
    path = write_idx(tmp_path / "y-idx1-ubyte", np.arange(5), LABELS_MAGIC)
    path.write_bytes(path.read_bytes() + b"\0")
    with pytest.raises(DataError, match="holds 6 bytes"):
        read_idx(path, LABELS_MAGIC)


def test_truncated_header_and_tiny_file(tmp_path):
    path = tmp_path / "h-idx3-ubyte"
    path.write_bytes(struct.pack(">II", IMAGES_MAGIC, 5))
    with pytest.raises(DataError, match="truncated inside its header"):
        read_idx(path, IMAGES_MAGIC)
    path.write_bytes(b"\0\0")
    with pytest.raises(DataError, match="too short"):
        read_idx(path, IMAGES_MAGIC)


def test_truncated_gzip_stream(tmp_path, write_idx):
    path = write_idx(tmp_path / "train-images-idx3-ubyte", np.ones((3, 28, 28)), IMAGES_MAGIC, gz=True)
    path.write_bytes(path.read_bytes()[:30])
    with pytest.raises(DataError, match="cannot be read"):
        read_idx(path, IMAGES_MAGIC)


def test_not_gzip_at_all(tmp_path):
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(b"not a gzip stream at all")
    with pytest.raises(DataError, match="cannot be read"):
        read_idx(path, IMAGES_MAGIC)


def test_image_and_label_counts_must_agree(tmp_path, write_idx):
    write_idx(tmp_path / "train-images-idx3-ubyte", np.zeros((4, 28, 28)), IMAGES_MAGIC)
    write_idx(tmp_path / "train-labels-idx1-ubyte", np.zeros(3), LABELS_MAGIC)
    with pytest.raises(DataError, match="holds 4 images but .* holds 3 labels"):
        load_data(DataConfig(name="mnist", path=str(tmp_path)))


def test_labels_beyond_ten_classes(tmp_path, write_idx):
    write_idx(tmp_path / "train-images-idx3-ubyte", np.zeros((4, 28, 28)), IMAGES_MAGIC)
    write_idx(tmp_path / "train-labels-idx1-ubyte", np.array([0, 1, 2, 12]), LABELS_MAGIC)
    with pytest.raises(DataError, match=r"labels in 0\.\.12 but 10 classes"):
        load_data(DataConfig(name="mnist", path=str(tmp_path)))


def test_missing_files_suggest_download(tmp_path):
    with pytest.raises(DataError, match=r"has no train-images-idx3-ubyte \(or \.gz\).*--download"):
        load_data(DataConfig(name="fashion-mnist", path=str(tmp_path)))
    with pytest.raises(DataError, match=r"not at .*nowhere \(no such folder\).*--download"):
        load_data(DataConfig(name="kmnist", path=str(tmp_path / "nowhere")))


def test_dotted_file_names_are_found(mnist_dir):
    root = mnist_dir(n_train=10, n_test=0, gz=True)
    for f in root.glob("*-idx*"):
        f.rename(f.with_name(f.name.replace("-idx", ".idx")))
    assert len(load_data(DataConfig(name="mnist", path=str(root), val_fraction=0.0)).train) == 10


def test_gz_and_raw_give_identical_tensors(mnist_dir, tmp_path):
    raw = load_data(DataConfig(name="mnist", path=str(mnist_dir(gz=False))))
    gz = load_data(DataConfig(name="mnist", path=str(mnist_dir(gz=True))))
    assert torch.equal(raw.train.x, gz.train.x)
    assert torch.equal(raw.test.y, gz.test.y)
    assert (
        gzip.decompress((mnist_dir(gz=True) / "t10k-labels-idx1-ubyte.gz").read_bytes())[:4]
        == b"\0\0\x08\x01"
    )
