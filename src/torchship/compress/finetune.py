"""Fine-tune a compressed model through the training engine (the same loop ``train`` uses)."""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from rich.console import Console
from torch import nn

from torchship.artifact import Artifact
from torchship.compress.base import Finetune
from torchship.config import validate_config
from torchship.data import DataConfig
from torchship.train import TrainConfig, train
from torchship.train.engine import LossFn


@contextlib.contextmanager
def work_dir(settings: Finetune) -> Iterator[Path]:
    """Where fine-tuning runs keep checkpoints and logs: ``settings.work_dir`` or a temporary directory."""
    if settings.work_dir is not None:
        root = Path(settings.work_dir).expanduser()
        root.mkdir(parents=True, exist_ok=True)
        yield root
        return
    with tempfile.TemporaryDirectory(prefix="torchship-compress-") as tmp:
        yield Path(tmp)


def train_config(
    settings: Finetune,
    data: DataConfig,
    out: Path,
    epochs: int,
    name: str,
    model: dict[str, Any] | None = None,
) -> TrainConfig:
    """The engine config for ``epochs`` epochs of fine-tuning with ``settings``."""
    raw: dict[str, Any] = {
        "name": name,
        "out": str(out),
        "data": data.model_dump(mode="json"),
        "optim": {"name": settings.optimizer, "lr": settings.lr, "weight_decay": settings.weight_decay},
        "schedule": {"name": settings.schedule},
        "train": {
            "epochs": epochs,
            "batch_size": settings.batch_size,
            "seed": settings.seed,
            "threads": settings.threads,
        },
    }
    if model is not None:
        raw["model"] = {"name": model["name"], "kwargs": model.get("kwargs", {})}
    return validate_config(TrainConfig, raw, where="fine-tuning config")


def finetune(
    model: nn.Module | None,
    architecture: dict[str, Any],
    *,
    parent: Artifact,
    data: DataConfig,
    settings: Finetune,
    epochs: int,
    out: Path,
    op: str,
    params: dict[str, Any],
    loss_fn: LossFn | None = None,
    console: Console | None = None,
) -> Artifact:
    """Train ``model`` in place for ``epochs`` epochs, keeping the best validation weights.

    With ``model=None`` the engine builds ``architecture`` itself, seeded by ``settings.seed``.
    Returns the run's artifact; its lineage names ``parent`` with ``op`` and ``params``.
    """
    cfg = train_config(
        settings,
        data,
        out,
        epochs,
        f"{parent.manifest.name}-{op}",
        model=architecture if model is None else None,
    )
    return train(
        cfg,
        model=model,
        architecture=architecture if model is not None else None,
        loss_fn=loss_fn,
        parent=parent,
        op=op,
        params=params,
        console=console or Console(quiet=True),
    )
