"""Datasets that need no files: scikit-learn's bundled digits and a learnable synthetic set."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

from torchship.data.config import DataConfig
from torchship.data.registry import RawData, datasets


@datasets.register("digits")
def read_digits(cfg: DataConfig) -> RawData:
    """1,797 real 8x8 handwritten digits, values 0..16, shipped inside scikit-learn."""
    # rows: (1797, 65) = 64 pixels then the label
    rows = _bundled_digits()
    x = rows[:, :64].astype(np.uint8).reshape(-1, 1, 8, 8)
    return RawData(
        x,
        rows[:, 64].astype(np.int64),
        [str(i) for i in range(10)],
        scale=1 / 16,
        source={"origin": "sklearn.datasets.load_digits", "values": "0..16"},
    )


def _bundled_digits() -> np.ndarray:
    """The CSV ``load_digits`` reads, found without importing scikit-learn.

    Importing sklearn.datasets pulls in scipy and takes seconds (a minute on a busy 2-core
    box); the quickstart and most tests need only these 1,797 rows.
    """
    spec = importlib.util.find_spec("sklearn")
    path = Path(spec.origin).parent / "datasets" / "data" / "digits.csv.gz" if spec and spec.origin else None
    if path is not None and path.is_file():
        return np.loadtxt(path, delimiter=",")
    from sklearn.datasets import load_digits  # another layout: let scikit-learn find its file

    bunch = load_digits()
    return np.concatenate([bunch.data, bunch.target[:, None]], axis=1)


@datasets.register("synthetic")
def read_synthetic(cfg: DataConfig) -> RawData:
    """Gaussian blobs around a random per-class prototype in [0.2, 0.8]: learnable, any shape, seeded.

    ``shape`` [f] gives feature vectors, [h, w] gray images, [c, h, w] images.
    """
    spec = cfg.synthetic
    shape = tuple(spec.shape) if len(spec.shape) != 2 else (1, *spec.shape)
    rng = np.random.default_rng(spec.seed)
    # prototypes: (classes, *shape); x: (size, *shape)
    prototypes = rng.uniform(0.2, 0.8, size=(spec.classes, *shape)).astype(np.float32)
    y = rng.integers(0, spec.classes, size=spec.size).astype(np.int64)
    x = prototypes[y] + rng.normal(0.0, 0.15, size=(spec.size, *shape)).astype(np.float32)
    np.clip(x, 0.0, 1.0, out=x)
    return RawData(
        x,
        y,
        [f"class_{i}" for i in range(spec.classes)],
        scale=1.0,
        layout="image" if len(shape) == 3 else "features",
        source={
            "origin": "synthetic",
            "shape": list(shape),
            "classes": spec.classes,
            "size": spec.size,
            "seed": spec.seed,
        },
    )
