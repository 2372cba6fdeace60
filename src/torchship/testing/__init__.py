"""Seeded toy models and tiny artifacts, shipped so tests (ours and plug-ins') need no data."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from torchship.artifact import Artifact
from torchship.models import build_model


def tiny_artifact(
    model: str = "mlp",
    *,
    shape: tuple[int, ...] = (1, 8, 8),
    num_classes: int = 10,
    seed: int = 0,
    path: str | Path | None = None,
    **kwargs: Any,
) -> Artifact:
    """An untrained but seeded zoo model wrapped as an artifact (saved when ``path`` is given).

    Example:
        >>> art = tiny_artifact("cnn")
        >>> art.build_model()(torch.zeros(2, 1, 8, 8)).shape
        torch.Size([2, 10])
    """
    torch.manual_seed(seed)
    model_kwargs: dict[str, Any] = {"in_channels": shape[0], "num_classes": num_classes, **kwargs}
    if len(shape) == 3:
        model_kwargs["input_size"] = [shape[1], shape[2]]
    architecture = {"name": model, "kwargs": model_kwargs}
    net = build_model(architecture)
    channels = shape[0] if len(shape) == 3 else 1
    art = Artifact.create(
        name=f"tiny-{model}",
        model=net,
        architecture=architecture,
        input={
            "shape": list(shape),
            "layout": "image" if len(shape) == 3 else "features",
            "scale": 1 / 255,
            "mean": [0.5] * channels,
            "std": [0.25] * channels,
        },
        labels=[str(i) for i in range(num_classes)],
        op="testing.tiny_artifact",
        params={"seed": seed},
        metrics={"val": {"accuracy": 0.1}},
    )
    return art.save(path) if path is not None else art


def sample_inputs(art: Artifact, n: int = 16, seed: int = 0) -> torch.Tensor:
    """Seeded normalized inputs of the artifact's shape: (n, *input.shape)."""
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(n, *art.manifest.input.shape, generator=gen)
