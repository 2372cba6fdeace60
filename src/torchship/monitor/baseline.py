"""The drift baseline: an artifact's reference statistics, in the form the scores need."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from torchship.artifact import Artifact
from torchship.artifact.manifest import Reference
from torchship.errors import ArtifactError

CONFIDENCE_BINS = 10  # equal bins of [0, 1], as training records ``confidence_hist``
# all groups' edges live on one axis, group g shifted by g * _SPAN, so one searchsorted bins
# every group at once; values are clipped to +-_CLIP first (training deciles lie far inside)
_SPAN = 1e6
_CLIP = 4e5


@dataclass(frozen=True)
class Baseline:
    """Per-group bin edges and shares of the training inputs, and the validation predictions.

    A group is one channel of an image or one feature of a table. For a model described by
    its signature (``layout == "named"``) a group is one named float input (all its values),
    followed by one group per output whose values are watched (tasks other than
    classification); ``names`` names them and ``n_inputs`` says where the outputs start.
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
    names: tuple[str, ...] = ()  # named layout: the groups' names, inputs first
    n_inputs: int | None = None  # named layout: how many groups are inputs (the rest are outputs)
    skipped: dict[str, str] = field(default_factory=dict)  # input -> why it is not watched
    classes_from: str | None = None  # named layout: the output whose argmax is the predicted class

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
        if self.names:
            return list(self.names)
        prefix = "channel" if self.layout == "image" else "feature"
        return [f"{prefix}{i}" for i in range(len(self.edges))]

    @property
    def input_groups(self) -> int:
        """How many groups are inputs; the groups after them are outputs."""
        return len(self.edges) if self.n_inputs is None else self.n_inputs

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
                fix="record them from a sample of its inputs: torchship monitor baseline ART "
                "--inputs SAMPLE.npz -o OUT",
            )
        if ref is None:
            raise ArtifactError(
                f"artifact {m.name} has no reference statistics to compare against",
                fix="retrain it with torchship train, which records them",
            )
        if ref.named_inputs is not None or ref.named_outputs is not None:
            return cls._named(artifact, ref)
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

    @classmethod
    def _named(cls, artifact: Artifact, ref: Reference) -> Baseline:
        m = artifact.manifest
        inputs, outputs = ref.named_inputs or {}, ref.named_outputs or {}
        bins = [*inputs.values(), *outputs.values()]
        classifier = bool(ref.prediction_freq)
        return cls(
            layout="named",
            shape=(),
            edges=[np.asarray(b.edges, dtype=np.float64) for b in bins],
            input_freq=[np.asarray(b.freq, dtype=np.float64) for b in bins],
            prediction_freq=np.asarray(ref.prediction_freq, dtype=np.float64),
            confidence_hist=np.asarray(ref.confidence_hist, dtype=np.float64)
            if ref.confidence_hist
            else None,
            mean_confidence=ref.mean_confidence,
            labels=list(m.labels),
            note="; ".join(f"input {k} not watched: {why}" for k, why in (ref.skipped_inputs or {}).items()),
            names=(*inputs, *outputs),
            n_inputs=len(inputs),
            skipped=dict(ref.skipped_inputs or {}),
            classes_from=m.signature.outputs[0].name if classifier else None,
        )


def _decile_bins(values: np.ndarray) -> dict[str, list[float]]:
    """Decile edges and shares of one tensor's values (flattened), at most 2**18 of them."""
    import torch

    from torchship.data.stats import bin_baseline

    flat = np.asarray(values, dtype=np.float64).ravel()
    flat = flat[:: max(1, -(-len(flat) // (1 << 18)))]
    edges, freq = bin_baseline(torch.from_numpy(flat)[None, :])
    return {"edges": edges[0], "freq": freq[0]}


def skip_reason(dtype: str) -> str:
    """Why an input of ``dtype`` is not watched for drift."""
    return f"{dtype} values are ids, masks or codes, whose bins say nothing about drift"


def reference_from_feeds(
    artifact: Artifact,
    feeds: Mapping[str, np.ndarray],
    runtime: str = "auto",
    allow_import: Iterable[str] = (),
    batch_size: int = 256,
) -> dict[str, Any]:
    """Reference statistics of a model described by its signature, from a sample of its inputs.

    Every float input gets decile bins of all its values; integer and boolean inputs are
    listed in ``skipped_inputs``. The model's outputs on the sample give the rest: a
    classifier's predicted-class shares and confidence, any other task's decile bins of
    each output's values. Save with ``artifact.with_manifest(reference=...)``.
    """
    import torch

    from torchship.data.stats import prediction_stats
    from torchship.runtime import load_predictor
    from torchship.runtime.feeds import check_feeds, run_in_chunks

    m = artifact.manifest
    sig = m.signature
    feeds = check_feeds(sig, feeds)
    n = len(next(iter(feeds.values())))
    predictor = load_predictor(artifact, runtime, warmup=0, allow_import=allow_import)
    try:
        outputs = run_in_chunks(predictor, feeds, batch_size)
    finally:
        predictor.close()
    watched = [s for s in sig.inputs if s.is_float]
    arrays = [np.asarray(feeds[s.name], dtype=np.float64) for s in watched]
    ref: dict[str, Any] = {
        "n": n,
        "input_mean": [float(a.mean()) for a in arrays],
        "input_std": [float(a.std()) for a in arrays],
        "named_inputs": {s.name: _decile_bins(a) for s, a in zip(watched, arrays, strict=True)},
        "skipped_inputs": {s.name: skip_reason(s.dtype) for s in sig.inputs if not s.is_float} or None,
        "class_freq": [],
    }
    first = sig.outputs[0]
    if m.answers_classes:
        probs = torch.from_numpy(outputs[first.name].astype(np.float64)).softmax(1)
        classes = probs.shape[1]
        stats = prediction_stats(probs, classes)
        ref.update(stats, class_freq=stats["prediction_freq"])
    else:
        ref["named_outputs"] = {name: _decile_bins(values) for name, values in outputs.items()}
    return ref


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
