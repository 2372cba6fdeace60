"""Data helpers for the monitoring tests (imported by name; conftest puts this folder on sys.path)."""

from __future__ import annotations

import numpy as np


def normalized(artifact, raw: np.ndarray) -> np.ndarray:
    """Raw [0, 1] digits (n, 8, 8) as the model's normalized input (n, 1, 8, 8)."""
    spec = artifact.manifest.input
    return ((raw[:, None] - spec.mean[0]) / spec.std[0]).astype(np.float32)


def shifted(raw: np.ndarray, labels: np.ndarray, kind: str) -> tuple[np.ndarray, np.ndarray]:
    """The drifted streams the tests expect to be caught."""
    rng = np.random.default_rng(0)
    if kind == "brightness":
        return np.clip(raw + 0.3, 0, 1), labels
    if kind == "noise":
        return (raw + rng.normal(0, 0.4, raw.shape)).astype(np.float32), labels
    if kind == "imbalanced":  # only three classes arrive
        keep = labels < 3
        return raw[keep], labels[keep]
    return raw, labels
