"""Drift scores: PSI per input group and over predicted classes, and the mean-confidence drop.

A model described by its signature is scored per named float input, and, unless it is a
classifier, per output over the output's values (``output_psi``) instead of over classes.

PSI (population stability index) of a baseline share ``e`` and a live share ``a`` over
the same bins is ``sum((a - e) * ln(a / e))``; shares are floored at 1e-4 so an empty bin
stays finite. Rule of thumb: below 0.1 no shift, 0.1-0.25 a moderate one, above 0.25 a large one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from torchship.monitor.baseline import Baseline
from torchship.monitor.config import DriftThresholds
from torchship.monitor.window import Counts

_FLOOR = 1e-4


def psi(expected: np.ndarray, actual: np.ndarray) -> float:
    """Population stability index of two distributions over the same bins (counts or shares).

    Example:
        >>> round(psi(np.array([0.5, 0.5]), np.array([0.5, 0.5])), 6)
        0.0
        >>> round(psi(np.array([0.5, 0.5]), np.array([0.9, 0.1])), 3)
        0.879
    """
    e = np.maximum(np.asarray(expected, dtype=np.float64) / max(float(np.sum(expected)), 1e-12), _FLOOR)
    a = np.maximum(np.asarray(actual, dtype=np.float64) / max(float(np.sum(actual)), 1e-12), _FLOOR)
    return float(np.sum((a - e) * np.log(a / e)))


@dataclass(frozen=True)
class DriftScores:
    """Scores of live counts against a baseline; ``drift`` names the scores above threshold."""

    rows: int
    judged: bool  # enough rows to judge (min_rows)
    input_psi: dict[str, float]
    prediction_psi: float | None  # None: no predicted classes (not a classifier)
    confidence_psi: float | None
    mean_confidence: float | None
    reference_mean_confidence: float | None
    confidence_drop: float | None
    input_mean: list[float]
    prediction_freq: list[float]
    thresholds: DriftThresholds
    drift: list[str]
    note: str = ""
    output_psi: dict[str, float] = field(default_factory=dict)
    skipped_inputs: dict[str, str] = field(default_factory=dict)

    @property
    def max_input_psi(self) -> float:
        return max(self.input_psi.values(), default=0.0)

    @property
    def status(self) -> str:
        if not self.judged:
            return "collecting"
        return "drift" if self.drift else "ok"

    def to_json(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "rows": self.rows,
            "input_psi": self.input_psi,
            "max_input_psi": self.max_input_psi,
            "prediction_psi": self.prediction_psi,
            **({"output_psi": self.output_psi} if self.output_psi else {}),
            **({"skipped_inputs": self.skipped_inputs} if self.skipped_inputs else {}),
            "confidence_psi": self.confidence_psi,
            "mean_confidence": self.mean_confidence,
            "reference_mean_confidence": self.reference_mean_confidence,
            "confidence_drop": self.confidence_drop,
            "input_mean": self.input_mean,
            "prediction_freq": self.prediction_freq,
            "thresholds": self.thresholds.model_dump(),
            "drift": self.drift,
            **({"note": self.note} if self.note else {}),
        }


def score(baseline: Baseline, counts: Counts, thresholds: DriftThresholds, min_rows: int = 1) -> DriftScores:
    """Compare live ``counts`` with ``baseline``; scores above ``thresholds`` are listed in ``drift``."""
    pairs = zip(baseline.groups, baseline.input_freq, counts.inputs, strict=True)
    every = [(g, psi(e, a)) for g, e, a in pairs]
    k = baseline.input_groups
    input_psi, output_psi = dict(every[:k]), dict(every[k:])
    classifier = len(baseline.prediction_freq) > 0
    prediction = psi(baseline.prediction_freq, counts.classes) if classifier else None
    conf_psi = (
        psi(baseline.confidence_hist, counts.confidence) if baseline.confidence_hist is not None else None
    )
    mean_conf = counts.confidence_sum / counts.rows if counts.rows and classifier else None
    ref_conf = baseline.mean_confidence
    drop = ref_conf - mean_conf if ref_conf is not None and mean_conf is not None else None
    judged = counts.rows >= min_rows and counts.rows > 0
    drift = []
    if judged:
        drift += [f"input_psi:{g}" for g, v in input_psi.items() if v > thresholds.input_psi]
        if prediction is not None and prediction > thresholds.prediction_psi:
            drift.append("prediction_psi")
        # an output's values are the predictions of a model without classes
        drift += [f"output_psi:{g}" for g, v in output_psi.items() if v > thresholds.prediction_psi]
        if drop is not None and drop > thresholds.confidence_drop:
            drift.append("confidence_drop")
    values = np.maximum(counts.values, 1)
    return DriftScores(
        rows=counts.rows,
        judged=judged,
        input_psi=input_psi,
        prediction_psi=prediction,
        confidence_psi=conf_psi,
        mean_confidence=mean_conf,
        reference_mean_confidence=ref_conf,
        confidence_drop=drop,
        input_mean=(counts.input_sum / values).tolist()[:k],
        prediction_freq=(counts.classes / max(counts.rows, 1)).tolist(),
        thresholds=thresholds,
        drift=drift,
        note=baseline.note,
        output_psi=output_psi,
        skipped_inputs=baseline.skipped,
    )
