"""The drift baseline: an artifact's reference statistics, in the form the scores need."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from torchship.artifact import Artifact
from torchship.errors import ArtifactError

CONFIDENCE_BINS = 10  # equal bins of [0, 1], as training records ``confidence_hist``


@dataclass(frozen=True)
class Baseline:
    """Per-group bin edges and shares of the training inputs, and the validation predictions.

    A group is one channel of an image or one feature of a table.
    """

    layout: str
    shape: tuple[int, ...]
    edges: list[np.ndarray]  # per group: interior bin edges (ascending)
    input_freq: list[np.ndarray]  # per group: share of training values per bin (len(edges) + 1)
    prediction_freq: np.ndarray  # (classes,)
    confidence_hist: np.ndarray | None  # (CONFIDENCE_BINS,)
    mean_confidence: float | None
    labels: list[str]
    note: str = ""  # what the baseline lacks, if anything

    @property
    def groups(self) -> list[str]:
        prefix = "channel" if self.layout == "image" else "feature"
        return [f"{prefix}{i}" for i in range(len(self.edges))]

    @classmethod
    def from_artifact(cls, artifact: Artifact) -> Baseline:
        """Read the baseline from the manifest's ``reference`` block.

        Raises:
            ArtifactError: The artifact records no reference statistics.
        """
        m = artifact.manifest
        ref = m.reference
        if ref is None:
            raise ArtifactError(f"artifact {m.name} has no reference statistics to compare against",
                                fix="retrain it with torchship train, which records them")
        if ref.input_bin_edges is not None and ref.input_bin_freq is not None:
            edges = [np.asarray(e, dtype=np.float64) for e in ref.input_bin_edges]
            freq = [np.asarray(f, dtype=np.float64) for f in ref.input_bin_freq]
        else:
            # made before the decile bins: its p01/p50/p99 cannot stand in for bins, because
            # ties (blank pixels) make their shares unknown; score predictions only
            edges, freq = [], []
        predicted = ref.prediction_freq or ref.class_freq
        return cls(
            layout=m.input.layout,
            shape=tuple(m.input.shape),
            edges=edges,
            input_freq=freq,
            prediction_freq=np.asarray(predicted, dtype=np.float64),
            confidence_hist=np.asarray(ref.confidence_hist, dtype=np.float64) if ref.confidence_hist else None,
            mean_confidence=ref.mean_confidence,
            labels=list(m.labels),
            note="" if edges else "no input bins in this artifact's reference (made before torchship recorded "
                                  "them): input drift is not scored; retrain to record them",
        )

