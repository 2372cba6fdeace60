"""Validation data for the accuracy column, and the top-1 accuracy of a predictor on it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Union

import numpy as np

from torchship.artifact import Artifact
from torchship.bench.latency import BenchError


@dataclass(frozen=True)
class BenchData:
    """Labelled inputs, already normalized as the artifact's manifest ``input`` block says.

    Attributes:
        x: (n, *input.shape) float32.
        y: (n,) integer class indices.
    """

    x: np.ndarray
    y: np.ndarray

    def __post_init__(self) -> None:
        if len(self.x) != len(self.y) or len(self.x) == 0:
            raise BenchError(
                f"accuracy data has {len(self.x)} inputs and {len(self.y)} labels",
                fix="pass the same, non-zero number of inputs and labels",
            )


# One BenchData for every artifact, or a function that gives each artifact its own (its normalization).
DataSource = Union[BenchData, tuple[Any, Any], Callable[[Artifact], BenchData]]


def as_bench_data(value: Any) -> BenchData:
    """A BenchData from a BenchData, an ``(x, y)`` pair of arrays/tensors, or an object with ``.x``/``.y``."""
    if isinstance(value, BenchData):
        return value
    x, y = value if isinstance(value, tuple) else (value.x, value.y)
    return BenchData(np.ascontiguousarray(_numpy(x), dtype=np.float32), _numpy(y).astype(np.int64))


def data_for(source: DataSource | None, artifact: Artifact) -> BenchData | None:
    """The accuracy data for one artifact, or None when no data was given."""
    if source is None:
        return None
    if callable(source) and not isinstance(source, (BenchData, tuple)):
        return as_bench_data(source(artifact))
    return as_bench_data(source)


def val_data_loader(data: str | None) -> Callable[[Artifact], BenchData]:
    """A DataSource giving each artifact the validation split of ``--data NAME[:PATH]``.

    Without ``data`` each artifact is judged on its own recorded dataset. Loading reuses
    ``evaluate``'s, so ``bench`` and ``evaluate`` judge the same samples; a dataset is loaded
    once per config and only when first needed.
    """
    cache: dict[str, Any] = {}

    def load(artifact: Artifact) -> BenchData:
        from torchship.data import artifact_data, artifact_split, data_config_for

        cfg = data_config_for(artifact, data)
        key = cfg.model_dump_json() + artifact.manifest.input.model_dump_json()
        if key not in cache:
            cache[key] = artifact_data(artifact, cfg)
        x, y = artifact_split(artifact, cache[key], "val")
        return as_bench_data((x, y))

    return load


def measure_accuracy(predict: Callable[[np.ndarray], np.ndarray], data: BenchData, batch_size: int) -> float:
    """Top-1 accuracy of ``predict`` on ``data``, fed in chunks of ``batch_size``."""
    correct = 0
    for start in range(0, len(data.x), batch_size):
        # logits: (chunk, classes)
        logits = np.asarray(predict(data.x[start : start + batch_size]))
        correct += int((logits.argmax(axis=1) == data.y[start : start + batch_size]).sum())
    return correct / len(data.x)


def _numpy(value: Any) -> np.ndarray:
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    return np.asarray(value)
