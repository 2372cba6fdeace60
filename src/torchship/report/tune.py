"""The report's tune section: read a ``torchship tune`` run directory (tune.json + trials.json) and show it.

Reads only the files ``tune`` wrote, so a report needs neither Optuna nor the study's storage.
The section appears when a tune run is among the report's paths.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from html import escape
from pathlib import Path
from typing import TYPE_CHECKING, Any

from torchship.report.collect import ReportError
from torchship.report.markup import figure, num, table

if TYPE_CHECKING:
    from torchship.report.build import Report, Section

SUMMARY = "tune.json"
TRIALS = "trials.json"
KIND = "torchship.tune"


@dataclass
class TuneDoc:
    """One study as ``tune`` left it: its summary and every trial's row."""

    path: Path
    summary: dict[str, Any]
    rows: list[dict[str, Any]]


def is_tune_run(path: Path) -> bool:
    try:
        return json.loads((path / SUMMARY).read_text()).get("kind") == KIND
    except (OSError, ValueError, AttributeError):
        return False


def read_tune(run_dir: Path) -> TuneDoc:
    """Read ``tune.json`` and ``trials.json``; a broken file is a one-line ReportError."""
    try:
        summary = json.loads((run_dir / SUMMARY).read_text())
        rows = json.loads((run_dir / TRIALS).read_text())
    except (OSError, ValueError) as exc:
        raise ReportError(
            f"cannot read the tune run {run_dir} ({exc})",
            fix="re-run torchship tune with the same -o to rewrite its files",
        ) from None
    return TuneDoc(run_dir, summary, rows if isinstance(rows, list) else [])


def tune_section(report: Report) -> Section | None:
    """Optimization history, parameter importances and the Pareto front of every tune run given."""
    from torchship.report.build import Section

    docs = getattr(report, "tune", [])
    if not docs:
        return None
    parts, missing = [], []
    for doc in docs:
        body, gaps = _one_study(doc)
        parts.append(body)
        missing += gaps
    return Section("tune", "Tune: trials, importances, Pareto front", "".join(parts), missing)


def _one_study(doc: TuneDoc) -> tuple[str, list[str]]:
    from torchship.report import tune_plots

    s, rows = doc.summary, doc.rows
    objectives = s.get("objectives") or []
    states = {state: sum(r["state"] == state for r in rows) for state in ("COMPLETE", "PRUNED", "FAIL")}
    counts = ", ".join(f"{n} {state.lower()}" for state, n in states.items() if n)
    head = (
        f"<h3>study <code>{escape(str(s.get('study')))}</code> in <code>{escape(str(doc.path))}</code></h3>"
        f"<p>{len(rows)} trials ({escape(counts or 'none finished')}); "
        f"sampler {escape(str(s.get('sampler')))}, "
        f"pruner {escape(str(s.get('pruner')))}, seed {escape(str(s.get('seed')))}; storage "
        f"<code>{escape(str(s.get('storage')))}</code></p>"
    )
    missing: list[str] = []
    best = next((r for r in rows if r["number"] == s.get("best_trial")), None)
    if best is not None:
        shown = ", ".join(f"{k} = {_short(v)}" for k, v in best["params"].items())
        head += f"<p><strong>best trial {best['number']}</strong> (artifact/ holds it): {escape(shown)}</p>"
    else:
        missing.append(f"{doc.path}: no trial completed, so there is no best trial")
    plots = ""
    if states["COMPLETE"] + states["PRUNED"]:
        plots += figure(tune_plots.history_svg(rows, objectives), "optimization history")
    importances = {k: v for k, v in (s.get("importances") or {}).items() if v}
    if importances:
        plots += figure(tune_plots.importances_svg(importances), "parameter importances")
    else:
        missing.append(f"{doc.path}: no parameter importances (they need at least two completed trials)")
    if len(objectives) > 1:
        plots += figure(tune_plots.front_svg(rows, objectives, s.get("best_trial")), "Pareto front")
    return head + plots + _trials_table(rows, objectives), missing


def _trials_table(rows: list[dict[str, Any]], objectives: list[dict[str, Any]]) -> str:
    metrics = [o["metric"] for o in objectives]
    keys = list(dict.fromkeys(k for r in rows for k in r["params"]))
    cells = [
        [
            str(r["number"]),
            r["state"].lower(),
            *(num(r["values"].get(m), ".4g") for m in metrics),
            *(_short(r["params"].get(k)) for k in keys),
            num(r.get("epochs"), "d"),
            num(r.get("duration_s"), ".1f"),
            r.get("note") or "",
        ]
        for r in rows
    ]
    classes = ["best" if r["best"] else ("dim" if r["state"] != "COMPLETE" else "") for r in rows]
    headers = ["trial", "state", *metrics, *keys, "epochs", "time s", "note"]
    return table(
        headers,
        cells,
        left=(1, len(headers) - 1),
        row_classes=classes,
        caption="bold: the best trial (or the Pareto front); faded: pruned or failed",
    )


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "–" if value is None else json.dumps(value) if isinstance(value, (list, dict)) else str(value)
