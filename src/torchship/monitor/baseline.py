"""The drift baseline: an artifact's reference statistics, in the form the scores need."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from torchship.artifact import Artifact
from torchship.errors import ArtifactError

CONFIDENCE_BINS = 10  # equal bins of [0, 1], as training records ``confidence_hist``
# all groups' edges live on one axis, group g shifted by g * _SPAN, so one searchsorted bins
# every group at once; values are clipped to +-_CLIP first (training deciles lie far inside)
_SPAN = 1e6
_CLIP = 4e5


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

    def __post_init__(self) -> None:
        groups = len(self.edges)
        offsets = np.arange(groups, dtype=np.float64) * _SPAN
        shifted = [e + o for e, o in zip(self.edges, offsets, strict=True)]
        flat = np.concatenate(shifted) if groups else np.zeros(0)
        object.__setattr__(self, "group_offsets", offsets)
        object.__setattr__(self, "flat_edges", flat)
        object.__setattr__(self, "bin_splits", np.cumsum([len(e) + 1 for e in self.edges])[:-1])

    def bin_inputs(self, values: np.ndarray) -> np.ndarray:
        """Counts per bin of every group, concatenated: ``values`` is (groups, m)."""
        # index among all edges, plus g: group g's bins start after g earlier groups' extra bin
        shifted = np.clip(values, -_CLIP, _CLIP) + self.group_offsets[:, None]
        index = np.searchsorted(self.flat_edges, shifted, side="right") + np.arange(len(values))[:, None]
        return np.bincount(index.ravel(), minlength=len(self.flat_edges) + len(self.edges))

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
        if ref is None and m.lineage.op == "import":
            from torchship.artifact.manifest import describe_inputs

            raise ArtifactError(
                f"drift monitoring skipped for {m.name}: it was imported ({describe_inputs(m.signature)}) "
                "without reference statistics of its training inputs",
                fix="drift is scored against training-data statistics, which only torchship train records",
            )
        if ref is None:
            raise ArtifactError(
                f"artifact {m.name} has no reference statistics to compare against",
                fix="retrain it with torchship train, which records them",
            )
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
            confidence_hist=np.asarray(ref.confidence_hist, dtype=np.float64)
            if ref.confidence_hist
            else None,
            mean_confidence=ref.mean_confidence,
            labels=list(m.labels),
            note=""
            if edges
            else "no input bins in this artifact's reference (made before torchship recorded "
            "them): input drift is not scored; retrain to record them",
        )


def reference_from_inputs(artifact: Artifact, x: np.ndarray) -> dict[str, Any]:
    """Reference statistics from sample inputs (n, *input.shape), already normalized.

    For an artifact made without them (a bring-your-own model, a benchmark's toy): the
    inputs give the bins, the model's own predictions on them give the class shares and
    the confidence baseline. Save with ``artifact.with_manifest(reference=...)``.
    """
    import torch

    from torchship.data.stats import Split, prediction_stats, reference_stats

    inputs = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    with torch.inference_mode():
        probs = artifact.build_model().eval()(inputs).float().softmax(1)
    classes = len(artifact.manifest.labels)
    return {**reference_stats(Split(inputs, probs.argmax(1)), classes), **prediction_stats(probs, classes)}
