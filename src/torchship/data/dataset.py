"""Load a dataset by name: read -> limit -> scale -> resize/channels -> seeded split -> normalize."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812
from pydantic import ValidationError

from torchship.data.config import DataConfig
from torchship.data.images import LUMA
from torchship.data.preprocess import normalize_
from torchship.data.registry import datasets
from torchship.errors import DataError

# below this a channel is constant: dividing by its std would blow up any input that differs
_MIN_STD = 1e-6


@dataclass
class Split:
    """One split's inputs, already normalized, and its labels."""

    x: torch.Tensor  # (n, *shape) float32, normalized
    y: torch.Tensor  # (n,) int64

    def __len__(self) -> int:
        return int(self.y.shape[0])


@dataclass
class Dataset:
    """Train/val(/test) splits plus everything an artifact needs to feed a model the same way.

    ``input`` holds exactly the manifest's ``InputSpec`` fields; ``info`` is JSON and goes
    into the manifest's ``data`` field.
    """

    name: str
    train: Split
    val: Split
    test: Split | None
    labels: list[str]
    input: dict[str, Any]
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        return len(self.labels)

    @property
    def shape(self) -> list[int]:
        return list(self.input["shape"])


def parse_data_arg(value: str, **overrides: Any) -> DataConfig:
    """Turn ``--data NAME[:PATH]`` into a :class:`DataConfig`.

    Args:
        value: ``digits``, ``mnist:~/data/mnist``, ``csv:/data/iris.csv``. Only the first
            ``:`` separates, so the path may contain more.
        **overrides: Other ``DataConfig`` fields, e.g. ``limit=500``.

    Raises:
        DataError: The name is not a registered dataset, or an override is invalid.

    Example:
        >>> parse_data_arg("mnist:/data/mnist", limit=100).path
        '/data/mnist'
    """
    name, _, path = value.partition(":")
    name = name.strip()
    if not name:
        raise DataError(
            f"--data {value!r} names no dataset",
            fix=f"use NAME[:PATH], NAME one of: {', '.join(datasets.names())}",
        )
    datasets.get(name)  # an unknown name fails here, listing the choices
    try:
        return DataConfig.model_validate({"name": name, "path": path or None, **overrides})
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'data'}: {e['msg']}" for e in exc.errors())
        raise DataError(f"invalid data settings for {value!r}: {problems}") from None


def load_data(cfg: DataConfig, preprocessing: dict[str, Any] | None = None) -> Dataset:
    """Read, shape, split and normalize the dataset ``cfg`` names.

    Mean and std are measured per channel (per feature for tables) on the training split
    only, after ``resize``/``channels``; every split is normalized with them.

    Args:
        preprocessing: An artifact's ``input`` block, to feed that model instead (see
            :func:`torchship.data.artifact_data`): its mean and std normalize every split,
            and files whose numbers carry no unit (npz, csv) are scaled by its ``scale``.

    Raises:
        DataError: The files are missing or malformed, the settings do not fit the data, or
            the samples do not have ``preprocessing``'s shape.

    Example:
        >>> ds = load_data(DataConfig(name="digits", limit=200))
        >>> ds.shape, ds.num_classes, len(ds.train) + len(ds.val)
        ([1, 8, 8], 10, 200)
    """
    raw = datasets.get(cfg.name)(cfg)
    x_raw, y_raw, test_x_raw, test_y_raw = raw.x, raw.y, raw.test_x, raw.test_y
    if cfg.limit is not None:
        x_raw, y_raw = x_raw[: cfg.limit], y_raw[: cfg.limit]
        if test_x_raw is not None and test_y_raw is not None:
            test_x_raw, test_y_raw = test_x_raw[: cfg.limit], test_y_raw[: cfg.limit]
    scale = raw.scale if preprocessing is None or not raw.unitless else float(preprocessing["scale"])
    x = _shape(_to_unit(x_raw, scale), cfg, raw.layout)
    if preprocessing is not None:
        source = f"{cfg.name}:{cfg.path}" if cfg.path else f"dataset {cfg.name}"
        _check_shape(x, preprocessing["shape"], source)
    y = _labels(y_raw, raw.labels, cfg.name)
    official_test = test_x_raw is not None and test_y_raw is not None

    train_idx, val_idx, test_idx = _split_indices(len(y), cfg, official_test)
    x_train = x[train_idx]
    if preprocessing is None:
        mean, std = _channel_stats(x_train, raw.layout)
    else:
        mean, std = (torch.tensor(preprocessing[k], dtype=torch.float32) for k in ("mean", "std"))
    train = Split(normalize_(x_train, mean, std), y[train_idx])
    val = Split(normalize_(x[val_idx], mean, std), y[val_idx])
    test = None
    if official_test:
        tx = _shape(_to_unit(test_x_raw, scale), cfg, raw.layout)
        test = Split(normalize_(tx, mean, std), _labels(test_y_raw, raw.labels, f"{cfg.name} test"))
    elif len(test_idx):
        test = Split(normalize_(x[test_idx], mean, std), y[test_idx])

    input_spec = {
        "shape": list(train.x.shape[1:]),
        "dtype": "float32",
        "layout": raw.layout,
        "scale": float(scale),
        "mean": mean.tolist(),
        "std": std.tolist(),
    }
    sizes = {"train": len(train), "val": len(val)} | ({"test": len(test)} if test is not None else {})
    info = {
        "name": cfg.name,
        "path": cfg.path,
        "seed": cfg.seed,
        "sizes": sizes,
        "source": raw.source,
        "val_fraction": cfg.val_fraction,
        "test_fraction": cfg.test_fraction,
        "limit": cfg.limit,
        "resize": cfg.resize,
        "channels": cfg.channels,
        "val_is_train": len(val_idx) == 0,
        "test_split": "official" if official_test else ("held-out" if test is not None else None),
    }
    if len(val_idx) == 0:
        val = Split(train.x, train.y)  # val_fraction 0: validate on the training data (info says so)
    return Dataset(cfg.name, train, val, test, list(raw.labels), input_spec, info)


def _to_unit(x: np.ndarray, scale: float) -> torch.Tensor:
    """Raw values -> float32 ``raw * scale`` in a fresh tensor (never aliasing the reader's array)."""
    # one copy that also converts the dtype; readers may hand over read-only (frombuffer) arrays
    return torch.from_numpy(np.array(x, dtype=np.float32, order="C", copy=True)).mul_(scale)


def _check_shape(x: torch.Tensor, shape: list[int], source: str) -> None:
    if list(x.shape[1:]) != list(shape):
        raise DataError(
            f"{source} gives inputs of shape {list(x.shape[1:])} but the model expects {list(shape)}",
            fix="set data.resize / data.channels, or resize the data, to match the model",
        )


def _labels(y: np.ndarray, labels: list[str], what: str) -> torch.Tensor:
    y_t = torch.from_numpy(np.asarray(y, dtype=np.int64).copy())
    if len(y_t) and (y_t.min() < 0 or y_t.max() >= len(labels)):
        raise DataError(
            f"dataset {what} has labels in {int(y_t.min())}..{int(y_t.max())} but {len(labels)} classes",
            fix="check that the label file belongs to these images",
        )
    return y_t


def _split_indices(n: int, cfg: DataConfig, official_test: bool) -> tuple[torch.Tensor, ...]:
    """A seeded permutation cut into (train, val, test) index tensors; val and test come first."""
    n_val = max(1, round(cfg.val_fraction * n)) if cfg.val_fraction else 0
    n_test = 0 if official_test or not cfg.test_fraction else max(1, round(cfg.test_fraction * n))
    if n - n_val - n_test < 1:
        raise DataError(
            f"dataset {cfg.name} has {n} samples, too few for val_fraction {cfg.val_fraction} "
            f"and test_fraction {cfg.test_fraction}",
            fix="use more data (raise data.limit) or smaller fractions",
        )
    order = torch.randperm(n, generator=torch.Generator().manual_seed(cfg.seed))
    return order[n_val + n_test :], order[:n_val], order[n_val : n_val + n_test]


def _channel_stats(x: torch.Tensor, layout: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel (image) or per-feature (table) mean and std; a constant channel gets std 1."""
    # x: (n, c, h, w) -> stats over n, h, w | (n, f) -> stats over n
    dims = [0, *range(2, x.dim())] if layout == "image" else [0]
    mean = x.mean(dim=dims)
    std = x.std(dim=dims) if len(x) > 1 else torch.zeros_like(mean)
    std = torch.where(std < _MIN_STD, torch.ones_like(std), std)
    return mean, std


def _shape(x: torch.Tensor, cfg: DataConfig, layout: str) -> torch.Tensor:
    """Apply ``channels`` then ``resize`` (bilinear) to images."""
    # x: (n, c, h, w) for images, (n, f) for features
    if layout != "image":
        if cfg.resize is not None or cfg.channels is not None:
            raise DataError(
                f"dataset {cfg.name} holds feature vectors, not images",
                fix="drop data.resize / data.channels",
            )
        return x
    if cfg.channels is not None and cfg.channels != x.shape[1]:
        if x.shape[1] == 1:
            x = x.expand(-1, cfg.channels, -1, -1)
        elif cfg.channels == 1 and x.shape[1] == 3:
            x = (x * torch.tensor(LUMA).view(1, 3, 1, 1)).sum(1, keepdim=True)
        else:
            raise DataError(
                f"dataset {cfg.name} has {x.shape[1]} channels, which cannot become {cfg.channels}",
                fix="use data.channels 1 or 3",
            )
    if cfg.resize is not None:
        size = (cfg.resize, cfg.resize) if isinstance(cfg.resize, int) else tuple(cfg.resize)
        if tuple(x.shape[2:]) != size:
            x = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
    return x.contiguous()
