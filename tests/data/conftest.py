"""Writers for tiny files in each exact on-disk format the readers accept."""

from __future__ import annotations

import gzip
import io
import pickle
import struct
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

IMAGES_MAGIC = 0x00000803
LABELS_MAGIC = 0x00000801


def idx_bytes(array: np.ndarray, magic: int) -> bytes:
    """An IDX file: big-endian magic, one uint32 per dim, then the uint8 payload."""
    return struct.pack(f">I{array.ndim}I", magic, *array.shape) + array.astype(np.uint8).tobytes()


@pytest.fixture
def write_idx() -> Callable[..., Path]:
    def write(path: Path, array: np.ndarray, magic: int, gz: bool = False) -> Path:
        data = idx_bytes(array, magic)
        if gz:
            path = path.with_name(path.name + ".gz")
            path.write_bytes(gzip.compress(data))
        else:
            path.write_bytes(data)
        return path

    return write


@pytest.fixture
def mnist_dir(tmp_path: Path, write_idx) -> Callable[..., Path]:
    """A folder with train-/t10k- images and labels: pixel value = (10 * label + index) % 256."""

    def make(n_train: int = 40, n_test: int = 10, gz: bool = False, size: int = 28) -> Path:
        root = tmp_path / f"mnist-{'gz' if gz else 'raw'}"
        root.mkdir(exist_ok=True)
        for prefix, n in (("train", n_train), ("t10k", n_test)):
            y = np.arange(n) % 10
            x = ((10 * y[:, None, None] + np.arange(n)[:, None, None]) % 256) * np.ones((1, size, size), int)
            write_idx(root / f"{prefix}-images-idx3-ubyte", x, IMAGES_MAGIC, gz)
            write_idx(root / f"{prefix}-labels-idx1-ubyte", y, LABELS_MAGIC, gz)
        return root

    return make


class Py2Pickler(pickle._Pickler):
    """Writes ``str``/``bytes`` as Python 2 ``str`` (BINSTRING), as cPickle did for the CIFAR batches."""

    dispatch = pickle._Pickler.dispatch.copy()

    def save_py2_str(self, obj: bytes | str) -> None:
        data = obj if isinstance(obj, bytes) else obj.encode("latin1")
        if len(data) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(data)]) + data)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(data)) + data)
        self.memoize(obj)

    dispatch[bytes] = save_py2_str
    dispatch[str] = save_py2_str


def py2_pickle(obj: object) -> bytes:
    """Bytes laid out like an official CIFAR batch: protocol 2, Python 2 strings, numpy.core globals."""
    buf = io.BytesIO()
    Py2Pickler(buf, protocol=2).dump(obj)
    return buf.getvalue().replace(b"numpy._core.multiarray", b"numpy.core.multiarray")


def cifar_images(labels: np.ndarray) -> np.ndarray:
    """(n, 3072) uint8 rows: R plane = label, G plane = 100 + index, B plane = 200."""
    n = len(labels)
    planes = np.stack(
        [
            np.repeat(labels[:, None], 1024, 1),
            np.repeat((100 + np.arange(n))[:, None], 1024, 1),
            np.full((n, 1024), 200),
        ],
        axis=1,
    )
    return planes.reshape(n, 3072).astype(np.uint8)


@pytest.fixture
def cifar10_dir(tmp_path: Path) -> Callable[..., Path]:
    """``cifar-10-batches-py/`` with 5 train batches of ``per_batch`` images, a test batch, batches.meta."""

    def make(per_batch: int = 6, n_test: int = 5, nested: bool = True) -> Path:
        top = tmp_path / "cifar10"
        root = top / "cifar-10-batches-py" if nested else top
        root.mkdir(parents=True, exist_ok=True)
        names = [
            b"airplane",
            b"automobile",
            b"bird",
            b"cat",
            b"deer",
            b"dog",
            b"frog",
            b"horse",
            b"ship",
            b"truck",
        ]
        for i in range(1, 6):
            labels = (np.arange(per_batch) + i) % 10
            batch = {
                b"batch_label": f"training batch {i} of 5".encode(),
                b"labels": labels.tolist(),
                b"data": cifar_images(labels),
                b"filenames": [b"x.png"] * per_batch,
            }
            (root / f"data_batch_{i}").write_bytes(py2_pickle(batch))
        labels = np.arange(n_test) % 10
        (root / "test_batch").write_bytes(
            py2_pickle(
                {
                    b"batch_label": b"testing batch 1 of 1",
                    b"labels": labels.tolist(),
                    b"data": cifar_images(labels),
                }
            )
        )
        (root / "batches.meta").write_bytes(
            py2_pickle({b"label_names": names, b"num_cases_per_batch": per_batch, b"num_vis": 3072})
        )
        return top

    return make


@pytest.fixture
def cifar100_dir(tmp_path: Path) -> Callable[..., Path]:
    """``cifar-100-python/`` with train, test and meta (fine and coarse labels)."""

    def make(n_train: int = 30, n_test: int = 8) -> Path:
        root = tmp_path / "cifar100" / "cifar-100-python"
        root.mkdir(parents=True)
        for name, n in (("train", n_train), ("test", n_test)):
            fine = (np.arange(n) * 7) % 100
            (root / name).write_bytes(
                py2_pickle(
                    {
                        b"fine_labels": fine.tolist(),
                        b"coarse_labels": (fine // 5).tolist(),
                        b"data": cifar_images(fine % 256),
                        b"filenames": [b"x"] * n,
                    }
                )
            )
        meta = {
            b"fine_label_names": [f"fine{i}".encode() for i in range(100)],
            b"coarse_label_names": [f"coarse{i}".encode() for i in range(20)],
        }
        (root / "meta").write_bytes(py2_pickle(meta))
        return root.parent

    return make


@pytest.fixture
def image_folder(tmp_path: Path) -> Callable[..., Path]:
    """``root/<class>/*.png``: 'cat' images are dark, 'dog' bright; sizes vary unless told."""
    from PIL import Image

    def make(
        mode: str = "L", per_class: int = 4, sizes: tuple[tuple[int, int], ...] = ((12, 10), (8, 8))
    ) -> Path:
        root = tmp_path / f"folder-{mode}"
        for value, name in ((40, "cat"), (200, "dog")):
            (root / name).mkdir(parents=True)
            for i in range(per_class):
                w, h = sizes[i % len(sizes)]
                color = value if mode == "L" else (value, 255 - value, 0)
                Image.new(mode, (w, h), color).save(root / name / f"{i}.png")
        return root

    return make
