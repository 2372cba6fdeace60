"""Parity: run the same inputs through eager PyTorch and an export, and compare.

Inputs are fed in chunks of 1, 7 and 32 samples, so an export whose batch dimension was
fixed by mistake fails here instead of in production.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from torchship.artifact import Artifact
from torchship.errors import DataError
from torchship.export.base import ExportParityError

# Default max |Δ| per format for fp32 models; override with ``tolerance=`` / ``--tolerance``.
TOLERANCES: dict[str, float] = {
    "onnx": 1e-4,
    "torchscript": 1e-4,
    "exported": 1e-4,
    "aoti": 1e-4,
}
DEFAULT_TOLERANCE = 1e-4
CHUNK_SIZES = (1, 7, 32)


@dataclass(frozen=True)
class Parity:
    """How closely an export follows eager PyTorch on ``samples`` inputs."""

    max_abs_diff: float
    mean_abs_diff: float
    top1_agreement: float
    samples: int

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ParityInputs:
    """The inputs parity is measured on, and where they came from (recorded in the manifest)."""

    x: np.ndarray
    source: str


def parity_inputs(
    artifact: Artifact,
    data: np.ndarray | torch.Tensor | str | Path | None = None,
    *,
    max_samples: int = 256,
    seed: int = 0,
) -> ParityInputs:
    """Choose the inputs to verify exports on.

    Args:
        data: Normalized inputs (array or tensor); ``NAME[:PATH]`` of a dataset, whose
            validation split is used; a ``.npy`` file; ``"random"``; or ``None``: the
            validation split of the dataset the manifest records, else seeded random inputs.
        max_samples: A seeded sample of at most this many inputs is kept.

    Raises:
        DataError: If the inputs do not have the artifact's input shape.
    """
    shape = tuple(artifact.manifest.input.shape)
    source = "given"
    if data is None and artifact.manifest.data.get("config") is not None:
        data = artifact.manifest.data["config"].get("name")
    if data is None or (isinstance(data, str) and data == "random"):
        gen = torch.Generator().manual_seed(seed)
        x = torch.randn(max_samples, *shape, generator=gen).numpy()
        return ParityInputs(x, f"random normal, seed {seed}")
    if isinstance(data, (str, Path)) and str(data).endswith(".npy"):
        x = np.load(data, allow_pickle=False)
        source = f"file {Path(data).name}"
    elif isinstance(data, (str, Path)):
        x, source = _validation_split(artifact, str(data))
    else:
        x = data.detach().cpu().numpy() if isinstance(data, torch.Tensor) else np.asarray(data)
    x = np.ascontiguousarray(x, dtype=np.float32)
    if x.ndim != len(shape) + 1 or tuple(x.shape[1:]) != shape or len(x) == 0:
        raise DataError(
            f"parity inputs have shape {list(x.shape)}, expected (n, {', '.join(map(str, shape))})",
            fix="pass normalized inputs shaped like the manifest's input",
        )
    if len(x) > max_samples:
        keep = np.random.default_rng(seed).choice(len(x), max_samples, replace=False)
        x = x[np.sort(keep)]
        source += f", seeded sample of {max_samples}"
    return ParityInputs(x, source)


def _validation_split(artifact: Artifact, data: str) -> tuple[np.ndarray, str]:
    from torchship.data import artifact_data, artifact_split

    dataset = artifact_data(artifact, data)
    x, _ = artifact_split(artifact, dataset, "val")
    return x.numpy(), f"{dataset.name} val split ({len(x)} samples)"


def chunks(x: np.ndarray) -> Iterator[np.ndarray]:
    """Split ``x`` into batches of 1, 7, 32, 1, 7, 32, ... samples."""
    start, i = 0, 0
    while start < len(x):
        size = CHUNK_SIZES[i % len(CHUNK_SIZES)]
        yield x[start : start + size]
        start, i = start + size, i + 1


def run_chunked(predictor: Any, x: np.ndarray) -> np.ndarray:
    """``predictor.predict`` over ``x`` in batches of varying size, concatenated."""
    return np.concatenate([np.asarray(predictor.predict(part), dtype=np.float32) for part in chunks(x)])


def compare(reference: np.ndarray, candidate: np.ndarray) -> Parity:
    """max |Δ|, mean |Δ| and top-1 agreement of two (n, classes) logit arrays."""
    if reference.shape != candidate.shape:
        raise ExportParityError(
            f"export returns shape {list(candidate.shape)} but eager returns {list(reference.shape)}",
            fix="the export fixed a dimension it should not have; re-export",
        )
    diff = np.abs(reference.astype(np.float64) - candidate.astype(np.float64))
    if not np.all(np.isfinite(candidate)):
        return Parity(float("inf"), float("inf"), _top1(reference, candidate), len(reference))
    return Parity(float(diff.max()), float(diff.mean()), _top1(reference, candidate), len(reference))


def _top1(reference: np.ndarray, candidate: np.ndarray) -> float:
    return float(np.mean(reference.argmax(axis=1) == candidate.argmax(axis=1)))


def check(fmt: str, parity: Parity, tolerance: float) -> None:
    """Refuse an export whose max |Δ| is beyond ``tolerance``.

    Raises:
        ExportParityError: Naming the format, the figures and the tolerance.
    """
    if not parity.max_abs_diff <= tolerance:  # written so NaN fails too
        raise ExportParityError(
            f"{fmt} export differs from eager PyTorch: "
            f"max |Δ| {parity.max_abs_diff:.3g} > tolerance {tolerance:.3g} "
            f"(mean |Δ| {parity.mean_abs_diff:.3g}, top-1 agreement {parity.top1_agreement:.2%} "
            f"on {parity.samples} samples); nothing was written",
            fix="report the model to torchship, or pass --tolerance if this difference is acceptable",
        )
