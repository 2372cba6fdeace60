"""Split one dataset's training split among clients: IID, Dirichlet label skew, or one file each.

``dirichlet:ALPHA`` draws, for every class, the share of that class each client gets from
Dirichlet(ALPHA); small ALPHA gives each client a few dominant classes, large ALPHA tends to
IID. The draw is a pure function of (labels, clients, ALPHA, seed).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch

from torchship.data import DataConfig, Dataset, Split, load_data
from torchship.errors import ConfigError, DataError

_SUFFIX_READERS = {".npz": "npz", ".csv": "csv"}


@dataclass(frozen=True)
class Partition:
    kind: str  # iid | dirichlet | by-file
    alpha: float | None = None


def parse_partition(text: str) -> Partition:
    """``iid``, ``dirichlet:0.5`` or ``by-file``.

    Example:
        >>> parse_partition("dirichlet:0.5")
        Partition(kind='dirichlet', alpha=0.5)
    """
    kind, _, arg = text.partition(":")
    if kind in ("iid", "by-file") and not arg:
        return Partition(kind)
    if kind == "dirichlet":
        try:
            alpha = float(arg)
        except ValueError:
            alpha = -1.0
        if alpha > 0:
            return Partition(kind, alpha)
    raise ConfigError(
        f"unknown partition {text!r}",
        fix="use iid, dirichlet:ALPHA (ALPHA > 0, e.g. dirichlet:0.5) or by-file",
    )


def split_indices(labels: torch.Tensor, clients: int, spec: Partition, seed: int) -> list[np.ndarray]:
    """Indices into ``labels`` for each client; every sample goes to exactly one client.

    Raises:
        ConfigError: more clients than samples, or ``by-file`` (nothing to split).
    """
    y = labels.numpy()
    if clients > len(y):
        raise ConfigError(f"{clients} clients but only {len(y)} training samples", fix="use fewer clients")
    rng = np.random.default_rng(seed)
    if spec.kind == "iid":
        return [np.sort(part) for part in np.array_split(rng.permutation(len(y)), clients)]
    if spec.kind != "dirichlet" or spec.alpha is None:
        raise ConfigError(
            "partition by-file has no split of one dataset", fix="give each client its own data file"
        )
    parts: list[list[int]] = [[] for _ in range(clients)]
    for cls in np.unique(y):
        members = rng.permutation(np.flatnonzero(y == cls))
        shares = rng.dirichlet(np.full(clients, spec.alpha))
        cuts = (np.cumsum(shares)[:-1] * len(members)).round().astype(int)
        for client, chunk in enumerate(np.split(members, cuts)):
            parts[client].extend(chunk.tolist())
    # a client left with nothing cannot train: give it one sample from the largest client
    for client in range(clients):
        if not parts[client]:
            donor = max(range(clients), key=lambda c: len(parts[c]))
            parts[client].append(parts[donor].pop())
    return [np.sort(np.asarray(p, dtype=np.int64)) for p in parts]


def label_counts(labels: torch.Tensor, parts: list[np.ndarray], num_classes: int) -> list[list[int]]:
    """Per client, how many samples of each class it holds: the partition's label skew."""
    y = labels.numpy()
    return [np.bincount(y[p], minlength=num_classes).tolist() for p in parts]


def skew(counts: list[list[int]]) -> float:
    """Mean total-variation distance between each client's label distribution and the global one.

    0 is IID; 1 would mean no client shares a class with the global mix.
    """
    table = np.asarray(counts, dtype=np.float64)
    total = table.sum(0) / table.sum()
    per_client = table / np.maximum(table.sum(1, keepdims=True), 1)
    return float(0.5 * np.abs(per_client - total).sum(1).mean())


def client_split(data: Dataset, indices: np.ndarray) -> Dataset:
    """A client's dataset: its share of ``data.train``, validated on itself (no data leaves it)."""
    idx = torch.from_numpy(indices)
    part = Split(data.train.x[idx], data.train.y[idx])
    info = {**data.info, "sizes": {"train": len(part)}, "val_is_train": True}
    return Dataset(data.name, part, part, None, data.labels, data.input, info)


def load_client_file(path: str, input_spec: dict[str, Any], labels: list[str]) -> Dataset:
    """Read a client's own file and normalize it the way the global model expects.

    The file is raw data (as on disk); its labels are matched to the global labels by name.

    Raises:
        DataError: unknown file type, other input shape, or a label the global model lacks.
    """
    file = Path(path).expanduser()
    reader = _SUFFIX_READERS.get(file.suffix.lower())
    if reader is None:
        raise DataError(
            f"client data {file} is neither .npz nor .csv", fix="save it with np.savez(path, x=..., y=...)"
        )
    local = load_data(DataConfig(name=reader, path=str(file), val_fraction=0.0))
    if local.shape != list(input_spec["shape"]):
        raise DataError(
            f"client data {file} has inputs of shape {local.shape}, the model expects {input_spec['shape']}",
            fix="give every client data of the same shape as the server's",
        )
    missing = sorted(set(local.labels) - set(labels))
    if missing:
        raise DataError(
            f"client data {file} has labels {missing} the global model lacks", fix=f"use labels from {labels}"
        )
    # undo the file's own normalization and apply the global one: x = (raw*scale - mean) / std
    x = _renormalize(local.train.x, local.input, input_spec)
    y = torch.tensor([labels.index(local.labels[i]) for i in local.train.y.tolist()], dtype=torch.int64)
    part = Split(x, y)
    info = {**local.info, "val_is_train": True}
    return Dataset(local.name, part, part, None, labels, input_spec, info)


def _renormalize(x: torch.Tensor, have: dict[str, Any], want: dict[str, Any]) -> torch.Tensor:
    # x: (n, c, ...) normalized with ``have``; returns it normalized with ``want``
    view = (1, -1) + (1,) * (x.dim() - 2)

    def stat(spec: dict[str, Any], key: str) -> torch.Tensor:
        return torch.tensor(spec[key], dtype=torch.float32).view(view)

    unit = x * stat(have, "std") + stat(have, "mean")
    unit = unit * (float(want["scale"]) / float(have["scale"]))
    return (unit - stat(want, "mean")) / stat(want, "std")


@lru_cache(maxsize=2)
def partitioned(data_json: str, clients: int, partition: str, seed: int) -> tuple[Dataset, list[np.ndarray]]:
    """The dataset a ``DataConfig`` JSON names and its split among clients, loaded once per process.

    In a simulation the server and every in-process client share this one copy.
    """
    data = load_data(DataConfig.model_validate_json(data_json))
    return data, split_indices(data.train.y, clients, parse_partition(partition), seed)
