"""CIFAR-10/100 python-version batches, read with a restricted unpickler.

The official batches are pickles (``{b"data": uint8 (n, 3072), b"labels": [...], ...}``).
:class:`SafeUnpickler` admits what they hold: plain containers, bytes, numbers, and numpy
arrays, whose reconstruction names three numpy globals. Any other global, such as
``os.system`` in a tampered file, is refused before anything runs.
"""

from __future__ import annotations

import pickle
import struct
from pathlib import Path
from typing import Any

import numpy as np

from torchship.data.config import DataConfig
from torchship.data.download import ensure_root
from torchship.data.registry import RawData, datasets
from torchship.errors import DataError

ALLOWED_GLOBALS = frozenset(
    {
        ("numpy.core.multiarray", "_reconstruct"),  # numpy < 2 (and the official Python 2 pickles)
        ("numpy._core.multiarray", "_reconstruct"),  # numpy >= 2
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
    }
)

# what a malformed pickle raises while loading, besides UnpicklingError
_LOAD_ERRORS = (
    EOFError,
    ValueError,
    TypeError,
    IndexError,
    KeyError,
    AttributeError,
    UnicodeDecodeError,
    struct.error,
    MemoryError,
)


class SafeUnpickler(pickle.Unpickler):
    """An unpickler that resolves only :data:`ALLOWED_GLOBALS`."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in ALLOWED_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"it names the global {module}.{name}, which is not a numpy array part")


def safe_unpickle(path: Path) -> dict[str, Any]:
    """Load a CIFAR batch and return it with ``str`` keys (``b"data"`` -> ``"data"``).

    Raises:
        DataError: The file names a forbidden global, is not a pickle, or is not a dict.
    """
    try:
        with open(path, "rb") as fh:
            obj = SafeUnpickler(fh, encoding="bytes").load()
    except pickle.UnpicklingError as exc:
        raise DataError(
            f"refusing to unpickle {path}: {exc}", fix="this is not a genuine CIFAR batch; re-download it"
        ) from None
    except (OSError, *_LOAD_ERRORS) as exc:
        raise DataError(
            f"{path} is not a readable CIFAR batch ({type(exc).__name__}: {exc})",
            fix="re-download or re-extract it",
        ) from None
    if not isinstance(obj, dict):
        raise DataError(
            f"{path} is not a CIFAR batch (it holds a {type(obj).__name__}, not a dict)",
            fix="point the path at the python-version batches",
        )
    return {k.decode("latin1") if isinstance(k, bytes) else str(k): v for k, v in obj.items()}


def read_batch(path: Path, label_key: str) -> tuple[np.ndarray, np.ndarray]:
    """One batch -> (uint8 images (n, 3, 32, 32), int64 labels (n,))."""
    batch = safe_unpickle(path)
    if "data" not in batch or label_key not in batch:
        raise DataError(
            f"{path} has no 'data' or '{label_key}' entry (has {', '.join(sorted(batch))})",
            fix="this is not a CIFAR python batch of this dataset",
        )
    data, labels = batch["data"], batch[label_key]
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        shape = getattr(data, "shape", type(data).__name__)
        raise DataError(
            f"{path} holds data {shape} of type {getattr(data, 'dtype', '?')}, expected uint8 (n, 3072)",
            fix="re-download the batch",
        )
    try:
        labels = np.asarray(labels, dtype=np.int64)
    except (TypeError, ValueError):
        raise DataError(
            f"{path}: '{label_key}' is not a list of integers", fix="re-download the batch"
        ) from None
    if labels.shape != (len(data),):
        raise DataError(
            f"{path} holds {len(data)} images but {labels.size} labels", fix="re-download the batch"
        )
    # rows are the R, G, B planes of 32x32 pixels: (n, 3072) -> (n, 3, 32, 32)
    return data.reshape(-1, 3, 32, 32), labels


def _root(cfg: DataConfig, name: str, needed: list[str], folder: str) -> Path:
    """The folder holding ``needed``: the given path, or its ``folder`` sub-folder (the extracted tarball)."""

    def locate(root: Path) -> Path | None:
        return next((r for r in (root, root / folder) if all((r / f).is_file() for f in needed)), None)

    root = ensure_root(name, cfg, lambda r: locate(r) is not None)
    found = locate(root)
    if found is None:
        base = root / folder if (root / folder).is_dir() else root
        missing = next(f for f in needed if not (base / f).is_file())
        raise DataError(
            f"{base} has no {missing}",
            fix=f"point --data {name}:PATH at the extracted {folder}/ folder, or add --download",
        )
    return found


def _names(meta_path: Path, key: str, count: int) -> list[str]:
    names = []
    if meta_path.is_file():
        names = [
            n.decode() if isinstance(n, bytes) else str(n) for n in safe_unpickle(meta_path).get(key, [])
        ]
    return names if len(names) == count else [str(i) for i in range(count)]


@datasets.register("cifar10")
def read_cifar10(cfg: DataConfig) -> RawData:
    """CIFAR-10: ``data_batch_1``..``5`` (train), ``test_batch`` (test), ``batches.meta`` (names)."""
    train_files = [f"data_batch_{i}" for i in range(1, 6)]
    root = _root(cfg, "cifar10", [*train_files, "test_batch"], "cifar-10-batches-py")
    parts = [read_batch(root / f, "labels") for f in train_files]
    x = np.concatenate([p[0] for p in parts])
    y = np.concatenate([p[1] for p in parts])
    test_x, test_y = read_batch(root / "test_batch", "labels")
    return RawData(
        x,
        y,
        _names(root / "batches.meta", "label_names", 10),
        scale=1 / 255,
        test_x=test_x,
        test_y=test_y,
        source={"origin": "cifar10", "path": str(root)},
    )


@datasets.register("cifar100")
def read_cifar100(cfg: DataConfig) -> RawData:
    """CIFAR-100 with its 100 fine labels: ``train``, ``test``, ``meta``."""
    root = _root(cfg, "cifar100", ["train", "test"], "cifar-100-python")
    x, y = read_batch(root / "train", "fine_labels")
    test_x, test_y = read_batch(root / "test", "fine_labels")
    return RawData(
        x,
        y,
        _names(root / "meta", "fine_label_names", 100),
        scale=1 / 255,
        test_x=test_x,
        test_y=test_y,
        source={"origin": "cifar100", "path": str(root)},
    )
