"""Rolling statistics of live inputs and predictions: the counts the drift scores compare.

A ``Window`` holds bin counts per input group, predicted-class counts and a top-1
confidence histogram, over the last ``max_rows`` rows (``None``: everything). It keeps
them in a few chunks, so the oldest rows leave a chunk at a time and no sample is stored.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from torchship.monitor.baseline import _CLIP, CONFIDENCE_BINS, Baseline

_CHUNKS = 8


@dataclass
class Counts:
    """Sums over some rows; adding and subtracting them is how the window rolls."""

    rows: int
    bins: np.ndarray  # every input group's bin counts, concatenated (Baseline.bin_splits splits them)
    classes: np.ndarray
    confidence: np.ndarray  # (CONFIDENCE_BINS,)
    confidence_sum: float
    input_sum: np.ndarray  # per group
    values: int | np.ndarray = 0  # input values counted: one count for every group, or one per group
    splits: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    @property
    def inputs(self) -> list[np.ndarray]:
        """Per group: values per bin."""
        return np.split(self.bins, self.splits) if len(self.bins) else []

    @classmethod
    def zeros(cls, baseline: Baseline) -> Counts:
        return cls(
            0,
            np.zeros(len(baseline.flat_edges) + len(baseline.edges), dtype=np.int64),
            np.zeros(len(baseline.prediction_freq), dtype=np.int64),
            np.zeros(CONFIDENCE_BINS, dtype=np.int64),
            0.0,
            np.zeros(len(baseline.edges)),
            0,
            baseline.bin_splits,
        )

    def add_(self, other: Counts, sign: int = 1) -> None:
        self.rows += sign * other.rows
        self.bins += sign * other.bins
        self.classes += sign * other.classes
        self.confidence += sign * other.confidence
        self.confidence_sum += sign * other.confidence_sum
        self.input_sum += sign * other.input_sum
        self.values += sign * other.values

    def copy(self) -> Counts:
        return Counts(
            self.rows,
            self.bins.copy(),
            self.classes.copy(),
            self.confidence.copy(),
            self.confidence_sum,
            self.input_sum.copy(),
            self.values.copy() if isinstance(self.values, np.ndarray) else self.values,
            self.splits,
        )


def count_batch(
    baseline: Baseline,
    x: np.ndarray | Mapping[str, np.ndarray],
    logits: np.ndarray | Mapping[str, np.ndarray],
    values_per_row: int | None,
    rng: np.random.Generator,
) -> Counts:
    """Counts of one batch: ``x`` (n, *input.shape) normalized inputs, ``logits`` (n, classes).

    For images at most ``values_per_row`` pixels per channel of each row are counted, at
    positions drawn anew for every batch (unbiased, and cheap for large images). A model
    described by its signature gives named inputs and named outputs (dicts) instead.
    """
    if isinstance(x, Mapping):
        return _count_named(baseline, x, logits, values_per_row, rng)  # type: ignore[arg-type]
    n = len(x)
    # groups: (n, groups, values) — channels of images, or each feature of a table with one value
    groups = x.reshape(n, x.shape[1], -1) if x.ndim > 2 else x.reshape(n, -1, 1)
    if values_per_row is not None and groups.shape[2] > values_per_row:
        groups = groups[:, :, rng.integers(0, groups.shape[2], size=values_per_row)]
    # per_group: (groups, n * values)
    per_group = groups.transpose(1, 0, 2).reshape(groups.shape[1], -1).astype(np.float64)
    classes = len(baseline.prediction_freq)
    predicted, confidence, conf_bins = _classes(logits, classes)
    edges = baseline.edges
    return Counts(
        rows=n,
        bins=baseline.bin_inputs(per_group) if edges else np.zeros(0, dtype=np.int64),
        classes=predicted,
        confidence=conf_bins,
        confidence_sum=float(confidence.sum()),
        input_sum=per_group.sum(axis=1) if edges else np.zeros(0),
        values=per_group.shape[1],
        splits=baseline.bin_splits,
    )


def _classes(logits: np.ndarray, classes: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Predicted-class counts, each row's top-1 probability, and their confidence histogram."""
    # probabilities: (n, classes), in float64 apart from the served answer
    z = logits.astype(np.float64) - logits.max(axis=1, keepdims=True)
    p = np.exp(z)
    p /= p.sum(axis=1, keepdims=True)
    confidence = p.max(axis=1)
    bins = np.minimum((confidence * CONFIDENCE_BINS).astype(np.int64), CONFIDENCE_BINS - 1)
    predicted = np.bincount(p.argmax(axis=1), minlength=classes)[:classes]
    return predicted, confidence, np.bincount(bins, minlength=CONFIDENCE_BINS)


def _count_named(
    baseline: Baseline,
    x: Mapping[str, np.ndarray],
    y: Mapping[str, np.ndarray],
    values_per_row: int | None,
    rng: np.random.Generator,
) -> Counts:
    """Counts of one batch of named inputs ``x`` and named outputs ``y`` (each (n, ...))."""
    n = len(next(iter(x.values())))
    k = baseline.input_groups
    tensors = [x[name] for name in baseline.names[:k]] + [y[name] for name in baseline.names[k:]]
    bins, sums, values = [], [], []
    for tensor, edges in zip(tensors, baseline.edges, strict=True):
        # flat: (n, values per row) of this input or output
        flat = np.asarray(tensor, dtype=np.float64).reshape(n, -1)
        if values_per_row is not None and flat.shape[1] > values_per_row:
            flat = flat[:, rng.integers(0, flat.shape[1], size=values_per_row)]
        v = np.clip(flat.ravel(), -_CLIP, _CLIP)
        bins.append(np.bincount(np.searchsorted(edges, v, side="right"), minlength=len(edges) + 1))
        sums.append(float(v.sum()))
        values.append(v.size)
    classes = len(baseline.prediction_freq)
    if baseline.classes_from is not None:
        predicted, confidence, conf_bins = _classes(np.asarray(y[baseline.classes_from]), classes)
    else:
        predicted, confidence, conf_bins = (
            np.zeros(0, np.int64),
            np.zeros(0),
            np.zeros(CONFIDENCE_BINS, np.int64),
        )
    return Counts(
        rows=n,
        bins=np.concatenate(bins) if bins else np.zeros(0, dtype=np.int64),
        classes=predicted,
        confidence=conf_bins,
        confidence_sum=float(confidence.sum()),
        input_sum=np.asarray(sums),
        values=np.asarray(values, dtype=np.int64),
        splits=baseline.bin_splits,
    )


class Window:
    """The last ``max_rows`` rows' counts (all rows when ``max_rows`` is None)."""

    def __init__(self, baseline: Baseline, max_rows: int | None = None):
        self.baseline = baseline
        self.max_rows = max_rows
        self.total = Counts.zeros(baseline)
        self._chunks: deque[Counts] = deque([Counts.zeros(baseline)])
        self._chunk_rows = max(1, (max_rows or 0) // _CHUNKS) if max_rows else None

    def add(self, counts: Counts) -> None:
        self.total.add_(counts)
        if self.max_rows is None:
            return
        current = self._chunks[-1]
        current.add_(counts)
        if self._chunk_rows is not None and current.rows >= self._chunk_rows:
            self._chunks.append(Counts.zeros(self.baseline))
        while len(self._chunks) > 1 and self.total.rows - self._chunks[0].rows >= self.max_rows:
            self.total.add_(self._chunks.popleft(), sign=-1)

    def snapshot(self) -> Counts:
        """A copy of the totals (safe to score while the window keeps changing)."""
        return self.total.copy()
