"""Data entering an artifact's model: raw values in, the manifest's preprocessing applied.

One rule for every entry point (``predict``, ``evaluate --data``, ``monitor check``, the
server's ``/v1 :predict``; see docs/data.md "Units"): inputs arrive as they are on disk, and
the artifact's ``input`` block turns them into what the model consumes,
``(raw * scale - mean) / std`` per channel. Image files are the one source with units of
their own: decoded pixels are 8-bit, so they are divided by 255 instead of ``scale``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from torchship.errors import DataError

if TYPE_CHECKING:
    from torchship.artifact import Artifact
    from torchship.data.config import DataConfig
    from torchship.data.dataset import Dataset

SPLITS = ("train", "val", "test")


def normalize_(unit: torch.Tensor, mean: Any, std: Any) -> torch.Tensor:
    """``(unit - mean) / std`` per channel (per feature for tables), in place; returns ``unit``."""
    # unit: (n, c, ...) ; mean, std: (c,) or (1,)
    view = (1, -1) + (1,) * (unit.dim() - 2)
    mean = torch.as_tensor(mean, dtype=torch.float32).view(view)
    std = torch.as_tensor(std, dtype=torch.float32).view(view)
    return unit.sub_(mean).div_(std)


def preprocess(
    raw: np.ndarray | torch.Tensor, spec: Mapping[str, Any], scale: float | None = None
) -> torch.Tensor:
    """Raw inputs ``(n, *spec.shape)`` -> the float32 tensor the model consumes.

    Args:
        spec: An artifact's ``input`` block (``manifest.input.model_dump()``).
        scale: Overrides ``spec["scale"]``; 1/255 for decoded 8-bit image pixels.

    Example:
        >>> spec = {"shape": [2], "scale": 0.5, "mean": [1.0, 0.0], "std": [1.0, 2.0]}
        >>> preprocess(np.array([[4.0, 4.0]]), spec).tolist()
        [[1.0, 1.0]]
    """
    # one fresh float32 copy: callers may pass read-only or integer arrays
    unit = torch.as_tensor(np.array(raw, dtype=np.float32, copy=True))
    unit.mul_(float(spec["scale"]) if scale is None else scale)
    return normalize_(unit, spec["mean"], spec["std"])


def renormalize(x: torch.Tensor, source: Mapping[str, Any], target: Mapping[str, Any]) -> torch.Tensor:
    """Map inputs preprocessed as ``source`` says onto ``target``'s preprocessing of the same raw values."""
    if all(source[k] == target[k] for k in ("mean", "std", "scale")):
        return x
    view = (1, -1) + (1,) * (x.dim() - 2)
    # unit: raw * source scale -> raw * target scale
    unit = x * torch.tensor(source["std"]).view(view) + torch.tensor(source["mean"]).view(view)
    unit = unit * (float(target["scale"]) / float(source["scale"]))
    return normalize_(unit.float(), target["mean"], target["std"])


def data_config_for(artifact: Artifact, data: str | None = None) -> DataConfig:
    """The artifact's own data config, or ``NAME[:PATH]`` with the artifact's split settings.

    Raises:
        DataError: ``data`` is None and the artifact does not record its dataset.
    """
    from torchship.data.config import DataConfig
    from torchship.data.dataset import parse_data_arg

    stored = artifact.manifest.data.get("config")
    if data is None:
        if stored is None:
            raise DataError(
                f"artifact {artifact.manifest.name} does not record its dataset",
                fix="pass --data NAME[:PATH]",
            )
        return DataConfig.model_validate(stored)
    parsed = parse_data_arg(data)
    if stored is not None and stored.get("name") == parsed.name:
        return DataConfig.model_validate({**stored, "path": parsed.path or stored.get("path")})
    return parsed


def artifact_data(artifact: Artifact, data: str | DataConfig | None = None) -> Dataset:
    """The dataset ``data`` names (default: the artifact's own), preprocessed as its manifest says.

    Every split is scaled and normalized with the manifest's ``input`` block, so its samples
    are exactly what the model was trained on (for its own data) or would be fed in serving.

    Raises:
        DataError: The data's samples have another shape than the model's input.
    """
    from torchship.data.config import DataConfig
    from torchship.data.dataset import load_data

    cfg = data if isinstance(data, DataConfig) else data_config_for(artifact, data)
    return load_data(cfg, preprocessing=artifact.manifest.input.model_dump())


def artifact_split(
    artifact: Artifact, dataset: Dataset, split: str = "val"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs and labels of ``split`` of ``dataset`` (from :func:`artifact_data`), checked against the model.

    Raises:
        DataError: No such split, or another number of classes than the model's.
    """
    part = getattr(dataset, split, None) if split in SPLITS else None
    if part is None:
        raise DataError(
            f"dataset {dataset.name} has no {split} split", fix="use --split val, or set data.test_fraction"
        )
    if len(dataset.labels) != len(artifact.manifest.labels):
        raise DataError(
            f"dataset {dataset.name} has {len(dataset.labels)} classes "
            f"but the model has {len(artifact.manifest.labels)}"
        )
    return part.x, part.y
