"""CIFAR python batches (as the official Python 2 pickles), and the unpickler that refuses anything else."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest
import torch

from torchship.data import DataConfig, load_data
from torchship.data.cifar import safe_unpickle
from torchship.errors import DataError

from .conftest import py2_pickle


@pytest.mark.parametrize("nested", [True, False])
def test_cifar10_train_test_and_names(cifar10_dir, nested):
    ds = load_data(
        DataConfig(
            name="cifar10", path=str(cifar10_dir(per_batch=6, n_test=5, nested=nested)), val_fraction=0.2
        )
    )
    assert ds.shape == [3, 32, 32]
    assert ds.input["scale"] == 1 / 255
    assert (len(ds.train), len(ds.val), len(ds.test)) == (24, 6, 5)
    assert ds.labels[:3] == ["airplane", "automobile", "bird"]
    assert ds.num_classes == 10
    # the R plane holds the label, the B plane 200: planes are in R, G, B order
    mean, std = torch.tensor(ds.input["mean"]), torch.tensor(ds.input["std"])
    raw = (ds.test.x * std.view(1, 3, 1, 1) + mean.view(1, 3, 1, 1)) * 255
    assert torch.allclose(raw[:, 0, 7, 9], ds.test.y.float(), atol=1e-3)
    assert torch.allclose(raw[:, 2], torch.full_like(raw[:, 2], 200), atol=1e-3)


def test_cifar100_uses_fine_labels(cifar100_dir):
    ds = load_data(DataConfig(name="cifar100", path=str(cifar100_dir(n_train=30, n_test=8))))
    assert ds.num_classes == 100
    assert ds.labels[7] == "fine7"
    assert torch.equal(ds.test.y, torch.arange(8) * 7 % 100)


def test_python3_pickles_with_str_keys_load_too(tmp_path):
    data = np.arange(2 * 3072).reshape(2, 3072).astype(np.uint8)
    path = tmp_path / "batch"
    path.write_bytes(pickle.dumps({"data": data, "labels": [3, 4]}, protocol=4))
    assert np.array_equal(safe_unpickle(path)["data"], data)


class _Exploit:
    def __reduce__(self):
        return (os.system, ("touch pwned",))


@pytest.mark.parametrize("writer", [lambda obj: pickle.dumps(obj, protocol=2), pickle.dumps, py2_pickle])
def test_malicious_pickle_is_refused_without_running(tmp_path, monkeypatch, writer):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "data_batch_1"
    path.write_bytes(writer({b"data": _Exploit(), b"labels": [0]}))
    with pytest.raises(DataError, match=r"refusing to unpickle .*data_batch_1: it names the global \w+\.\w+"):
        safe_unpickle(path)
    assert not (tmp_path / "pwned").exists()


@pytest.mark.parametrize(
    "global_", [b"builtins\neval\n", b"numpy\nload\n", b"numpy.core.multiarray\nscalar\n"]
)
def test_every_other_global_is_refused(tmp_path, global_):
    path = tmp_path / "test_batch"
    path.write_bytes(b"\x80\x02c" + global_ + b"X\x01\x00\x00\x001\x85R.")
    with pytest.raises(DataError, match="refusing to unpickle"):
        safe_unpickle(path)


def test_cifar_loader_refuses_a_tampered_batch(cifar10_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    top = cifar10_dir()
    (top / "cifar-10-batches-py" / "data_batch_3").write_bytes(pickle.dumps({b"data": _Exploit()}))
    with pytest.raises(DataError, match="refusing to unpickle .*data_batch_3"):
        load_data(DataConfig(name="cifar10", path=str(top)))
    assert not (tmp_path / "pwned").exists()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "not a readable CIFAR batch"),
        (b"\x80\x02}q\x00(U\x04data", "not a readable CIFAR batch"),
        (pickle.dumps([1, 2, 3]), "holds a list, not a dict"),
    ],
)
def test_broken_batches(tmp_path, content, message):
    path = tmp_path / "data_batch_1"
    path.write_bytes(content)
    with pytest.raises(DataError, match=message):
        safe_unpickle(path)


def test_batch_with_wrong_shape_or_keys(cifar10_dir):
    top = cifar10_dir()
    batch = top / "cifar-10-batches-py" / "data_batch_2"
    batch.write_bytes(py2_pickle({b"data": np.zeros((3, 100), np.uint8), b"labels": [0, 1, 2]}))
    with pytest.raises(DataError, match=r"expected uint8 \(n, 3072\)"):
        load_data(DataConfig(name="cifar10", path=str(top)))
    batch.write_bytes(py2_pickle({b"data": np.zeros((3, 3072), np.uint8)}))
    with pytest.raises(DataError, match="no 'data' or 'labels' entry"):
        load_data(DataConfig(name="cifar10", path=str(top)))
    batch.write_bytes(py2_pickle({b"data": np.zeros((3, 3072), np.uint8), b"labels": [0, 1]}))
    with pytest.raises(DataError, match="holds 3 images but 2 labels"):
        load_data(DataConfig(name="cifar10", path=str(top)))


def test_missing_batch_is_named(cifar10_dir):
    top = cifar10_dir()
    (top / "cifar-10-batches-py" / "data_batch_4").unlink()
    with pytest.raises(DataError, match=r"cifar-10-batches-py has no data_batch_4.*--download"):
        load_data(DataConfig(name="cifar10", path=str(top)))
