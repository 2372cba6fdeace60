"""The training configuration: every key typed, unknown keys rejected.

model: {name: cnn, kwargs: {channels: [32, 64]}, init: kaiming}
data: {name: digits, val_fraction: 0.2}
optim: {name: adamw, lr: 3.0e-3, weight_decay: 0.01}
schedule: {name: cosine, warmup_epochs: 1}
train: {epochs: 20, batch_size: 64, early_stop: {metric: val.accuracy, patience: 5}}
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import (
    ConfigDict,
    Field,
    NonNegativeFloat,
    PositiveFloat,
    PositiveInt,
    field_validator,
    model_validator,
)

from torchship.config import Strict
from torchship.data import DataConfig

METRICS = ("val.accuracy", "val.f1_macro", "val.auroc", "val.loss", "train.accuracy", "train.loss")


def _known_metric(value: str) -> str:
    if value not in METRICS:
        raise ValueError(f"unknown metric {value!r}; choose one of: {', '.join(METRICS)}")
    return value


class _Strict(Strict):
    model_config = ConfigDict(populate_by_name=True)


class ModelConfig(_Strict):
    """A zoo model by name, or a class of your own by import path (needs --allow-import)."""

    name: str | None = "cnn"
    import_path: str | None = Field(default=None, alias="import")
    kwargs: dict[str, Any] = Field(default_factory=dict)
    init: Literal["default", "xavier", "kaiming"] = "default"
    dropout: NonNegativeFloat | None = None

    @model_validator(mode="after")
    def _one_source(self) -> ModelConfig:
        if self.import_path is not None:
            self.name = None
        if self.name is None and self.import_path is None:
            raise ValueError("give model.name (a zoo model) or model.import (pkg.module:Class)")
        return self


class OptimConfig(_Strict):
    name: Literal["sgd", "adam", "adamw", "adagrad", "rmsprop"] = "adamw"
    lr: PositiveFloat = 3e-3
    weight_decay: NonNegativeFloat = 0.0
    momentum: NonNegativeFloat = 0.9
    nesterov: bool = False
    betas: tuple[float, float] = (0.9, 0.999)
    eps: PositiveFloat = 1e-8


class ScheduleConfig(_Strict):
    """Learning-rate schedule; ``warmup_epochs`` ramps linearly from 0 before it."""

    name: Literal["constant", "step", "exponential", "cosine", "onecycle", "plateau"] = "cosine"
    warmup_epochs: NonNegativeFloat = 0.0
    step_size: PositiveInt = 10
    gamma: PositiveFloat = 0.1
    min_lr: NonNegativeFloat = 0.0
    plateau_patience: int = Field(default=3, ge=0)
    plateau_metric: str = "val.loss"

    check_metric = field_validator("plateau_metric")(_known_metric)


class EarlyStopConfig(_Strict):
    metric: str = "val.accuracy"
    patience: PositiveInt = 5
    mode: Literal["max", "min"] | None = None
    min_delta: NonNegativeFloat = 0.0

    check_metric = field_validator("metric")(_known_metric)

    def resolved_mode(self) -> str:
        return self.mode or ("min" if self.metric.endswith("loss") else "max")


class LoopConfig(_Strict):
    epochs: PositiveInt = 10
    batch_size: PositiveInt = 64
    eval_batch_size: PositiveInt = 1024
    seed: int = 0
    label_smoothing: float = Field(default=0.0, ge=0.0, lt=1.0)
    l1: NonNegativeFloat = 0.0
    grad_clip: PositiveFloat | None = None
    accumulate: PositiveInt = 1
    bf16: bool = False
    device: Literal["auto", "cpu", "cuda"] = "auto"
    threads: PositiveInt | None = None
    best_metric: str = "val.accuracy"
    early_stop: EarlyStopConfig | None = None
    tensorboard: bool = False
    progress: bool = True

    check_metric = field_validator("best_metric")(_known_metric)


class TrainConfig(_Strict):
    """A whole training run; ``out`` is the run directory (checkpoints, logs, artifact)."""

    name: str | None = None
    out: str = "runs/train"
    model: ModelConfig = Field(default_factory=ModelConfig)
    data: DataConfig = Field(default_factory=DataConfig)
    optim: OptimConfig = Field(default_factory=OptimConfig)
    schedule: ScheduleConfig = Field(default_factory=ScheduleConfig)
    train: LoopConfig = Field(default_factory=LoopConfig)

    @property
    def run_name(self) -> str:
        return self.name or f"{self.data.name}-{self.model.name or self.model.import_path}"

    def resolved(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True)


def reference_problems(cfg: TrainConfig) -> list[str]:
    """Problems pydantic cannot see: names that must exist in a registry, paths that must exist."""
    from pathlib import Path

    from torchship.data import datasets
    from torchship.models import zoo

    problems = []
    if cfg.model.name is not None and cfg.model.name not in zoo:
        choices = ", ".join(zoo.names())
        problems.append(f"model.name: unknown model {cfg.model.name!r} (choose one of: {choices})")
    if cfg.model.import_path is not None and ":" not in cfg.model.import_path:
        problems.append(f"model.import: {cfg.model.import_path!r} is not of the form pkg.module:Class")
    if cfg.data.name not in datasets:
        choices = ", ".join(datasets.names())
        problems.append(f"data.name: unknown dataset {cfg.data.name!r} (choose one of: {choices})")
    if cfg.data.path is not None and not Path(cfg.data.path).expanduser().exists() and not cfg.data.download:
        problems.append(f"data.path: {cfg.data.path} does not exist")
    return problems
