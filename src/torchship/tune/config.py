"""The ``tune:`` block of a training config, and the check that every sampled value is a valid config.

    tune:
      space: {optim.lr: {log_uniform: [1.0e-4, 1.0e-1]}, optim.name: {choice: [sgd, adamw]}}
      objective: val.accuracy          # or a list: [val.accuracy, {metric: latency_ms}]
      sampler: tpe                     # tpe (seeded), random, nsga2; default nsga2 for several objectives
      pruner: median                   # none, median, hyperband, halving
      pruner_warmup: auto              # epochs never pruned; auto: the schedule's warm-up (see pruner_warmup)
      seed: 0
      trials: 20

Everything else in the file is the training config each trial starts from.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, NonNegativeInt, PositiveFloat, PositiveInt, field_validator

from torchship.config import Strict, apply_overrides, config_problems, raise_problems, read_yaml
from torchship.train.config import METRICS, TrainConfig, reference_problems
from torchship.tune.space import Param, parse_space

# measured on this machine by the bench library after training: latency of one call at batch_size
SPEED_METRICS = ("latency_ms",)
_MINIMIZED = ("loss", "latency_ms")


class Objective(Strict):
    """One value a trial returns: a training metric, or the model's speed measured by ``bench``."""

    metric: str = "val.accuracy"
    direction: Literal["maximize", "minimize"] | None = None
    runtime: str = "onnxruntime"
    batch_size: PositiveInt = 1

    @field_validator("metric")
    @classmethod
    def _known(cls, value: str) -> str:
        if value not in (*METRICS, *SPEED_METRICS):
            raise ValueError(
                f"unknown metric {value!r}; choose one of: {', '.join((*METRICS, *SPEED_METRICS))}"
            )
        return value

    @property
    def resolved_direction(self) -> str:
        return self.direction or ("minimize" if self.metric.endswith(_MINIMIZED) else "maximize")

    @property
    def is_speed(self) -> bool:
        return self.metric in SPEED_METRICS


class TuneConfig(Strict):
    """How to search; ``space`` is parsed separately so every bad key is reported with its name."""

    space: dict[str, Any] = Field(default_factory=dict)
    objective: str | Objective | list[str | Objective] = "val.accuracy"
    sampler: Literal["tpe", "random", "nsga2"] | None = None
    pruner: Literal["none", "median", "hyperband", "halving"] = "none"
    seed: int = 0
    trials: PositiveInt = 10
    timeout_s: PositiveFloat | None = None
    startup_trials: NonNegativeInt = 2  # trials the pruner lets finish before it compares
    pruner_warmup: NonNegativeInt | Literal["auto"] = "auto"  # epochs a trial runs before it can be pruned
    start_from_config: bool = True  # a new study's trial 0 is the config as written (if the space holds it)

    @property
    def objectives(self) -> list[Objective]:
        items = self.objective if isinstance(self.objective, list) else [self.objective]
        return [Objective(metric=o) if isinstance(o, str) else o for o in items]

    @property
    def resolved_sampler(self) -> str:
        return self.sampler or ("nsga2" if len(self.objectives) > 1 else "tpe")


@dataclass(frozen=True)
class TuneSpec:
    """A validated search: the base training config (as data and typed), the tune block, the params."""

    where: str
    base: dict[str, Any]
    train: TrainConfig
    tune: TuneConfig
    params: tuple[Param, ...]

    def start_values(self) -> dict[str, Any]:
        """The config's own values of the searched keys, as Optuna stores them (none outside the space)."""
        resolved = self.train.resolved()
        start = {}
        for param in self.params:
            node: Any = resolved
            for part in param.key.split("."):
                node = node.get(part) if isinstance(node, dict) else None
            if node is not None and param.contains(node):
                start[param.key] = param.encode(node)
        return start

    def pruner_warmup(self) -> int:
        """Epochs every trial runs before the pruner may stop it (see :func:`pruner_warmup`)."""
        return pruner_warmup(
            self.tune.pruner_warmup,
            self.train.schedule.name,
            self.train.schedule.warmup_epochs,
            self.train.train.epochs,
        )

    def trial_data(self, values: dict[str, Any]) -> dict[str, Any]:
        """The base config with a trial's sampled values applied (as ``--set`` would)."""
        return apply_values(self.base, values)


def pruner_warmup(setting: int | str, schedule: str, warmup_epochs: float, epochs: int) -> int:
    """Epochs a trial runs before it can be pruned: the setting, or with ``auto`` the schedule's warm-up.

    A trial is judged against the others only after its learning rate has reached its peak:
    during a warm-up ramp (``schedule.warmup_epochs``, or the first 30 % of a one-cycle
    schedule) a config with a high peak rate still scores low, and the median pruner stopped
    exactly such a trial, the eventual best, in the 32x32 ResNet search (docs/benchmarks.md).
    Never more than ``epochs - 1``, so the last epoch can always be judged.
    """
    if setting != "auto":
        return int(setting)
    ramp = 0.3 * epochs if schedule == "onecycle" else warmup_epochs  # train/optim.py's one-cycle ramp
    return min(math.ceil(ramp), max(0, epochs - 1))


def apply_values(base: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
    import json

    # JSON is YAML, so apply_overrides reads every value back as the type it was sampled as
    return apply_overrides(base, [f"{key}={json.dumps(value)}" for key, value in values.items()])


def load_tune(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> TuneSpec:
    """Read a config with a ``tune:`` block; every problem (config, tune block, space) in one ConfigError."""
    data = apply_overrides(read_yaml(path), overrides)
    where = f"config {path}"
    raw_tune = data.pop("tune", None)
    if raw_tune is None:
        raise_problems(where, ["tune: missing; add a tune: block with a space to search (see docs/tune.md)"])
    return check_tune(data, raw_tune, where)


def check_tune(base: dict[str, Any], raw_tune: Any, where: str) -> TuneSpec:
    """Validate the base config, the tune block and every value the space can sample, all at once."""
    problems = config_problems(TrainConfig, base)
    base_ok = not problems
    if base_ok:
        problems = reference_problems(TrainConfig.model_validate(base))
    if not isinstance(raw_tune, dict):
        raise_problems(where, [*problems, "tune: must be a mapping with at least a space"])
    tune_problems = config_problems(TuneConfig, raw_tune)
    problems += [f"tune.{p}" for p in tune_problems]
    params, space_problems = parse_space(raw_tune.get("space"))
    problems += space_problems
    if base_ok:  # a rejected sample is only meaningful against a valid base config
        problems += _sampled_value_problems(base, params)
    if not tune_problems:
        tune = TuneConfig.model_validate(raw_tune)
        problems += _search_problems(tune)
    raise_problems(where, problems)
    return TuneSpec(where, base, TrainConfig.model_validate(base), tune, tuple(params))


def _sampled_value_problems(base: dict[str, Any], params: list[Param]) -> list[str]:
    """A value the space can sample that the training config would reject (unknown key, out of range)."""
    problems: list[str] = []
    for param in params:
        for value in param.corners():
            data = apply_values(base, {param.key: value})
            found = config_problems(TrainConfig, data) or reference_problems(TrainConfig.model_validate(data))
            for problem in found:
                if problem.startswith(f"{param.key}: unknown key"):
                    line = f"tune.space.{problem}"
                else:
                    line = f"tune.space.{param.key}: the config rejects {value!r} ({problem})"
                if line not in problems:
                    problems.append(line)
            if any("unknown key" in p for p in found):
                break
    return problems


def _search_problems(tune: TuneConfig) -> list[str]:
    objectives = tune.objectives
    problems = []
    metrics = [o.metric for o in objectives]
    if len(set(metrics)) != len(metrics):
        problems.append("tune.objective: names a metric twice")
    if len(objectives) > 1 and tune.pruner != "none":
        problems.append("tune.pruner: Optuna cannot prune a study with several objectives; set pruner: none")
    if isinstance(tune.pruner_warmup, int) and tune.pruner_warmup and tune.pruner == "none":
        problems.append("tune.pruner_warmup: there is no pruner to delay; set pruner: median or hyperband")
    if tune.pruner != "none" and objectives[0].is_speed:
        problems.append(
            f"tune.pruner: {objectives[0].metric} is measured after training, so nothing can be pruned; "
            "set pruner: none"
        )
    return problems
