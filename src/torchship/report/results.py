"""Read measurement files tolerantly: ``torchship bench --json`` documents and ``optimize.json``.

A report shows whatever a file holds; keys it lacks become blanks and one note saying which
are missing, so a newer or older writer never breaks the page.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torchship.report.collect import ReportError

# The optimize fields the report reads, and the spellings it accepts for each (first wins).
OPTIMIZE_FIELDS: dict[str, tuple[str, ...]] = {
    "name": ("name", "candidate", "label"),
    "accuracy": ("accuracy", "val_accuracy", "metrics.val.accuracy", "metrics.accuracy"),
    "latency_p50_ms": ("latency_p50_ms", "latency_ms", "p50_ms", "bench.latency_p50_ms"),
    "throughput_sps": ("throughput_sps", "throughput", "samples_per_s", "bench.throughput_sps"),
    "size_bytes": ("size_bytes", "file_size_bytes", "weights_bytes", "bench.file_size_bytes"),
    "speedup": ("speedup",),
    "within_budget": ("within_budget", "in_budget"),
    "pareto": ("pareto", "on_front", "pareto_front"),
    "picked": ("picked", "chosen", "best"),
}
# Shown when present, never reported missing: torchship optimize's own extras (docs/compress.md).
OPTIMIZE_DETAILS = ("status", "reason", "runtime", "accuracy_drop", "faster", "baseline")
# A run judged by output agreement (no labelled data) gives these instead of accuracy.
AGREEMENT_FIELDS: dict[str, tuple[str, ...]] = {
    "top1_agreement": ("agreement.top1_agreement", "top1_agreement"),
    "max_abs_diff": ("agreement.max_abs_diff", "max_abs_diff"),
    "max_rel_diff": ("agreement.max_rel_diff", "max_rel_diff"),
}
_CANDIDATE_LISTS = ("candidates", "results", "trials", "recipes")


@dataclass
class BenchDoc:
    """One ``torchship bench --json`` document."""

    path: Path
    rows: list[dict[str, Any]]
    machine: dict[str, Any] = field(default_factory=dict)
    versions: dict[str, Any] = field(default_factory=dict)
    command: str | None = None
    created: str | None = None
    notes: list[str] = field(default_factory=list)


@dataclass
class OptimizeDoc:
    """The candidates of one optimize run, each reduced to :data:`OPTIMIZE_FIELDS`."""

    path: Path
    candidates: list[dict[str, Any]]
    raw: dict[str, Any]
    missing: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def by_agreement(self) -> bool:
        """Judged by output agreement with fp32 rather than accuracy (a model without labelled data)."""
        if self.raw.get("judged_by") is not None:
            return self.raw["judged_by"] == "agreement"
        return any(c["max_rel_diff"] is not None for c in self.candidates) and all(
            c["accuracy"] is None for c in self.candidates
        )

    def summary(self) -> list[str]:
        """The run's own verdict and settings, as far as the file records them."""
        lines = [str(self.raw["verdict"])] if self.raw.get("verdict") else []
        if self.raw.get("judgement"):
            lines.append(f"judged by {self.raw['judgement']}")
        settings = self.raw.get("settings")
        if isinstance(settings, dict):
            shown = ("objective", "batch_size", "max_accuracy_drop", "runtimes")
            if self.by_agreement:
                shown += ("max_relative_diff",)
            lines.append(", ".join(f"{k} {settings[k]}" for k in shown if settings.get(k) is not None))
        return [line for line in lines if line]


def _read_json(path: Path, what: str) -> Any:
    if not path.is_file():
        raise ReportError(f"{what} {path} does not exist", fix="check the path")
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ReportError(
            f"{what} {path} is not valid JSON ({str(exc).splitlines()[0]})",
            fix="pass the file the command wrote",
        ) from None


def read_bench(path: str | Path) -> BenchDoc:
    """Read a bench document; rows keep every key the writer gave them."""
    path = Path(path)
    data = _read_json(path, "bench file")
    if not isinstance(data, dict) or not isinstance(data.get("results"), list):
        raise ReportError(
            f"bench file {path} has no 'results' list", fix="pass a file written by torchship bench --json"
        )
    doc = BenchDoc(
        path,
        [r for r in data["results"] if isinstance(r, dict)],
        data.get("machine") or {},
        data.get("versions") or {},
        data.get("command"),
        data.get("created"),
    )
    if data.get("kind") != "torchship.bench":
        doc.notes.append(f"{path.name} does not say kind 'torchship.bench'; read as one anyway")
    if not doc.rows:
        doc.notes.append(f"{path.name} holds no result rows")
    return doc


def read_optimize(path: str | Path) -> OptimizeDoc:
    """Read ``OUTDIR/optimize.json`` (or the file itself), whatever subset of fields it has."""
    path = Path(path)
    if path.is_dir():
        path = path / "optimize.json"
    data = _read_json(path, "optimize results")
    raw = data if isinstance(data, dict) else {"candidates": data}
    listed = next((raw[k] for k in _CANDIDATE_LISTS if isinstance(raw.get(k), list)), None)
    if listed is None:
        raise ReportError(
            f"optimize results {path} list no candidates (looked for {', '.join(_CANDIDATE_LISTS)})",
            fix="pass the optimize.json that torchship optimize wrote",
        )
    candidates = [_candidate(c, i) for i, c in enumerate(listed) if isinstance(c, dict)]
    picked_name = _picked_name(raw)
    if picked_name is not None:
        for c in candidates:
            c["picked"] = bool(c.get("picked")) or c["name"] == picked_name
    doc = OptimizeDoc(path, candidates, raw)
    # judged by agreement, accuracy is not expected: the agreement with fp32 stands in for it
    expected = [n for n in OPTIMIZE_FIELDS if n != "name" and not (n == "accuracy" and doc.by_agreement)]
    if doc.by_agreement:
        expected.append("max_rel_diff")
    doc.missing = [name for name in expected if all(c.get(name) is None for c in candidates)]
    if "pareto" in doc.missing and candidates:
        mark_pareto_front_(candidates)
        best = "max agreement" if doc.by_agreement else "max accuracy"
        doc.notes.append(f"the file marks no Pareto front; it was computed here ({best}, min latency)")
    return doc


def _candidate(raw: dict[str, Any], index: int) -> dict[str, Any]:
    out = {
        name: _lookup(raw, spellings) for name, spellings in {**OPTIMIZE_FIELDS, **AGREEMENT_FIELDS}.items()
    }
    out["name"] = str(out["name"]) if out["name"] is not None else f"candidate {index + 1}"
    out.update({key: raw[key] for key in OPTIMIZE_DETAILS if raw.get(key) is not None})
    if out.get("baseline") and out["speedup"] is None:
        out["speedup"] = 1.0  # the baseline is what speed-ups are measured against
    out["quality"] = _quality(out)
    return out


def _quality(c: dict[str, Any]) -> float | None:
    """Higher is better: accuracy, else top-1 agreement with fp32, else minus the max relative |Δ|
    (as torchship optimize ranks candidates, compress/verdict.py)."""
    for key, sign in (("accuracy", 1), ("top1_agreement", 1), ("max_rel_diff", -1)):
        if _number(c.get(key)):
            return sign * float(c[key])
    return None


def _lookup(raw: dict[str, Any], spellings: tuple[str, ...]) -> Any:
    for spelling in spellings:
        value: Any = raw
        for part in spelling.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        if value is not None:
            return value
    return None


def _picked_name(raw: dict[str, Any]) -> str | None:
    for key in ("picked", "best", "chosen"):
        value = raw.get(key)
        if isinstance(value, str):
            return value
        if isinstance(value, dict):
            name = _lookup(value, OPTIMIZE_FIELDS["name"])
            if name is not None:
                return str(name)
    return None


def accuracy_latency_front(candidates: list[dict[str, Any]], key: str = "accuracy") -> list[dict[str, Any]]:
    """The candidates no other beats on both ``key`` (higher; accuracy, or ``quality`` for a run
    judged by agreement) and p50 latency (lower)."""
    usable = [c for c in candidates if _number(c.get(key)) and _number(c.get("latency_p50_ms"))]

    def beats(o: dict[str, Any], c: dict[str, Any]) -> bool:
        at_least = o[key] >= c[key] and o["latency_p50_ms"] <= c["latency_p50_ms"]
        return at_least and (o[key] > c[key] or o["latency_p50_ms"] < c["latency_p50_ms"])

    return [c for c in usable if not any(beats(o, c) for o in usable if o is not c)]


def mark_pareto_front_(candidates: list[dict[str, Any]]) -> None:
    """Set ``pareto`` on the candidates of the quality/latency front, clear it on the others
    (quality is the accuracy, or the agreement with fp32 where there is no accuracy)."""
    for c in candidates:
        c.setdefault("quality", _quality(c))
    front = accuracy_latency_front(candidates, "quality")
    for c in candidates:
        c["pareto"] = any(c is f for f in front)


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def label_bench_rows_(doc: BenchDoc, labels_by_path: dict[Path, str]) -> None:
    """Give every row a ``label``: the report's name for its artifact when it is one of the given
    artifacts, else the bench name, with the directory added where two artifacts share a name."""
    paths_of: dict[str, set[str]] = {}
    for row in doc.rows:
        paths_of.setdefault(str(row.get("artifact", "?")), set()).add(str(row.get("artifact_path")))
    for row in doc.rows:
        name, where = str(row.get("artifact", "?")), row.get("artifact_path")
        known = None
        if where:
            for base in (Path.cwd(), doc.path.parent):
                known = known or labels_by_path.get((base / str(where)).resolve())
        if known is not None:
            row["label"] = known
        elif len(paths_of[name]) > 1 and where:
            row["label"] = f"{name} [{Path(str(where)).name}]"
        else:
            row["label"] = name
