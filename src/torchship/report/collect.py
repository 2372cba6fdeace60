"""Gather what a report shows: runs, artifacts, their curves, metrics and confusion matrices.

Paths on the command line are recognised by what they hold: a run directory (the ``-o`` of
any command: its artifact in ``artifact/``, and ``log.jsonl`` for training), an artifact
directory (``manifest.json``), a bench or optimize JSON file, or any other directory, which is
searched for those. Nothing here writes: a
confusion matrix the artifact does not store is computed on the validation split and shown,
never saved into the artifact.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torchship.artifact import MANIFEST, RUN_ARTIFACT, WEIGHTS, Artifact
from torchship.errors import TorchshipError

RUN_LOG = "log.jsonl"
FEDERATED_LOG = "rounds.jsonl"  # torchship federate's run directory
EVALUATION = "evaluation.json"  # written beside the weights by the training engine
OPTIMIZE = "optimize.json"
# directories a search never enters: checkpoints and training scratch hold no artifacts
# (and a federated run's per-round artifacts: its own section shows the rounds)
_SKIP_DIRS = {"checkpoints", "tensorboard", ".git", "__pycache__", "rounds", "flower-app", "flower-home"}
_MAX_SEARCH_DEPTH = 5


class ReportError(TorchshipError):
    """A report cannot be made from the given paths."""


@dataclass
class Confusion:
    """A confusion matrix (rows: true class, columns: predicted) and where it came from."""

    split: str
    labels: list[str]
    matrix: list[list[int]]
    source: str

    def per_class(self) -> list[dict[str, Any]]:
        """Precision, recall, F1 and support of every class, derived from the matrix."""
        rows = []
        n = len(self.matrix)
        for i, label in enumerate(self.labels[:n]):
            hit = self.matrix[i][i]
            support = sum(self.matrix[i])
            predicted = sum(row[i] for row in self.matrix)
            precision = hit / predicted if predicted else 0.0
            recall = hit / support if support else 0.0
            f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
            rows.append(
                {"label": label, "precision": precision, "recall": recall, "f1": f1, "support": support}
            )
        return rows


@dataclass
class ArtifactEntry:
    """One artifact given to the report, with what could be read or computed about it."""

    path: Path
    artifact: Artifact
    run_dir: Path | None = None
    label: str = ""
    confusion: Confusion | None = None
    confusion_missing: str | None = None

    @property
    def manifest(self):
        return self.artifact.manifest

    @property
    def digest(self) -> str:
        return self.artifact.digest

    @property
    def size_bytes(self) -> int | None:
        weights = self.path / WEIGHTS
        return weights.stat().st_size if weights.is_file() else None


@dataclass
class CurveSet:
    """Per-epoch records of one training run (``log.jsonl`` or the manifest's ``curves``)."""

    label: str
    source: str
    records: list[dict[str, Any]]


@dataclass
class Sources:
    """What the given paths turned out to be."""

    artifacts: list[Path] = field(default_factory=list)
    runs: list[Path] = field(default_factory=list)
    bench: list[Path] = field(default_factory=list)
    optimize: list[Path] = field(default_factory=list)
    federated: list[Path] = field(default_factory=list)  # run directories holding rounds.jsonl
    tune: list[Path] = field(default_factory=list)  # torchship tune run directories (tune.json)

    def add(self, other: Sources) -> None:
        for name in ("artifacts", "runs", "bench", "optimize", "federated", "tune"):
            mine = getattr(self, name)
            mine.extend(p for p in getattr(other, name) if p not in mine)


def find_sources(paths: Iterable[str | Path]) -> Sources:
    """Classify each path; an unknown or empty one is a one-line :class:`ReportError`."""
    found = Sources()
    for raw in paths:
        path = Path(raw)
        if not path.exists():
            raise ReportError(
                f"{path} does not exist",
                fix="pass a run directory, an artifact directory, or bench/optimize JSON files",
            )
        one = _classify(path)
        if not (one.artifacts or one.runs or one.bench or one.optimize or one.federated or one.tune):
            raise ReportError(
                f"{path} holds no torchship run, artifact, bench or optimize results",
                fix="pass a run directory (log.jsonl), an artifact directory (manifest.json) "
                "or a file written by torchship bench --json / optimize",
            )
        found.add(one)
    return found


def _classify(path: Path, depth: int = 0) -> Sources:
    from torchship.report.tune import is_tune_run

    if path.is_file():
        return _classify_file(path)
    found = Sources()
    if (path / MANIFEST).is_file():
        found.artifacts.append(path.resolve())
        return found
    if is_tune_run(path):
        # the study's best artifact, not every trial's: the trials are in the tune section
        found.tune.append(path.resolve())
        if (path / RUN_ARTIFACT / MANIFEST).is_file():
            found.artifacts.append((path / RUN_ARTIFACT).resolve())
        return found
    if (path / FEDERATED_LOG).is_file():
        found.federated.append(path.resolve())
    optimize_run = (path / OPTIMIZE).is_file()
    if (path / RUN_LOG).is_file() or ((path / RUN_ARTIFACT / MANIFEST).is_file() and not optimize_run):
        if (path / RUN_LOG).is_file():
            found.runs.append(path.resolve())
        if (path / RUN_ARTIFACT / MANIFEST).is_file():
            found.artifacts.append((path / RUN_ARTIFACT).resolve())
        return found
    if depth >= _MAX_SEARCH_DEPTH:
        return found
    # an optimize run's artifact/ copies its picked candidate, which the search finds in candidates/
    skip = _SKIP_DIRS | ({RUN_ARTIFACT} if optimize_run else set())
    for child in sorted(path.iterdir()):
        searchable = child.is_dir() and child.name not in skip and not child.name.startswith(".")
        if searchable or json_kind(child) is not None:
            found.add(_classify(child, depth + 1))
    return found


def _classify_file(path: Path) -> Sources:
    found = Sources()
    kind = json_kind(path)
    if path.name == MANIFEST:
        found.artifacts.append(path.parent.resolve())
    elif path.name == RUN_LOG:
        found.runs.append(path.parent.resolve())
    elif kind == "bench":
        found.bench.append(path.resolve())
    elif kind == "optimize":
        found.optimize.append(path.resolve())
    return found


def json_kind(path: Path) -> str | None:
    """``"bench"`` for ``torchship bench --json`` output, ``"optimize"`` for optimize.json, else None."""
    if path.suffix != ".json" or path.name in (MANIFEST, EVALUATION):
        return None
    if path.name == OPTIMIZE:
        return "optimize"
    try:
        if path.stat().st_size > 50 * 2**20:
            return None
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    kind = str(data.get("kind", "")) if isinstance(data, dict) else ""
    if kind == "torchship.bench":
        return "bench"
    if "optimize" in kind:
        return "optimize"
    return None


def load_entries(sources: Sources) -> list[ArtifactEntry]:
    """Load (and verify) every artifact; the ones found in run directories remember their run."""
    run_of = {run / RUN_ARTIFACT: run for run in sources.runs}
    entries = [ArtifactEntry(path, Artifact.load(path), run_of.get(path)) for path in sources.artifacts]
    _label(entries)
    return entries


def _label(entries: Sequence[ArtifactEntry]) -> None:
    """``name vN (op)``, made unique with the directory name when two artifacts would share it."""
    base = [f"{e.manifest.name} v{e.manifest.version} ({e.manifest.lineage.op})" for e in entries]
    for entry, label in zip(entries, base, strict=True):
        entry.label = label if base.count(label) == 1 else f"{label} [{entry.path.name}]"


def read_run_log(run_dir: Path) -> tuple[list[dict[str, Any]], int]:
    """The records of ``log.jsonl`` and how many lines could not be read."""
    records, bad = [], 0
    for line in (run_dir / RUN_LOG).read_text().splitlines():
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            bad += 1
            continue
        if isinstance(record, dict):
            records.append(record)
        else:
            bad += 1
    return records, bad


def collect_curves(
    entries: Sequence[ArtifactEntry], runs: Sequence[Path]
) -> tuple[list[CurveSet], list[str]]:
    """One curve set per distinct training history, and notes on what is missing.

    A run's ``log.jsonl`` is preferred; an artifact without a run shows its manifest's
    ``curves``. A child that merely copied its parent's history is not shown twice.
    """
    sets: list[CurveSet] = []
    notes: list[str] = []
    seen: set[str] = set()
    by_run = {e.run_dir: e for e in entries if e.run_dir is not None}

    def add(label: str, source: str, records: list[dict[str, Any]]) -> None:
        key = json.dumps(records, sort_keys=True)
        if records and key not in seen:
            seen.add(key)
            sets.append(CurveSet(label, source, records))

    for run in runs:
        records, bad = read_run_log(run)
        entry = by_run.get(run)
        add(entry.label if entry else run.name, str(run / RUN_LOG), records)
        if bad:
            notes.append(f"{run / RUN_LOG}: {bad} line(s) are not JSON records and were skipped")
        if not records:
            notes.append(
                f"{run / RUN_LOG} holds no epoch records (the run may have stopped before its first epoch)"
            )
    without = []
    for entry in entries:
        if entry.run_dir is not None:
            continue
        if entry.manifest.curves:
            add(entry.label, f"{entry.path / MANIFEST} (curves)", list(entry.manifest.curves))
        else:
            without.append(entry.label)
    if without:
        notes.append(
            f"no training curves for {', '.join(without)}: the manifest records none and no run "
            f"directory (log.jsonl) was given"
        )
    return sets, notes


def attach_confusion(
    entry: ArtifactEntry, data: str | None, compute: bool, progress: Callable[[str], None] | None = None
) -> None:
    """Read the stored confusion matrix, or compute one on the validation split (stored nowhere)."""
    stored = _stored_confusion(entry)
    if stored is not None:
        entry.confusion = stored
        return
    if not compute:
        entry.confusion_missing = f"{entry.label} stores no {EVALUATION} (and evaluation was switched off)"
        return
    from torchship.evaluate import evaluate

    if progress is not None:
        progress(f"evaluating {entry.label} on the val split (it stores no confusion matrix)")
    try:
        result = evaluate(entry.artifact, data, "val")
    except Exception as exc:  # noqa: BLE001 - a model that cannot run is a gap in the page, not a crash
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if not isinstance(exc, TorchshipError):
            reason = f"{type(exc).__name__}: {reason[:200]}"
        entry.confusion_missing = f"{entry.label} stores no {EVALUATION} and could not be evaluated: {reason}"
        return
    entry.confusion = Confusion(
        "val",
        list(result.labels),
        result.confusion,
        f"computed for this report on the val split ({result.samples} samples, {result.runtime}); not stored",
    )


def _stored_confusion(entry: ArtifactEntry) -> Confusion | None:
    if EVALUATION not in entry.manifest.files:
        return None
    try:
        stored = json.loads((entry.path / EVALUATION).read_text())
    except (OSError, ValueError):
        return None
    for split in ("val", "test", *stored):
        block = stored.get(split)
        if isinstance(block, dict) and isinstance(block.get("matrix"), list):
            labels = block.get("labels") or entry.manifest.labels
            return Confusion(
                split, list(labels), block["matrix"], f"{EVALUATION} in the artifact ({split} split)"
            )
    return None
