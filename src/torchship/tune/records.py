"""What a study holds, as plain rows: ``trials.csv``, ``trials.json`` and the ``tune.json`` summary.

The report reads these files, so it needs neither Optuna nor the study's storage.
"""

from __future__ import annotations

import csv
import json
import math
import os
from pathlib import Path
from typing import Any

from torchship.tune.config import TuneSpec

TRIALS_CSV = "trials.csv"
TRIALS_JSON = "trials.json"
SUMMARY_JSON = "tune.json"
KIND = "torchship.tune"


def trial_rows(study: Any, spec: TuneSpec) -> list[dict[str, Any]]:
    """One row per trial: number, state, objective values, params, epochs, time, why it failed or stopped."""
    metrics = [o.metric for o in spec.tune.objectives]
    front = {t.number for t in best_trials(study)}
    decode = {p.key: p.decode for p in spec.params}
    rows = []
    for t in sorted(study.get_trials(deepcopy=False), key=lambda t: t.number):
        values = list(t.values) if t.values is not None else [None] * len(metrics)
        duration = t.duration.total_seconds() if t.duration is not None else None
        rows.append(
            {
                "number": t.number,
                "state": t.state.name,
                "values": dict(zip(metrics, [_finite(v) for v in values], strict=False)),
                "params": {k: decode[k](v) if k in decode else v for k, v in t.params.items()},
                "epochs": t.user_attrs.get("epochs"),
                "duration_s": duration,
                "best": t.number in front,
                "note": t.user_attrs.get("note"),  # why it failed, or when it was pruned
                "pid": t.user_attrs.get("pid"),
                "artifact": t.user_attrs.get("artifact"),
                "intermediate": {str(k): v for k, v in sorted(t.intermediate_values.items())},
            }
        )
    return rows


def best_trials(study: Any) -> list[Any]:
    """The best trial (one objective) or the Pareto front (several); empty before any trial completes."""
    try:
        return list(study.best_trials) if len(study.directions) > 1 else [study.best_trial]
    except ValueError:
        return []


def _finite(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None


def write_trials(out: Path, rows: list[dict[str, Any]], spec: TuneSpec) -> None:
    """``trials.json`` (every field) and ``trials.csv`` (one column per objective and param)."""
    _atomic_write(out / TRIALS_JSON, json.dumps(rows, indent=1) + "\n")
    metrics = [o.metric for o in spec.tune.objectives]
    keys = [p.key for p in spec.params]
    header = ["number", "state", *metrics, *keys, "epochs", "duration_s", "best", "note"]
    tmp = out / (TRIALS_CSV + ".tmp")
    with tmp.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        for r in rows:
            writer.writerow(
                [
                    r["number"],
                    r["state"],
                    *(r["values"].get(m) for m in metrics),
                    *(r["params"].get(k) for k in keys),
                    r["epochs"],
                    r["duration_s"],
                    r["best"],
                    r["note"] or "",
                ]
            )
    os.replace(tmp, out / TRIALS_CSV)


def write_summary(out: Path, study: Any, spec: TuneSpec, url: str, best: int | None) -> dict[str, Any]:
    """``tune.json``: the study, its objectives, the best trial(s) and Optuna's parameter importances."""
    summary = {
        "kind": KIND,
        "study": study.study_name,
        "storage": url,
        "objectives": [o.model_dump() | {"direction": o.resolved_direction} for o in spec.tune.objectives],
        "sampler": spec.tune.resolved_sampler,
        "pruner": spec.tune.pruner,
        "pruner_warmup": spec.pruner_warmup(),
        "seed": spec.tune.seed,
        "space": {
            p.key: {
                "kind": p.kind,
                "low": p.low,
                "high": p.high,
                "step": p.step,
                "log": p.log,
                "choices": list(p.choices),
            }
            for p in spec.params
        },
        "best_trial": best,
        "front": [t.number for t in best_trials(study)],
        "importances": importances(study, spec),
    }
    _atomic_write(out / SUMMARY_JSON, json.dumps(summary, indent=1) + "\n")
    return summary


def importances(study: Any, spec: TuneSpec) -> dict[str, dict[str, float]]:
    """Optuna's parameter importances per objective (its default evaluator); empty before two complete."""
    import warnings

    import optuna

    result: dict[str, dict[str, float]] = {}
    for i, objective in enumerate(spec.tune.objectives):
        target = (lambda t, i=i: t.values[i]) if len(spec.tune.objectives) > 1 else None
        try:
            with warnings.catch_warnings():
                warnings.simplefilter(
                    "ignore", UserWarning
                )  # "too few trials": the figures say so themselves
                scores = optuna.importance.get_param_importances(study, target=target, normalize=True)
        except (ValueError, RuntimeError):  # fewer than two completed trials, or one value everywhere
            continue
        result[objective.metric] = {k: float(v) for k, v in scores.items()}
    return result


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
