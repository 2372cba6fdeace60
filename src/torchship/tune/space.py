"""The search space: one :class:`Param` per dotted config key, parsed with every problem collected.

    tune:
      space:
        optim.lr: {log_uniform: [1.0e-4, 1.0e-1]}
        optim.weight_decay: {uniform: [0.0, 0.1]}
        train.batch_size: {int: [16, 128], step: 16}
        model.kwargs.hidden: {int: [16, 256], log: true}
        optim.name: {choice: [sgd, adamw]}

Sampling is Optuna's (``trial.suggest_*``); this module only turns the YAML into those calls.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any, Literal

KINDS = ("uniform", "log_uniform", "int", "choice")
_OPTIONS = {"uniform": {"step"}, "log_uniform": set(), "int": {"step", "log"}, "choice": set()}


@dataclass(frozen=True)
class Param:
    """One searched config key and the distribution its values are drawn from."""

    key: str
    kind: Literal["float", "int", "choice"]
    low: float = 0.0
    high: float = 0.0
    step: float | None = None
    log: bool = False
    choices: tuple[Any, ...] = ()

    def suggest(self, trial: Any) -> Any:
        """Draw this key's value for an Optuna trial."""
        if self.kind == "choice":
            return self.decode(trial.suggest_categorical(self.key, self._options()))
        if self.kind == "int":
            return trial.suggest_int(
                self.key, int(self.low), int(self.high), step=int(self.step or 1), log=self.log
            )
        return trial.suggest_float(self.key, self.low, self.high, step=self.step, log=self.log)

    @property
    def structured(self) -> bool:
        """Choices such as ``[32, 64]`` (a list of channels): Optuna sees them as JSON text."""
        return any(isinstance(c, (list, dict)) for c in self.choices)

    def _options(self) -> list[Any]:
        return [json.dumps(c) for c in self.choices] if self.structured else list(self.choices)

    def decode(self, raw: Any) -> Any:
        """A value as Optuna stores it -> the config value (structured choices come back from JSON)."""
        return json.loads(raw) if self.structured and isinstance(raw, str) else raw

    def encode(self, value: Any) -> Any:
        """A config value as Optuna stores it (structured choices as JSON text)."""
        return json.dumps(value) if self.structured else value

    def contains(self, value: Any) -> bool:
        """Whether Optuna could sample ``value`` from this param's distribution."""
        if self.kind == "choice":
            return any(value == c and type(value) is type(c) for c in self.choices)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        if self.kind == "int" and not isinstance(value, int):
            return False
        if not self.low <= value <= self.high:
            return False
        steps = (value - self.low) / self.step if self.step else 0.0
        return abs(steps - round(steps)) < 1e-9

    def corners(self) -> list[Any]:
        """The values a config check must accept: both ends of a range, every choice."""
        if self.kind == "choice":
            return list(self.choices)
        if self.kind == "int":
            return [int(self.low), int(self.high)]
        return [self.low, self.high]


def parse_space(space: Any) -> tuple[list[Param], list[str]]:
    """Parse ``tune.space``; returns the params and every problem found (one line each)."""
    if not isinstance(space, dict) or not space:
        return [], [
            "tune.space: give at least one key to search, e.g. optim.lr: {log_uniform: [1.0e-4, 1.0e-1]}"
        ]
    params, problems = [], []
    for key, spec in space.items():
        param, found = _parse_one(str(key), spec)
        problems.extend(f"tune.space.{key}: {p}" for p in found)
        if param is not None:
            params.append(param)
    return params, problems


def _parse_one(key: str, spec: Any) -> tuple[Param | None, list[str]]:
    example = (
        "e.g. {uniform: [0.0, 0.5]}, {log_uniform: [1.0e-4, 1.0e-1]}, {int: [16, 128], step: 16}, "
        "{choice: [sgd, adamw]}"
    )
    if not isinstance(spec, dict):
        return None, [f"must be a mapping naming one of {', '.join(KINDS)} ({example})"]
    kinds = [k for k in KINDS if k in spec]
    if len(kinds) != 1:
        what = "names none" if not kinds else f"names {len(kinds)} ({', '.join(kinds)})"
        return None, [f"{what} of {', '.join(KINDS)}; give exactly one ({example})"]
    kind = kinds[0]
    problems = [
        f"unknown option {extra!r} for {kind} (allowed: {', '.join(sorted(_OPTIONS[kind])) or 'none'})"
        for extra in spec
        if extra != kind and extra not in _OPTIONS[kind]
    ]
    if kind == "choice":
        choices = spec["choice"]
        if not isinstance(choices, list) or not choices:
            return None, [*problems, "choice needs a non-empty list of values"]
        odd = [c for c in choices if not _plain(c)]
        if odd:
            problems.append(
                f"choice values must be numbers, strings, booleans, null or lists of them (got {odd[0]!r})"
            )
        if len({repr(c) for c in choices}) != len(choices):
            problems.append("choice lists a value twice")
        return (None if problems else Param(key, "choice", choices=tuple(choices))), problems
    return _parse_range(key, kind, spec, problems)


def _parse_range(
    key: str, kind: str, spec: dict[str, Any], problems: list[str]
) -> tuple[Param | None, list[str]]:
    bounds = spec[kind]
    integer = kind == "int"
    number = (int,) if integer else (int, float)
    if (
        not isinstance(bounds, list)
        or len(bounds) != 2
        or not all(isinstance(b, number) and not isinstance(b, bool) for b in bounds)
    ):
        wanted = "two integers" if integer else "two numbers"
        return None, [*problems, f"{kind} needs [low, high], {wanted} (got {bounds!r})"]
    low, high = bounds
    log = kind == "log_uniform" or (integer and bool(spec.get("log", False)))
    step = spec.get("step")
    if not low < high:
        problems.append(f"empty range [{low}, {high}] (low must be below high)")
    if log and low <= 0:
        problems.append(f"a log range must be positive (got low {low})")
    if step is not None:
        if not isinstance(step, number) or isinstance(step, bool) or step <= 0:
            problems.append(f"step must be a positive {'integer' if integer else 'number'} (got {step!r})")
        elif log:
            problems.append("step and log cannot be combined (Optuna samples a log range without steps)")
        elif low < high and step > high - low:
            problems.append(f"step {step} is wider than the range [{low}, {high}]")
    if any(isinstance(b, float) and not math.isfinite(b) for b in bounds):
        problems.append("bounds must be finite")
    if problems:
        return None, problems
    return Param(key, "int" if integer else "float", low, high, step, log), []


def _plain(value: Any) -> bool:
    if isinstance(value, list):
        return all(_plain(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _plain(v) for k, v in value.items())
    return value is None or isinstance(value, (bool, int, float, str))
