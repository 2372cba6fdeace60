"""``tune``: run the study (in this process or J workers), then write the trials and the best artifact.

Reads top to bottom: validate the config -> open the study -> run the trials still missing ->
write trials.csv/json and tune.json -> copy the best trial's artifact to OUT/artifact.
"""

from __future__ import annotations

import multiprocessing
import os
import shutil
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torchship.errors import TorchshipError
from torchship.tune.config import TuneSpec, load_tune
from torchship.tune.records import best_trials, trial_rows, write_summary, write_trials
from torchship.tune.study import finished_count, open_study, optuna_module, stop_at, storage_url
from torchship.tune.trial import TrialRunner

ARTIFACT_DIR = "artifact"
Rows = list[dict[str, Any]]


class TuneError(TorchshipError):
    """A study cannot run as asked."""


@dataclass
class TuneResult:
    """What ``tune`` wrote, and the trials of the whole study (earlier runs and other processes too)."""

    out: Path
    study: str
    storage: str
    rows: Rows
    best_trial: int | None
    artifact: Path | None
    summary: dict[str, Any] = field(default_factory=dict)
    ran: int = 0  # trials this call started in its own process(es)


def tune(
    config: str | Path,
    out: str | Path,
    *,
    overrides: Iterable[str] = (),
    trials: int | None = None,
    timeout_s: float | None = None,
    storage: str | None = None,
    study: str | None = None,
    jobs: int = 1,
    allow_import: Iterable[str] = (),
    on_update: Callable[[Rows], None] | None = None,
) -> TuneResult:
    """Search the config's ``tune.space`` with Optuna and write the best trial's artifact to ``OUT/artifact``.

    Args:
        trials: Finished trials the study should hold in total (default ``tune.trials``); a re-run
            of a stopped study only runs the missing ones.
        storage: An Optuna storage URL; default SQLite ``OUT/study.db``.
        study: The study's name in the storage; default the config's run name.
        jobs: Worker processes running trials side by side, sharing the CPU cores.
        on_update: Called with every trial's row whenever a trial finishes (for a live table).

    Raises:
        ConfigError: The config, its tune block or a value its space can sample is invalid.
    """
    spec = load_tune(config, list(overrides))
    return run_search(
        spec,
        out,
        trials=trials,
        timeout_s=timeout_s,
        storage=storage,
        study=study,
        jobs=jobs,
        allow_import=tuple(allow_import),
        on_update=on_update,
    )


def run_search(
    spec: TuneSpec,
    out: str | Path,
    *,
    trials: int | None = None,
    timeout_s: float | None = None,
    storage: str | None = None,
    study: str | None = None,
    jobs: int = 1,
    allow_import: tuple[str, ...] = (),
    on_update: Callable[[Rows], None] | None = None,
) -> TuneResult:
    """:func:`tune` for an already validated :class:`TuneSpec`."""
    if jobs < 1:
        raise TuneError(f"--jobs must be at least 1 (got {jobs})")
    root = Path(out).resolve()
    root.mkdir(parents=True, exist_ok=True)
    name = study or spec.train.run_name
    url = storage_url(root, storage)
    epochs = spec.train.train.epochs
    the_study = open_study(name, url, spec.tune, epochs, warmup=spec.pruner_warmup())
    if spec.tune.start_from_config and not the_study.trials and (start := spec.start_values()):
        # the config as written is trial 0: the search starts from it and can only report better
        the_study.enqueue_trial(start, skip_if_exists=True)
    total = trials or spec.tune.trials
    timeout = timeout_s or spec.tune.timeout_s
    missing = total - finished_count(the_study)

    def publish(*_: Any) -> None:
        rows = trial_rows(the_study, spec)
        write_trials(root, rows, spec)
        if on_update is not None:
            on_update(rows)

    publish()
    started = len(the_study.trials)
    if missing > 0 and jobs == 1:
        runner = TrialRunner(spec, root, name, allow_import=allow_import)
        the_study.optimize(
            runner, n_trials=missing, timeout=timeout, catch=(Exception,), callbacks=[stop_at(total), publish]
        )
    elif missing > 0:
        _run_workers(spec, root, name, url, missing, total, timeout, jobs, allow_import, publish)
    ran = len(the_study.trials) - started
    rows = trial_rows(the_study, spec)
    write_trials(root, rows, spec)
    best = _pick_best(the_study, spec)
    artifact = _ship_best(root, best) if best is not None else None
    summary = write_summary(root, the_study, spec, url, best.number if best is not None else None)
    return TuneResult(root, name, url, rows, summary["best_trial"], artifact, summary, ran)


def _pick_best(study: Any, spec: TuneSpec) -> Any:
    """The best trial; with several objectives, the Pareto-front trial best on the first objective."""
    front = [t for t in best_trials(study) if t.user_attrs.get("artifact")]
    if not front:
        return None
    sign = 1 if spec.tune.objectives[0].resolved_direction == "maximize" else -1
    return max(front, key=lambda t: (sign * t.values[0], -t.number))


def _ship_best(root: Path, trial: Any) -> Path | None:
    """Copy the best trial's artifact (its lineage names the study, trial and params) to OUT/artifact."""
    source = Path(trial.user_attrs["artifact"])
    if not source.is_dir():  # trained by a cooperating process on another machine
        return None
    target = root / ARTIFACT_DIR
    staging = root / f".{ARTIFACT_DIR}.tmp"
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(source, staging)
    shutil.rmtree(target, ignore_errors=True)
    os.replace(staging, target)
    return target


# ---------------------------------------------------------------------- J worker processes
def _run_workers(
    spec: TuneSpec,
    root: Path,
    name: str,
    url: str,
    missing: int,
    total: int,
    timeout: float | None,
    jobs: int,
    allow_import: tuple[str, ...],
    publish: Callable[..., None],
) -> None:
    """J processes each run a share of the missing trials on the shared storage; cores are shared out."""
    threads = max(1, (os.cpu_count() or 1) // jobs)
    shares = [missing // jobs + (i < missing % jobs) for i in range(jobs)]
    context = multiprocessing.get_context("spawn")  # fork would copy torch's thread pools and locks
    workers = [
        context.Process(
            target=_worker,
            name=f"tune-worker-{i}",
            daemon=False,
            args=(spec, root, name, url, share, total, timeout, i, threads, allow_import),
        )
        for i, share in enumerate(shares)
        if share > 0
    ]
    for proc in workers:
        proc.start()
    try:
        while any(p.is_alive() for p in workers):
            time.sleep(1.0)
            publish()
    finally:
        for proc in workers:
            if proc.is_alive():
                proc.terminate()
            proc.join()
    failed = [f"{p.name} exited with status {p.exitcode}" for p in workers if p.exitcode]
    if failed:
        raise TuneError(
            "; ".join(failed), fix="re-run the same command: the study continues where it stopped"
        )


def _worker(
    spec: TuneSpec,
    root: Path,
    name: str,
    url: str,
    share: int,
    total: int,
    timeout: float | None,
    index: int,
    threads: int,
    allow_import: tuple[str, ...],
) -> None:
    import torch

    torch.set_num_threads(threads)
    optuna_module()
    study = open_study(
        name, url, spec.tune, spec.train.train.epochs, worker=index, warmup=spec.pruner_warmup()
    )
    runner = TrialRunner(spec, root, name, threads=threads, allow_import=allow_import)
    study.optimize(runner, n_trials=share, timeout=timeout, catch=(Exception,), callbacks=[stop_at(total)])
