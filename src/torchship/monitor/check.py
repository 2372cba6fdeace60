"""The offline drift check: score a whole dataset against an artifact's baseline.

``torchship monitor check ART --data NEW`` calls ``check``: it loads NEW (raw, as on disk)
with the data layer and the artifact's preprocessing (so a brightness shift stays a shift),
runs the model through a runtime, and scores the counts exactly as the server does.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from torchship.artifact import Artifact
from torchship.errors import DataError
from torchship.monitor.baseline import Baseline
from torchship.monitor.config import DriftThresholds
from torchship.monitor.drift import DriftScores, score
from torchship.monitor.window import Window, count_batch

SPLITS = ("all", "train", "val", "test")


@dataclass(frozen=True)
class CheckResult:
    """What ``check`` compared and how it scored."""

    artifact: str
    data: str
    split: str
    scores: DriftScores

    @property
    def drifted(self) -> bool:
        return bool(self.scores.drift)

    def to_json(self) -> dict[str, Any]:
        return {"artifact": self.artifact, "data": self.data, "split": self.split, **self.scores.to_json()}


def check(
    artifact: Artifact,
    data: str | None = None,
    split: str = "all",
    runtime: str | None = None,
    thresholds: DriftThresholds | None = None,
    allow_import: Iterable[str] = (),
    batch_size: int = 512,
    values_per_row: int | None = 256,
    inputs: str | Path | None = None,
) -> CheckResult:
    """Score the inputs of ``data`` (``NAME[:PATH]``; default: the artifact's own) and its predictions.

    A model described by its signature (a ``named`` baseline) is scored on ``inputs``, a
    ``.npz``/``.json`` of named inputs, instead of a dataset.

    Raises:
        DataError: The data's samples have another shape than the model's input, or named
            inputs are missing (or given to a model that reads a dataset).
    """
    from torchship.runtime import load_predictor

    baseline = Baseline.from_artifact(artifact)
    if baseline.layout == "named" or inputs is not None:
        named = runtime or "auto"  # an imported model may have no class to run eagerly
        return _check_named(
            artifact, baseline, inputs, named, thresholds, allow_import, batch_size, values_per_row
        )
    x = load_inputs(artifact, data, split)
    predictor = load_predictor(artifact, runtime or "eager", allow_import=allow_import, warmup=1)
    window = Window(baseline)
    rng = np.random.default_rng(0)
    try:
        for start in range(0, len(x), batch_size):
            batch = x[start : start + batch_size]
            logits = np.asarray(predictor.predict(batch))
            window.add(count_batch(baseline, batch, logits, values_per_row, rng))
    finally:
        predictor.close()
    scores = score(baseline, window.snapshot(), thresholds or DriftThresholds())
    return CheckResult(artifact.manifest.name, data or "(training data)", split, scores)


def _check_named(
    artifact: Artifact,
    baseline: Baseline,
    inputs: str | Path | None,
    runtime: str,
    thresholds: DriftThresholds | None,
    allow_import: Iterable[str],
    batch_size: int,
    values_per_row: int | None,
) -> CheckResult:
    from torchship.runtime import load_predictor
    from torchship.runtime.feeds import read_feeds

    name = artifact.manifest.name
    if baseline.layout != "named":
        raise DataError(
            f"{name}'s reference is of its training dataset, not of named inputs",
            fix="check it with --data NAME[:PATH] instead of --inputs",
        )
    if inputs is None:
        raise DataError(
            f"{name} takes named inputs ({', '.join(artifact.manifest.signature.input_names)}), "
            "not a dataset",
            fix="pass --inputs NEW.npz (one array per input, batch first)",
        )
    feeds = read_feeds(inputs, artifact.manifest.signature)
    n = len(next(iter(feeds.values())))
    predictor = load_predictor(artifact, runtime, allow_import=allow_import, warmup=0)
    window = Window(baseline)
    rng = np.random.default_rng(0)
    try:
        for start in range(0, n, batch_size):
            batch = {k: v[start : start + batch_size] for k, v in feeds.items()}
            window.add(count_batch(baseline, batch, predictor.run(batch), values_per_row, rng))
    finally:
        predictor.close()
    scores = score(baseline, window.snapshot(), thresholds or DriftThresholds())
    return CheckResult(name, str(inputs), "all", scores)


def load_inputs(artifact: Artifact, data: str | None, split: str = "all") -> np.ndarray:
    """Inputs of ``split`` of ``data`` (every split for ``all``), preprocessed for the artifact.

    Raises:
        DataError: Unknown split, or samples of another shape than the model's input.
    """
    from torchship.data import artifact_data

    if split not in SPLITS:
        raise DataError(f"unknown split {split!r}", fix=f"choose one of: {', '.join(SPLITS)}")
    dataset = artifact_data(artifact, data)
    parts = [dataset.train, dataset.val, dataset.test] if split == "all" else [getattr(dataset, split)]
    parts = [p for p in parts if p is not None and len(p)]
    if not parts:
        raise DataError(f"{data or dataset.name} has no {split} samples", fix="use --split all")
    # x: (n, *input.shape), raw data preprocessed as the artifact's manifest says
    return torch.cat([p.x for p in parts]).numpy().astype(np.float32, copy=False)
