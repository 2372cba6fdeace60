"""Put a report together: find the sources, read them, render one self-contained HTML file."""

from __future__ import annotations

import datetime as _dt
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from torchship.output import make_dirs, write_atomic
from torchship.report.collect import (
    ArtifactEntry,
    CurveSet,
    ReportError,
    attach_confusion,
    collect_curves,
    find_sources,
    load_entries,
)
from torchship.report.federated import FederatedDoc, read_federated
from torchship.report.lineage import LineageNode, build_tree, walk
from torchship.report.results import BenchDoc, OptimizeDoc, label_bench_rows_, read_bench, read_optimize
from torchship.report.tune import TuneDoc, read_tune


@dataclass
class Report:
    """Everything the page shows, read from disk (and the confusion matrices computed for it)."""

    title: str
    created: str
    entries: list[ArtifactEntry]
    curves: list[CurveSet]
    curve_notes: list[str]
    tree: list[LineageNode]
    bench: list[BenchDoc]
    optimize: list[OptimizeDoc]
    federated: list[FederatedDoc] = field(default_factory=list)
    tune: list[TuneDoc] = field(default_factory=list)


@dataclass
class Section:
    """One part of the page: its anchor, title, HTML body, and what it could not show."""

    id: str
    title: str
    body: str
    missing: list[str] = field(default_factory=list)


@dataclass
class ReportResult:
    path: Path
    size_bytes: int
    sections: list[Section]


def collect(
    paths: Iterable[str | os.PathLike[str]],
    *,
    bench: Iterable[str | os.PathLike[str]] = (),
    optimize: Iterable[str | os.PathLike[str]] = (),
    data: str | None = None,
    evaluate: bool = True,
    title: str | None = None,
    progress: Callable[[str], None] | None = None,
) -> Report:
    """Read runs, artifacts, bench and optimize results into a :class:`Report`.

    Args:
        paths: Run directories, artifact directories, bench/optimize JSON files, or
            directories holding any of them.
        data: ``NAME[:PATH]`` to evaluate artifacts that store no confusion matrix on;
            default: the dataset each artifact records.
        evaluate: Compute missing confusion matrices on the validation split (shown, never stored).

    Raises:
        ReportError: A path does not exist or holds nothing a report can show.
    """
    sources = find_sources(paths)
    for extra in optimize:
        sources.optimize.append(Path(extra).resolve())
    # read every file first, so a bad one fails before any model is evaluated
    bench_docs = [read_bench(p) for p in [*sources.bench, *map(Path, bench)]]
    optimize_docs = [read_optimize(p) for p in dict.fromkeys(sources.optimize)]
    tune_docs = [read_tune(p) for p in sources.tune]
    entries = load_entries(sources)
    for doc in bench_docs:
        label_bench_rows_(doc, {e.path: e.label for e in entries})
    for entry in entries:
        attach_confusion(entry, data, evaluate, progress)
    curves, curve_notes = collect_curves(entries, sources.runs)
    tree = build_tree(entries)
    ordered = [node.entry for node, _ in walk(tree)]
    if title is None:
        title = f"torchship report: {ordered[0].manifest.name}" if ordered else "torchship report"
    created = _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")
    federated = [read_federated(p) for p in sources.federated]
    return Report(
        title, created, ordered, curves, curve_notes, tree, bench_docs, optimize_docs, federated, tune_docs
    )


def write_report(
    paths: Iterable[str | os.PathLike[str]],
    out: str | os.PathLike[str],
    **kwargs,
) -> ReportResult:
    """Collect (see :func:`collect`) and write one self-contained HTML page to ``out``."""
    from torchship.report.html import render

    report = collect(paths, **kwargs)
    page, sections = render(report)
    target = Path(out)
    if target.is_dir():
        raise ReportError(f"{target} is a directory", fix="pass a file name, e.g. -o report.html")
    make_dirs(target.parent)
    write_atomic(target, page)
    return ReportResult(target, target.stat().st_size, sections)


def quickstart_report(out: str | os.PathLike[str]) -> str:
    """Write ``<out>/report.html`` over everything under ``out``; one line for the quickstart's steps.

    A missing ``report`` extra (matplotlib) does not fail the quickstart: the line says so.
    """
    from torchship.errors import DependencyError

    root = Path(out)
    try:
        result = write_report([root], root / "report.html")
    except DependencyError as exc:
        return f"report skipped: {exc}"
    return f"report -> {result.path}"
