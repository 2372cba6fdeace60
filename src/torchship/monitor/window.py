"""Rolling statistics of live inputs and predictions: the counts the drift scores compare.

A ``Window`` holds bin counts per input group, predicted-class counts and a top-1
confidence histogram, over the last ``max_rows`` rows (``None``: everything). It keeps
them in a few chunks, so the oldest rows leave a chunk at a time and no sample is stored.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np

from torchship.monitor.baseline import CONFIDENCE_BINS, Baseline

_CHUNKS = 8


@dataclass
class Counts:
    """Sums over some rows; adding and subtracting them is how the window rolls."""

    rows: int
    inputs: list[np.ndarray]  # per group: values per bin
    classes: np.ndarray
    confidence: np.ndarray  # (CONFIDENCE_BINS,)
    confidence_sum: float = 0.0
    input_sum: np.ndarray = field(default_factory=lambda: np.zeros(0))  # per group
    input_sq_sum: np.ndarray = field(default_factory=lambda: np.zeros(0))
    values: int = 0  # input values per group counted

    @classmethod
    def zeros(cls, baseline: Baseline) -> Counts:
        groups = len(baseline.edges)
        return cls(0, [np.zeros(len(e) + 1, dtype=np.int64) for e in baseline.edges],
                   np.zeros(len(baseline.prediction_freq), dtype=np.int64),
                   np.zeros(CONFIDENCE_BINS, dtype=np.int64), 0.0, np.zeros(groups), np.zeros(groups))

    def add_(self, other: Counts, sign: int = 1) -> None:
        self.rows += sign * other.rows
        for mine, theirs in zip(self.inputs, other.inputs):
            mine += sign * theirs
        self.classes += sign * other.classes
        self.confidence += sign * other.confidence
        self.confidence_sum += sign * other.confidence_sum
        self.input_sum += sign * other.input_sum
        self.input_sq_sum += sign * other.input_sq_sum
        self.values += sign * other.values


def count_batch(baseline: Baseline, x: np.ndarray, logits: np.ndarray, values_per_row: int | None,
                rng: np.random.Generator) -> Counts:
    """Counts of one batch: ``x`` (n, *input.shape) normalized inputs, ``logits`` (n, classes).

    For images at most ``values_per_row`` pixels per channel of each row are counted, at
    positions drawn anew for every batch (unbiased, and cheap for large images).
    """
    n = len(x)
    # groups: (n, groups, values) — channels of images, or each feature of a table with one value
    groups = x.reshape(n, x.shape[1], -1) if x.ndim > 2 else x.reshape(n, -1, 1)
    if values_per_row is not None and groups.shape[2] > values_per_row:
        groups = groups[:, :, rng.integers(0, groups.shape[2], size=values_per_row)]
    per_group = groups.transpose(1, 0, 2).reshape(groups.shape[1], -1).astype(np.float64, copy=False)
    counts = Counts.zeros(baseline)
    for i, (edges, values) in enumerate(zip(baseline.edges, per_group)):
        counts.inputs[i] += np.bincount(np.searchsorted(edges, values, side="right"), minlength=len(edges) + 1)
    counts.input_sum = per_group.sum(axis=1)
    counts.input_sq_sum = np.square(per_group).sum(axis=1)
    counts.values = per_group.shape[1]
    # probabilities: (n, classes), computed in float64 apart from the served answer
    z = logits.astype(np.float64) - logits.max(axis=1, keepdims=True)
    p = np.exp(z)
    p /= p.sum(axis=1, keepdims=True)
    confidence = p.max(axis=1)
    counts.classes += np.bincount(p.argmax(axis=1), minlength=len(counts.classes))[: len(counts.classes)]
    bins = np.minimum((confidence * CONFIDENCE_BINS).astype(np.int64), CONFIDENCE_BINS - 1)
    counts.confidence += np.bincount(bins, minlength=CONFIDENCE_BINS)
    counts.confidence_sum = float(confidence.sum())
    counts.rows = n
    return counts


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
        t = self.total
        return Counts(t.rows, [c.copy() for c in t.inputs], t.classes.copy(), t.confidence.copy(),
                      t.confidence_sum, t.input_sum.copy(), t.input_sq_sum.copy(), t.values)
