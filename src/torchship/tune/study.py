"""Optuna's parts, built from the tune config: storage, sampler, pruner, the study itself.

The search algorithms are Optuna's; this module only chooses and seeds them. The study lives
in Optuna's RDB storage (SQLite under OUT by default), so a killed run continues where it
stopped and several processes, or several ``torchship tune`` commands, share one study.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from torchship.errors import ConfigError, require
from torchship.tune.config import TuneConfig

STUDY_DB = "study.db"
# a trial whose process died stops beating; after the grace period the next optimize() marks it failed
HEARTBEAT_S = 10
GRACE_S = 30
FINISHED = ("COMPLETE", "PRUNED", "FAIL")


def optuna_module():
    optuna = require("optuna", "tune")
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # failures are shown in our table, with reasons
    return optuna


def storage_url(out: Path, storage: str | None) -> str:
    return storage or f"sqlite:///{(out / STUDY_DB).resolve()}"


def make_storage(url: str) -> Any:
    optuna = optuna_module()
    kwargs: dict[str, Any] = {}
    if url.startswith("sqlite"):
        # several processes write to one SQLite file: wait for its lock instead of failing
        kwargs["engine_kwargs"] = {"connect_args": {"timeout": 60}}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter(
                "ignore", optuna.exceptions.ExperimentalWarning
            )  # heartbeats: stable since 2.9
            return optuna.storages.RDBStorage(
                url, heartbeat_interval=HEARTBEAT_S, grace_period=GRACE_S, **kwargs
            )
    except Exception as exc:  # noqa: BLE001 - SQLAlchemy's many error types all mean "bad --storage"
        raise ConfigError(
            f"cannot open the study storage {url} ({str(exc).splitlines()[0][:160]})",
            fix="pass --storage sqlite:///path/study.db or another SQLAlchemy URL",
        ) from None


def make_sampler(tune: TuneConfig, worker: int = 0) -> Any:
    """The configured sampler, seeded; worker processes get seed + worker so they do not repeat each other."""
    optuna = optuna_module()
    seed = tune.seed + worker
    name = tune.resolved_sampler
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=max(2, tune.startup_trials))


def make_pruner(tune: TuneConfig, max_epochs: int, warmup: int = 0) -> Any:
    """The configured pruner; no trial is judged before epoch ``warmup + 1`` (epochs count from 1)."""
    optuna = optuna_module()
    if tune.pruner == "median":
        # MedianPruner compares a step only when step >= n_warmup_steps
        return optuna.pruners.MedianPruner(n_startup_trials=tune.startup_trials, n_warmup_steps=warmup + 1)
    if tune.pruner == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=warmup + 1, max_resource=max_epochs)
    if tune.pruner == "halving":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=warmup + 1)
    return optuna.pruners.NopPruner()


def open_study(
    name: str, url: str, tune: TuneConfig, max_epochs: int, worker: int = 0, warmup: int = 0
) -> Any:
    """Create the study or load the existing one of that name; its directions must match the config."""
    optuna = optuna_module()
    directions = [o.resolved_direction for o in tune.objectives]
    study = optuna.create_study(
        storage=make_storage(url),
        study_name=name,
        directions=directions,
        load_if_exists=True,
        sampler=make_sampler(tune, worker),
        pruner=make_pruner(tune, max_epochs, warmup),
    )
    have = [d.name.lower() for d in study.directions]
    if have != directions:
        raise ConfigError(
            f"study {name!r} in {url} optimizes {', '.join(have)}; "
            f"the config asks for {', '.join(directions)}",
            fix="use the same objectives, or pass --study NEW_NAME",
        )
    return study


def finished_count(study: Any) -> int:
    optuna = optuna_module()
    states = tuple(getattr(optuna.trial.TrialState, s) for s in FINISHED)
    return len(study.get_trials(deepcopy=False, states=states))


def stop_at(total: int) -> Any:
    """Stop this process once the study (all processes together) holds ``total`` finished trials."""
    optuna = optuna_module()
    states = tuple(getattr(optuna.trial.TrialState, s) for s in FINISHED)
    return optuna.study.MaxTrialsCallback(total, states=states)
