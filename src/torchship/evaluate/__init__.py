"""Evaluate an artifact on labelled data, and predict labels for files.

Both run the model through a runtime (``eager`` by default), so an export is judged exactly
as it will be served.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from torchship.artifact import Artifact
from torchship.errors import DataError, ModelError


@dataclass
class Evaluation:
    split: str
    samples: int
    metrics: dict[str, float]
    labels: list[str]
    confusion: list[list[int]]
    runtime: str

    def to_json(self) -> dict[str, Any]:
        return {
            "split": self.split,
            "samples": self.samples,
            "runtime": self.runtime,
            "metrics": self.metrics,
            "labels": self.labels,
            "confusion_matrix": self.confusion,
        }


@dataclass
class Prediction:
    file: str
    top: list[tuple[str, float]] = field(default_factory=list)


def evaluate(
    artifact: Artifact,
    data: str | None = None,
    split: str = "val",
    runtime: str = "eager",
    allow_import: Iterable[str] = (),
    batch_size: int = 512,
) -> Evaluation:
    """Metrics and confusion matrix of ``artifact`` on a split of its data (or ``data``).

    Raises:
        DataError: ``artifact`` records no dataset and takes named inputs, which come from a
            file instead (:func:`torchship.evaluate.named.evaluate_inputs`).
    """
    from torchship.data import artifact_data, artifact_split
    from torchship.evaluate.named import needs_inputs_file, what_to_send
    from torchship.runtime import load_predictor
    from torchship.train.metrics import ClassificationMetrics

    if data is None and needs_inputs_file(artifact):
        m = artifact.manifest
        raise DataError(
            f"{m.name} ({m.task}) records no dataset to evaluate on", fix=what_to_send(artifact, targets=True)
        )
    x, y = artifact_split(artifact, artifact_data(artifact, data), split)
    predictor = load_predictor(artifact, runtime, allow_import=allow_import, warmup=1)
    metrics = ClassificationMetrics(len(artifact.manifest.labels), confusion=True)
    try:
        for start in range(0, len(x), batch_size):
            logits = predictor.predict(x[start : start + batch_size].numpy())
            metrics.update(torch.from_numpy(np.asarray(logits)), y[start : start + batch_size])
    finally:
        predictor.close()
    return Evaluation(
        split, len(x), metrics.compute(), artifact.manifest.labels, metrics.confusion_matrix(), runtime
    )


def predict_files(
    artifact: Artifact,
    files: Sequence[str | Path],
    top_k: int = 3,
    runtime: str = "eager",
    allow_import: Iterable[str] = (),
) -> list[Prediction]:
    """Top-k labels with probabilities for image (PNG/JPEG/...) or .npy files."""
    from torchship.data import preprocess_image
    from torchship.runtime import load_predictor

    spec = artifact.manifest.input.model_dump()
    batch = []
    for file in files:
        path = Path(file)
        if not path.is_file():
            raise DataError(f"{path} does not exist", fix="check the file name")
        batch.append(preprocess_image(path, spec))
    predictor = load_predictor(artifact, runtime, allow_import=allow_import, warmup=0)
    try:
        logits = np.asarray(predictor.predict(torch.stack(batch).numpy()))
    finally:
        predictor.close()
    return top_labels(artifact, [str(f) for f in files], logits, top_k)


def top_labels(artifact: Artifact, names: Sequence[str], logits: np.ndarray, top_k: int) -> list[Prediction]:
    """Top-k labels with probabilities of each row of ``logits`` (rows, classes), named ``names``.

    Raises:
        ModelError: A row is not finite.
    """
    files = names
    probs = torch.from_numpy(np.asarray(logits)).softmax(dim=1)
    bad = [str(f) for f, row in zip(files, probs, strict=True) if not bool(torch.isfinite(row).all())]
    if bad:
        raise ModelError(
            f"the model's output for {', '.join(bad[:3])} is not finite (NaN or inf)",
            fix="its weights hold non-finite values; retrain or re-create the artifact",
        )
    k = min(top_k, probs.shape[1])
    values, indices = probs.topk(k, dim=1)
    labels = artifact.manifest.labels
    return [
        Prediction(str(f), [(labels[i], float(p)) for p, i in zip(v.tolist(), ix.tolist(), strict=False)])
        for f, v, ix in zip(files, values, indices, strict=False)
    ]
