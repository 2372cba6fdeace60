"""Evaluate and predict for models described by their signature: named inputs from a file.

A model with several, integer or variable-size inputs (a transformer, an imported
regression) has no image or table files and often no recorded dataset. It is fed a
``.npz`` (or ``.json``) of named arrays: one per input, batch first. To evaluate, the same
file holds the targets: ``labels`` (class indices) for a classifier, and for any other task
one array per output, named after it (MSE and MAE per output; outputs without targets are
listed as skipped).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from torchship.artifact import Artifact
from torchship.errors import DataError

LABELS = "labels"  # the targets array of a classifier in an --inputs file


@dataclass
class OutputEvaluation:
    """Error metrics per output of a model that is not a classifier, on named inputs from a file."""

    source: str
    samples: int
    runtime: str
    metrics: dict[str, dict[str, float]]  # output -> {mse, mae}
    skipped: dict[str, str] = field(default_factory=dict)  # output -> why it has no metrics

    def to_json(self) -> dict[str, Any]:
        return {
            "inputs": self.source,
            "samples": self.samples,
            "runtime": self.runtime,
            "metrics": self.metrics,
            **({"skipped_outputs": self.skipped} if self.skipped else {}),
        }


def needs_inputs_file(artifact: Artifact) -> bool:
    """Whether ``artifact`` has no dataset it can be fed from: named inputs must come from a file."""
    from torchship.export.signed import uses_signature

    return uses_signature(artifact) and not artifact.manifest.data.get("config")


def what_to_send(artifact: Artifact, targets: bool) -> str:
    """The fix line naming the arrays an --inputs file must hold."""
    m = artifact.manifest
    names = list(m.signature.input_names)
    if targets:
        names += [LABELS] if m.answers_classes else [f"{o} (targets)" for o in m.signature.output_names]
    return f"pass --inputs FILE.npz holding {', '.join(names)} (batch first)"


def run_feeds(
    artifact: Artifact,
    feeds: dict[str, np.ndarray],
    runtime: str,
    allow_import: Iterable[str],
    batch_size: int,
) -> dict[str, np.ndarray]:
    """Every output of ``artifact`` on ``feeds``, run in chunks of ``batch_size`` rows."""
    from torchship.runtime import load_predictor
    from torchship.runtime.feeds import run_in_chunks

    predictor = load_predictor(artifact, runtime, allow_import=allow_import, warmup=0)
    try:
        return run_in_chunks(predictor, feeds, batch_size)
    finally:
        predictor.close()


def evaluate_inputs(
    artifact: Artifact,
    path: str | Path,
    runtime: str = "auto",
    allow_import: Iterable[str] = (),
    batch_size: int = 512,
) -> Any:
    """Metrics of ``artifact`` on the named inputs and targets in ``path``.

    Returns:
        An :class:`~torchship.evaluate.Evaluation` (accuracy, F1, confusion matrix) for a
        classifier, else an :class:`OutputEvaluation` (MSE and MAE per output).

    Raises:
        DataError: The file lacks an input or every target, or a target's shape differs from
            its output's.
    """
    from torchship.runtime.feeds import check_feeds, read_arrays

    sig = artifact.manifest.signature
    arrays = read_arrays(path, sig)
    feeds = check_feeds(sig, {k: v for k, v in arrays.items() if k in sig.input_names})
    name = artifact.manifest.name
    if artifact.manifest.answers_classes:
        if LABELS not in arrays:
            raise DataError(
                f"{path} has no {LABELS!r} array to evaluate {name} against", fix=what_to_send(artifact, True)
            )
        return _classification(artifact, feeds, arrays[LABELS], runtime, allow_import, batch_size)
    given = [o for o in sig.output_names if o in arrays]
    if not given:
        raise DataError(
            f"{path} has no targets for {name}'s outputs ({', '.join(sig.output_names)})",
            fix=what_to_send(artifact, True),
        )
    outputs = run_feeds(artifact, feeds, runtime, allow_import, batch_size)
    metrics = {}
    for output in given:
        want, got = np.asarray(arrays[output], np.float64), outputs[output].astype(np.float64)
        if want.shape != got.shape:
            raise DataError(
                f"targets {output} have shape {list(want.shape)} but the output has {list(got.shape)}",
                fix="give one target per output value, batch first",
            )
        metrics[output] = {
            "mse": float(np.mean((got - want) ** 2)),
            "mae": float(np.mean(np.abs(got - want))),
        }
    skipped = {o: f"no {o!r} array in the file" for o in sig.output_names if o not in arrays}
    return OutputEvaluation(str(path), len(next(iter(feeds.values()))), runtime, metrics, skipped)


def _classification(
    artifact: Artifact,
    feeds: dict[str, np.ndarray],
    labels: np.ndarray,
    runtime: str,
    allow_import: Iterable[str],
    batch_size: int,
) -> Any:
    import torch

    from torchship.evaluate import Evaluation
    from torchship.train.metrics import ClassificationMetrics

    n = len(next(iter(feeds.values())))
    y = np.asarray(labels)
    classes = len(artifact.manifest.labels)
    if (
        y.shape != (n,)
        or not np.issubdtype(y.dtype, np.integer)
        or (n and (y.min() < 0 or y.max() >= classes))
    ):
        raise DataError(
            f"{LABELS} must be {n} class indices in [0, {classes}) "
            f"(got shape {list(y.shape)}, dtype {y.dtype})",
            fix="one integer label per row, in the order of the artifact's labels",
        )
    first = artifact.manifest.signature.outputs[0].name
    logits = run_feeds(artifact, feeds, runtime, allow_import, batch_size)[first]
    metrics = ClassificationMetrics(classes, confusion=True)
    metrics.update(
        torch.from_numpy(np.asarray(logits, dtype=np.float32)), torch.from_numpy(y.astype(np.int64))
    )
    return Evaluation(
        "inputs", n, metrics.compute(), artifact.manifest.labels, metrics.confusion_matrix(), runtime
    )


def predict_inputs(
    artifact: Artifact,
    path: str | Path,
    top_k: int = 3,
    runtime: str = "auto",
    allow_import: Iterable[str] = (),
    batch_size: int = 512,
) -> list[dict[str, Any]]:
    """One answer per row of the named inputs in ``path``: a classifier's top-k labels with
    probabilities, any other model's outputs. Targets in the file (``labels``, arrays named
    after outputs) are ignored."""
    from torchship.runtime.feeds import check_feeds, read_arrays

    sig = artifact.manifest.signature
    targets = {LABELS, *sig.output_names}  # the file evaluate reads works here too
    feeds = check_feeds(sig, {k: v for k, v in read_arrays(path, sig).items() if k not in targets})
    outputs = run_feeds(artifact, feeds, runtime, allow_import, batch_size)
    n = len(next(iter(feeds.values())))
    if not artifact.manifest.answers_classes:
        return [{"row": i, "outputs": {k: v[i].tolist() for k, v in outputs.items()}} for i in range(n)]
    from torchship.evaluate import top_labels

    logits = outputs[artifact.manifest.signature.outputs[0].name]
    rows = [f"row {i}" for i in range(n)]
    return [{"row": i, "top": p.top} for i, p in enumerate(top_labels(artifact, rows, logits, top_k))]
