"""One trial: sample the config, train it (each epoch reported to the pruner), return its objective values."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from rich.console import Console

from torchship.config import validate_config
from torchship.train import Callback, TrainConfig, train
from torchship.tune.config import Objective, TuneSpec

TRIALS_DIR = "trials"


def trial_dir(out: Path, number: int) -> Path:
    return out / TRIALS_DIR / f"trial-{number:04d}"


class PruneOnEpoch(Callback):
    """Report the objective metric after every epoch; stop the trial when Optuna's pruner says so."""

    def __init__(self, trial: Any, metric: str | None):
        self.trial, self.metric = trial, metric

    def on_epoch_end(self, epoch: int, record: dict[str, Any]) -> None:
        import optuna

        self.trial.set_user_attr("epochs", epoch)
        if self.metric is None:
            return
        self.trial.report(float(record[self.metric]), epoch)
        if self.trial.should_prune():
            note = f"pruned after epoch {epoch}: {self.metric} {record[self.metric]:.4f}"
            self.trial.set_user_attr("note", note)
            raise optuna.TrialPruned(note)


class TrialRunner:
    """The callable Optuna runs for every trial (picklable, so worker processes can hold one)."""

    def __init__(
        self,
        spec: TuneSpec,
        out: Path,
        study: str,
        *,
        threads: int | None = None,
        allow_import: tuple[str, ...] = (),
    ):
        self.spec, self.out, self.study, self.threads, self.allow_import = (
            spec,
            out,
            study,
            threads,
            allow_import,
        )

    def __call__(self, trial: Any) -> float | list[float]:
        import optuna

        try:
            return self._run(trial)
        except optuna.TrialPruned:
            raise
        except Exception as exc:
            # the reason goes into the storage, so trials.csv and other processes can see it
            first = str(exc).splitlines()[0] if str(exc) else ""
            trial.set_user_attr("note", f"{type(exc).__name__}: {first}"[:500])
            raise

    def _run(self, trial: Any) -> float | list[float]:
        trial.set_user_attr("pid", os.getpid())  # which process ran it (several may share the study)
        values = {p.key: p.suggest(trial) for p in self.spec.params}
        data = self.spec.trial_data(values)
        run_dir = trial_dir(self.out, trial.number)
        data["out"] = str(run_dir)
        loop = data.setdefault("train", {})
        loop["progress"] = False
        if self.threads and "threads" not in loop:
            loop["threads"] = self.threads
        cfg = validate_config(TrainConfig, data, where=f"trial {trial.number}")
        objectives = self.spec.tune.objectives
        report = objectives[0].metric if len(objectives) == 1 and not objectives[0].is_speed else None
        lineage = {
            "study": self.study,
            "trial": trial.number,
            "params": values,
            "objectives": [o.model_dump() for o in objectives],
            "config": cfg.resolved(),
        }
        artifact = train(
            cfg,
            callbacks=[PruneOnEpoch(trial, report)],
            console=Console(quiet=True),
            allow_import=self.allow_import,
            op="tune",
            params=lineage,
        )
        trial.set_user_attr("artifact", str(artifact.path))
        results = [_value(o, artifact, self.threads, self.allow_import) for o in objectives]
        for objective, value in zip(objectives, results, strict=True):
            trial.set_user_attr(objective.metric, value)
        return results[0] if len(results) == 1 else results


def _value(objective: Objective, artifact: Any, threads: int | None, allow_import: tuple[str, ...]) -> float:
    """The objective's value for a trained artifact: a stored metric, or a speed measured now."""
    if objective.is_speed:
        return measure_speed(artifact, objective, threads, allow_import)
    split, _, name = objective.metric.partition(".")
    return float(artifact.manifest.metrics[split][name])


def measure_speed(
    artifact: Any, objective: Objective, threads: int | None, allow_import: tuple[str, ...]
) -> float:
    """p50 latency at ``objective.batch_size`` in ``objective.runtime``, through the bench library."""
    from torchship.bench import TimingConfig, measure_runtime
    from torchship.errors import TorchshipError

    if objective.runtime == "onnxruntime" and "onnx" not in artifact.manifest.exports:
        from torchship.export import export

        artifact = export(artifact, "onnx", allow_import=allow_import)
    # short but stable: p50 over at least 200 calls after a warm-up
    timing = TimingConfig(warmup=20, min_iterations=200, min_time_s=0.3, max_time_s=5.0)
    row = measure_runtime(
        artifact,
        objective.runtime,
        [objective.batch_size],
        threads=threads or 1,
        timing=timing,
        allow_import=allow_import,
    )[0]
    if not row.ok or row.latency_p50_ms is None:
        raise TorchshipError(f"cannot measure {objective.metric} in {objective.runtime}: {row.reason}")
    return float(row.latency_p50_ms)
