"""MNIST-family IDX files (MNIST, Fashion-MNIST, KMNIST), raw or gzipped.

IDX: a 4-byte magic (two zero bytes, 0x08 for unsigned bytes, then NDIM), NDIM big-endian
uint32 sizes, then the payload. Images are 0x00000803 (n, rows, cols), labels 0x00000801 (n,).
"""

from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path

import numpy as np

from torchship.data.config import DataConfig
from torchship.data.download import ensure_root
from torchship.data.registry import RawData, datasets
from torchship.errors import DataError

IMAGES_MAGIC = 0x00000803
LABELS_MAGIC = 0x00000801

FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}

LABELS = {
    "mnist": [str(i) for i in range(10)],
    "fashion-mnist": [
        "T-shirt/top",
        "Trouser",
        "Pullover",
        "Dress",
        "Coat",
        "Sandal",
        "Shirt",
        "Sneaker",
        "Bag",
        "Ankle boot",
    ],
    "kmnist": ["o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo"],
}


def read_idx(path: Path, magic: int) -> np.ndarray:
    """Read one IDX file, checking its magic, its dimensions and the exact payload length.

    Raises:
        DataError: The file is unreadable, has another magic, or is truncated/oversized.
    """
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as fh:
            data = fh.read()
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(f"{path} cannot be read ({exc})", fix="re-download or re-extract the file") from None
    if len(data) < 4:
        raise DataError(f"{path} is too short to be an IDX file ({len(data)} bytes)", fix="re-download it")
    (got,) = struct.unpack(">I", data[:4])
    if got != magic:
        raise DataError(
            f"{path} has IDX magic 0x{got:08x}, expected 0x{magic:08x}",
            fix="check that image and label files are not swapped or corrupt",
        )
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"{path} is truncated inside its header", fix="re-download it")
    dims = struct.unpack(f">{ndim}I", data[4:header])
    expected = int(np.prod(dims, dtype=np.int64))
    if len(data) - header != expected:
        raise DataError(
            f"{path} holds {len(data) - header} bytes of data but its header says {expected} "
            f"({'x'.join(map(str, dims))})",
            fix="the file is truncated or corrupt; re-download it",
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims)


def find_idx(root: Path, stem: str) -> Path | None:
    """``stem``, ``stem.gz``, or the ``train-images.idx3-ubyte`` spelling some archives use."""
    dotted = stem.replace("-idx", ".idx")
    for candidate in (root / stem, root / f"{stem}.gz", root / dotted, root / f"{dotted}.gz"):
        if candidate.is_file():
            return candidate
    return None


def _has_train_files(root: Path) -> bool:
    return all(find_idx(root, FILES[key]) is not None for key in ("train_images", "train_labels"))


def _read_pair(images: Path, labels: Path) -> tuple[np.ndarray, np.ndarray]:
    x = read_idx(images, IMAGES_MAGIC)
    y = read_idx(labels, LABELS_MAGIC)
    if len(x) != len(y):
        raise DataError(
            f"{images} holds {len(x)} images but {labels} holds {len(y)} labels",
            fix="use image and label files from the same release",
        )
    # x: (n, rows, cols) -> (n, 1, rows, cols), still uint8
    return x[:, None], y.astype(np.int64)


def _reader(name: str):
    def read(cfg: DataConfig) -> RawData:
        root = ensure_root(name, cfg, _has_train_files)
        paths = {key: find_idx(root, stem) for key, stem in FILES.items()}
        for key in ("train_images", "train_labels"):
            if paths[key] is None:
                raise DataError(
                    f"{root} has no {FILES[key]} (or .gz)",
                    fix=f"point --data {name}:PATH at the folder holding the IDX files, or add --download",
                )
        x, y = _read_pair(paths["train_images"], paths["train_labels"])
        test_x = test_y = None
        if paths["test_images"] is not None and paths["test_labels"] is not None:
            test_x, test_y = _read_pair(paths["test_images"], paths["test_labels"])
        return RawData(
            x,
            y,
            list(LABELS[name]),
            scale=1 / 255,
            test_x=test_x,
            test_y=test_y,
            source={"origin": "idx", "path": str(root), "files": {k: p.name for k, p in paths.items() if p}},
        )

    read.__name__ = f"read_{name.replace('-', '_')}"
    read.__doc__ = f"{name} from IDX files (raw or .gz); t10k-* files, when present, become the test split."
    return read


for _name in LABELS:
    datasets.register(_name)(_reader(_name))
