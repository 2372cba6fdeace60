"""Render a :class:`~torchship.report.build.Report` as one self-contained HTML page.

No external links, scripts or fonts: CSS is inline, figures are inline SVG. Every section
says what it could not show instead of disappearing, so a report over a bare artifact still
tells its reader what to add.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from html import escape
from typing import Any

from torchship.report import plots
from torchship.report.build import Report, Section
from torchship.report.lineage import LineageNode, change_vs_parent, param_summary, walk

CSS = """
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0;color:#1d2430;background:#f6f7f9}
main{max-width:1100px;margin:0 auto;padding:24px 32px 64px;background:#fff}
h1{margin:0 0 4px;font-size:26px} h2{margin-top:40px;border-bottom:2px solid #e3e7ee;padding-bottom:4px}
h3{margin:24px 0 8px;font-size:17px} .sub{color:#5b6577;margin:0 0 16px}
nav ol{columns:2;background:#f1f4f8;padding:12px 12px 12px 36px;border-radius:6px}
nav .gap{color:#b4541a;font-size:13px}
table{border-collapse:collapse;margin:8px 0 16px;font-size:13px}
th,td{border:1px solid #dde2ea;padding:4px 8px;text-align:right;vertical-align:top}
th{background:#f1f4f8;white-space:nowrap} td.l,th.l{text-align:left}
tr.best td{font-weight:600;background:#eef8ee} tr.dim td{color:#8a93a3}
.missing{background:#fff5e8;border-left:4px solid #f0a04b;padding:6px 10px;margin:8px 0;font-size:14px}
.note{color:#5b6577;font-size:13px} code{background:#f1f4f8;padding:0 3px;border-radius:3px}
.pair{display:flex;flex-wrap:wrap;gap:24px;align-items:flex-start}
figure{margin:8px 0 16px} figure svg{max-width:100%;height:auto}
ul.tree{list-style:none;padding-left:18px;border-left:2px solid #dde2ea} ul.tree.root{border:0;padding-left:0}
ul.tree li{margin:6px 0} .op{display:inline-block;background:#e6efff;border-radius:4px;padding:0 6px;font-size:13px}
details{font-size:12px} pre{white-space:pre-wrap;max-height:320px;overflow:auto;background:#f6f7f9;padding:8px}
"""


def render(report: Report) -> tuple[str, list[Section]]:
    """The page and its sections (with what each is missing)."""
    sections = [
        _overview(report), _metrics(report), _curves(report), _confusion(report), _lineage(report),
        _optimize(report), _bench(report), _exports(report),
    ]
    toc = "".join(
        f'<li><a href="#{s.id}">{escape(s.title)}</a>'
        + (f' <span class="gap">({len(s.missing)} missing)</span>' if s.missing else "") + "</li>"
        for s in sections
    )
    body = "".join(
        f'<section id="{s.id}"><h2>{escape(s.title)}</h2>{_missing(s.missing)}{s.body}</section>' for s in sections
    )
    page = (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(report.title)}</title><style>{CSS}</style></head><body><main>"
        f"<h1>{escape(report.title)}</h1><p class=\"sub\">written {escape(report.created)} by torchship report · "
        f"{len(report.entries)} artifact(s), {len(report.curves)} training run(s), {len(report.bench)} bench file(s), "
        f"{len(report.optimize)} optimize result(s)</p>"
        f'<nav><strong>Contents</strong><ol>{toc}</ol></nav>{body}</main></body></html>\n'
    )
    return page, sections


# ---------------------------------------------------------------------- sections
def _overview(report: Report) -> Section:
    rows = []
    for e in report.entries:
        val = e.manifest.metrics.get("val", {})
        rows.append([e.label, f"<code>{escape(str(e.path))}</code>", e.manifest.architecture.describe(),
                     _num(val.get("accuracy"), ".4f"), _num(val.get("f1_macro"), ".4f"), _bytes(e.size_bytes),
                     ", ".join(e.manifest.exports) or "–", e.manifest.created])
    body = _table(["artifact", "path", "model", "val accuracy", "val macro-F1", "weights", "exports", "created"],
                  rows, left=(0, 1, 2, 6, 7), raw=(1,))
    missing = [] if report.entries else ["no artifacts were given: pass a run or artifact directory"]
    return Section("overview", "Overview", body if rows else "", missing)


def _metrics(report: Report) -> Section:
    parts, missing = [], []
    for e in report.entries:
        metrics = e.manifest.metrics
        if not metrics:
            missing.append(f"{e.label} records no metrics (evaluate it: torchship evaluate {e.path})")
            continue
        names = sorted({k for values in metrics.values() for k in values})
        rows = [[split, *[_num(values.get(n), ".4f") for n in names]] for split, values in metrics.items()]
        parts.append(f"<h3>{escape(e.label)}</h3>" + _table(["split", *names], rows, left=(0,)))
    if not report.entries:
        missing.append("no artifacts, so no metrics")
    return Section("metrics", "Metrics per split", "".join(parts), missing)


def _curves(report: Report) -> Section:
    parts = []
    for curve in report.curves:
        last = curve.records[-1]
        keys = [k for k in ("train.loss", "val.loss", "train.accuracy", "val.accuracy", "val.f1_macro", "lr")
                if k in last]
        best = max(curve.records, key=lambda r: r.get("val.accuracy", float("-inf")))
        parts.append(
            f"<h3>{escape(curve.label)}</h3><p class=\"note\">{len(curve.records)} epoch(s) from "
            f"<code>{escape(curve.source)}</code>; one record per epoch (the learning rate is the value at the "
            f"epoch's end). Best val.accuracy {_num(best.get('val.accuracy'), '.4f')} at epoch "
            f"{escape(str(best.get('epoch', '?')))}.</p>"
            + _figure(plots.curves_svg(curve.records), f"training curves of {curve.label}")
            + _table(["epoch", *keys], [[str(r.get("epoch", "")), *[_num(r.get(k), ".4g") for k in keys]]
                                        for r in curve.records[-3:]], caption="last epochs")
        )
    missing = list(report.curve_notes)
    if not report.curves and not missing:
        missing.append("no training curves: pass the run directory (it holds log.jsonl)")
    return Section("curves", "Training curves", "".join(parts), missing)


def _confusion(report: Report) -> Section:
    parts, missing = [], []
    for e in report.entries:
        c = e.confusion
        if c is None:
            missing.append(e.confusion_missing or f"{e.label}: no confusion matrix")
            continue
        rows = [[r["label"], _num(r["precision"], ".3f"), _num(r["recall"], ".3f"), _num(r["f1"], ".3f"),
                 str(r["support"])] for r in c.per_class()]
        parts.append(
            f"<h3>{escape(e.label)}</h3><p class=\"note\">{escape(c.split)} split · {escape(c.source)}</p>"
            + '<div class="pair">'
            + _figure(plots.confusion_svg(c.labels, c.matrix, f"{e.manifest.name} ({c.split})"),
                      f"confusion matrix of {e.label}")
            + _table(["class", "precision", "recall", "F1", "support"], rows, left=(0,), caption="per class")
            + "</div>"
        )
    if not report.entries:
        missing.append("no artifacts, so no confusion matrix")
    return Section("confusion", "Confusion matrix and per-class metrics", "".join(parts), missing)


def _lineage(report: Report) -> Section:
    if not report.tree:
        return Section("lineage", "Lineage", "", ["no artifacts, so no lineage"])
    tree = f'<ul class="tree root">{"".join(_tree_item(n) for n in report.tree)}</ul>'
    rows = []
    for node, depth in walk(report.tree):
        m = node.entry.manifest
        change = change_vs_parent(node)
        rows.append([
            "&nbsp;&nbsp;" * depth + ("└ " if depth else "") + escape(node.entry.label), escape(m.lineage.op),
            escape(node.parent.label if node.parent else ("not given" if node.parent_missing else "–")),
            _num(m.metrics.get("val", {}).get("accuracy"), ".4f"), _num(change["accuracy_pt"], "+.2f"),
            _bytes(node.entry.size_bytes), _num(change["size_ratio"], ".2f", suffix="×"),
        ])
    table = _table(["artifact", "op", "parent", "val accuracy", "Δ accuracy (pt)", "weights", "size vs parent"],
                   rows, left=(0, 1, 2), raw=(0,), caption="compression: each child against its parent")
    missing = [f"{n.entry.label} names parent {n.entry.manifest.lineage.parent[:19]}…, which is not among the "
               f"given artifacts" for n, _ in walk(report.tree) if n.parent_missing]
    return Section("lineage", "Lineage and compression", tree + table, missing)


def _tree_item(node: LineageNode) -> str:
    m = node.entry.manifest
    params = dict(m.lineage.params)
    extra = " <span class=\"note\">(matched by its parent's digest before export)</span>" if node.via_pre_export_digest else ""
    item = (f"<li><strong>{escape(node.entry.label)}</strong> <span class=\"op\">{escape(m.lineage.op)}</span> "
            f"<span class=\"note\">{escape(param_summary(params))}</span>{extra}"
            f"<br><span class=\"note\">digest <code>{escape(node.entry.digest[:19])}…</code></span>")
    if params:
        item += f"<details><summary>params</summary><pre>{escape(json.dumps(params, indent=2, default=str))}</pre></details>"
    if node.children:
        item += f'<ul class="tree">{"".join(_tree_item(c) for c in node.children)}</ul>'
    return item + "</li>"


def _optimize(report: Report) -> Section:
    if not report.optimize:
        return Section("optimize", "Optimize: candidates and Pareto front", "",
                       ["no optimize results were given (pass --optimize OUTDIR or its optimize.json)"])
    parts, missing = [], []
    for doc in report.optimize:
        missing += [f"{doc.path.name} has no '{name}' for any candidate" for name in doc.missing]
        rows, classes = [], []
        for c in doc.candidates:
            rows.append([c["name"], _num(c["accuracy"], ".4f"), _num(c["latency_p50_ms"], ".3f"),
                         _num(c["throughput_sps"], ",.0f"), _bytes(c["size_bytes"]), _num(c["speedup"], ".2f", "×"),
                         _flag(c["within_budget"]), _flag(c["pareto"]), "★" if c.get("picked") else ""])
            classes.append("best" if c.get("picked") else ("dim" if c["within_budget"] is False else ""))
        plottable = any(c["accuracy"] is not None and c["latency_p50_ms"] is not None for c in doc.candidates)
        figure = (_figure(plots.pareto_svg(doc.candidates), "Pareto front") if plottable
                  else '<p class="missing">no candidate has both accuracy and latency, so there is no plot</p>')
        parts.append(
            f"<h3><code>{escape(str(doc.path))}</code></h3>" + "".join(f'<p class="note">{escape(n)}</p>' for n in doc.notes)
            + figure + _table(["candidate", "accuracy", "p50 ms", "samples/s", "size", "speedup", "within budget",
                               "Pareto", "picked"], rows, left=(0,), row_classes=classes)
        )
    return Section("optimize", "Optimize: candidates and Pareto front", "".join(parts), missing)


def _bench(report: Report) -> Section:
    if not report.bench:
        return Section("bench", "Bench", "", ["no bench results were given (pass --bench FILE from torchship bench --json)"])
    parts = []
    for doc in report.bench:
        machine = doc.machine
        about = ", ".join(str(x) for x in (machine.get("cpu_model") or machine.get("cpu"),
                                          f"{machine.get('usable_cores', '?')} usable cores" if machine else None,
                                          machine.get("gpu")) if x)
        versions = ", ".join(f"{k} {v}" for k, v in doc.versions.items())
        rows, classes = [], []
        for size in dict.fromkeys(r.get("batch_size") for r in doc.rows):
            group = [r for r in doc.rows if r.get("batch_size") == size]
            measured = [r for r in group if r.get("status", "ok") == "ok" and r.get("throughput_sps")]
            fastest = max(measured, key=lambda r: r["throughput_sps"]) if len(measured) > 1 else None
            for r in group:
                ok = r.get("status", "ok") == "ok"
                rows.append(_bench_cells(r) if ok else [str(r.get("label", "")), str(r.get("runtime", "")),
                                                        str(size), "skipped", *[""] * 7])
                classes.append("best" if r is fastest else ("" if ok else "dim"))
        parts.append(
            f"<h3><code>{escape(str(doc.path))}</code></h3>"
            f"<p class=\"note\">{escape(about or 'machine not recorded')} · {escape(versions or 'versions not recorded')}"
            f"{' · created ' + escape(str(doc.created)) if doc.created else ''}</p>"
            + (f"<p class=\"note\"><code>{escape(doc.command)}</code></p>" if doc.command else "")
            + "".join(f'<p class="missing">{escape(n)}</p>' for n in doc.notes)
            + _table(["artifact", "runtime", "batch", "p50 ms", "p90 ms", "p99 ms", "samples/s", "× base", "load s",
                      "size", "accuracy"], rows, left=(0, 1), row_classes=classes,
                     caption="samples/s = batch / p50; the fastest row of each batch size is highlighted")
            + "".join(f'<p class="note">{escape(n)}</p>' for n in _skip_reasons(doc.rows))
            + (_figure(plots.throughput_svg(doc.rows), "throughput by batch size") if doc.rows else "")
        )
    return Section("bench", "Bench", "".join(parts))


def _skip_reasons(rows: Sequence[dict[str, Any]]) -> list[str]:
    reasons = {f"{r.get('label')}/{r.get('runtime')}: {r['reason']}" for r in rows if r.get("reason")}
    return sorted(reasons)


def _bench_cells(r: dict[str, Any]) -> list[str]:
    return [str(r.get("label", "")), str(r.get("runtime", "")), str(r.get("batch_size", "")),
            _num(r.get("latency_p50_ms"), ".3f"), _num(r.get("latency_p90_ms"), ".3f"),
            _num(r.get("latency_p99_ms"), ".3f"), _num(r.get("throughput_sps"), ",.0f"),
            _num(r.get("ratio"), ".2f", "×"), _num(r.get("load_time_s"), ".2f"), _bytes(r.get("file_size_bytes")),
            _num(r.get("accuracy"), ".4f")]


def _exports(report: Report) -> Section:
    rows, without = [], []
    for e in report.entries:
        if not e.manifest.exports:
            without.append(e.label)
        for fmt, record in e.manifest.exports.items():
            agreement = record.get("top1_agreement")
            tolerance, worst = record.get("tolerance"), record.get("max_abs_diff")
            within = None if tolerance is None or worst is None else worst <= tolerance
            rows.append([e.label, fmt, str(record.get("file", "")), _num(worst, ".2e"),
                         _num(record.get("mean_abs_diff"), ".2e"),
                         _num(100 * agreement if agreement is not None else None, ".2f", " %"),
                         str(record.get("samples", "")), _num(tolerance, ".0e"), _flag(within),
                         str(record.get("verified_by", ""))])
    missing = [f"no exports for {', '.join(without)} (add them: torchship export ART --format onnx,torchscript)"] if without else []
    body = _table(["artifact", "format", "file", "max |Δ|", "mean |Δ|", "top-1 agreement", "samples", "tolerance",
                   "within", "verified by"], rows, left=(0, 1, 2, 9)) if rows else ""
    return Section("exports", "Export parity", body, missing)


# ---------------------------------------------------------------------- pieces
def _table(headers: Sequence[str], rows: Sequence[Sequence[str]], *, left: Sequence[int] = (),
           raw: Sequence[int] = (), caption: str | None = None, row_classes: Sequence[str] = ()) -> str:
    """An HTML table; cells are escaped unless their column is in ``raw`` (already HTML)."""
    head = "".join(f'<th class="l">{escape(h)}</th>' if i in left else f"<th>{escape(h)}</th>"
                   for i, h in enumerate(headers))
    body = []
    for n, row in enumerate(rows):
        cls = row_classes[n] if n < len(row_classes) and row_classes[n] else ""
        cells = "".join(
            ('<td class="l">' if i in left else "<td>") + (cell if i in raw else escape(str(cell))) + "</td>"
            for i, cell in enumerate(row)
        )
        body.append(f'<tr class="{cls}">{cells}</tr>' if cls else f"<tr>{cells}</tr>")
    cap = f'<caption class="note">{escape(caption)}</caption>' if caption else ""
    return f"<table>{cap}<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _figure(svg: str, alt: str) -> str:
    return f'<figure role="img" aria-label="{escape(alt)}">{svg}</figure>'


def _missing(notes: Sequence[str]) -> str:
    return "".join(f'<p class="missing">missing: {escape(n)}</p>' for n in notes)


def _num(value: Any, spec: str, suffix: str = "") -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return "–"
    return f"{value:{spec}}{suffix}"


def _bytes(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return "–"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return "–"


def _flag(value: Any) -> str:
    return {True: "yes", False: "no"}.get(value, "–") if isinstance(value, bool) or value is None else str(value)
