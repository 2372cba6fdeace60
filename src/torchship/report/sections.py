"""The sections of the report page, in order; each says what it could not show."""

from __future__ import annotations

import json
from collections.abc import Sequence
from html import escape
from typing import Any

from torchship.report import plots
from torchship.report.build import Report, Section
from torchship.report.federated import federated_section as _federated
from torchship.report.lineage import LineageNode, change_vs_parent, param_summary, walk
from torchship.report.markup import figure, flag, num, size, table
from torchship.report.tune import tune_section


def _overview(report: Report) -> Section:
    rows = []
    for e in report.entries:
        val = e.manifest.metrics.get("val", {})
        rows.append(
            [
                e.label,
                f"<code>{escape(str(e.path))}</code>",
                model_summary(e.manifest),  # table() escapes it
                num(val.get("accuracy"), ".4f"),
                num(val.get("f1_macro"), ".4f"),
                size(e.size_bytes),
                ", ".join(e.manifest.exports) or "–",
                e.manifest.created,
            ]
        )
    body = table(
        ["artifact", "path", "model", "val accuracy", "val macro-F1", "weights", "exports", "created"],
        rows,
        left=(0, 1, 2, 6, 7),
        raw=(1,),
    )
    missing = [] if report.entries else ["no artifacts were given: pass a run or artifact directory"]
    return Section("overview", "Overview", body if rows else "", missing)


def model_summary(manifest: Any) -> str:
    """``cnn · classification · input float32[batch, 1, 8, 8] -> logits float32[batch, 10]``."""
    arch = manifest.architecture.describe() if manifest.architecture is not None else "program only"

    def tensors(specs: Sequence[Any]) -> str:
        return ", ".join(f"{t.name} {t.dtype}[{', '.join(map(str, t.shape))}]" for t in specs)

    sig = manifest.signature
    return f"{arch} · {manifest.task} · {tensors(sig.inputs)} -> {tensors(sig.outputs)}"


def _metrics(report: Report) -> Section:
    """One table: a row per (artifact, split), a column per metric any of them recorded."""
    missing = [
        f"{e.label} records no metrics (evaluate it: torchship evaluate {e.path})"
        for e in report.entries
        if not e.manifest.metrics
    ]
    measured = [e for e in report.entries if e.manifest.metrics]
    names = sorted({k for e in measured for values in e.manifest.metrics.values() for k in values})
    rows = [
        [e.label if i == 0 else "", split, *[num(values.get(n), ".4f") for n in names]]
        for e in measured
        for i, (split, values) in enumerate(e.manifest.metrics.items())
    ]
    if not report.entries:
        missing.append("no artifacts, so no metrics")
    body = table(["artifact", "split", *names], rows, left=(0, 1)) if rows else ""
    return Section("metrics", "Metrics per split", body, missing)


def _curves(report: Report) -> Section:
    parts = []
    for curve in report.curves:
        last = curve.records[-1]
        keys = [
            k
            for k in ("train.loss", "val.loss", "train.accuracy", "val.accuracy", "val.f1_macro", "lr")
            if k in last
        ]
        best = max(curve.records, key=lambda r: r.get("val.accuracy", float("-inf")))
        parts.append(
            f'<h3>{escape(curve.label)}</h3><p class="note">{len(curve.records)} epoch(s) from '
            f"<code>{escape(curve.source)}</code>; one record per epoch (the learning rate is the value "
            f"at the epoch's end). Best val.accuracy {num(best.get('val.accuracy'), '.4f')} at epoch "
            f"{escape(str(best.get('epoch', '?')))}.</p>"
            + figure(plots.curves_svg(curve.records), f"training curves of {curve.label}")
            + table(
                ["epoch", *keys],
                [
                    [str(r.get("epoch", "")), *[num(r.get(k), ".4g") for k in keys]]
                    for r in curve.records[-3:]
                ],
                caption="last epochs",
            )
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
        rows = [
            [
                r["label"],
                num(r["precision"], ".3f"),
                num(r["recall"], ".3f"),
                num(r["f1"], ".3f"),
                str(r["support"]),
            ]
            for r in c.per_class()
        ]
        parts.append(
            f'<h3>{escape(e.label)}</h3><p class="note">{escape(c.split)} split · {escape(c.source)}</p>'
            + '<div class="pair">'
            + figure(
                plots.confusion_svg(c.labels, c.matrix, f"{e.manifest.name} ({c.split})"),
                f"confusion matrix of {e.label}",
            )
            + table(["class", "precision", "recall", "F1", "support"], rows, left=(0,), caption="per class")
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
        rows.append(
            [
                "&nbsp;&nbsp;" * depth + ("└ " if depth else "") + escape(node.entry.label),
                escape(m.lineage.op),
                escape(node.parent.label if node.parent else ("not given" if node.parent_missing else "–")),
                num(m.metrics.get("val", {}).get("accuracy"), ".4f"),
                num(change["accuracy_pt"], "+.2f"),
                size(node.entry.size_bytes),
                num(change["size_ratio"], ".2f", suffix="×"),
            ]
        )
    comparison = table(
        ["artifact", "op", "parent", "val accuracy", "Δ accuracy (pt)", "weights", "size vs parent"],
        rows,
        left=(0, 1, 2),
        raw=(0,),
        caption="compression: each child against its parent",
    )
    missing = [
        f"{n.entry.label} names parent {n.entry.manifest.lineage.parent[:19]}…, which is not among the "
        f"given artifacts"
        for n, _ in walk(report.tree)
        if n.parent_missing
    ]
    return Section("lineage", "Lineage and compression", tree + comparison, missing)


def _tree_item(node: LineageNode) -> str:
    m = node.entry.manifest
    params = dict(m.lineage.params)
    extra = (
        ' <span class="note">(matched by its parent\'s digest before export)</span>'
        if node.via_pre_export_digest
        else ""
    )
    item = (
        f'<li><strong>{escape(node.entry.label)}</strong> <span class="op">{escape(m.lineage.op)}</span> '
        f'<span class="note">{escape(param_summary(params))}</span>{extra}'
        f'<br><span class="note">digest <code>{escape(node.entry.digest[:19])}…</code></span>'
    )
    if params:
        shown = escape(json.dumps(params, indent=2, default=str))
        item += f"<details><summary>params</summary><pre>{shown}</pre></details>"
    if node.children:
        item += f'<ul class="tree">{"".join(_tree_item(c) for c in node.children)}</ul>'
    return item + "</li>"


PARETO_LEGEND = (
    '<p class="note">Marker area follows file size. Filled: on the Pareto front; hollow: off it; '
    "faded: outside the accuracy budget; red star: picked. The step line joins the candidates no "
    "other beats on both accuracy and latency.</p>"
)
AGREEMENT_LEGEND = (
    '<p class="note">Judged by output agreement with fp32 (no labelled data). Marker area follows '
    "file size. Filled: on the Pareto front; hollow: off it; faded: outside the agreement budget; "
    "red star: picked. The step line joins the candidates no other beats on both agreement and "
    "latency; better is up.</p>"
)


def _optimize(report: Report) -> Section:
    if not report.optimize:
        return Section(
            "optimize",
            "Optimize: candidates and Pareto front",
            "",
            ["no optimize results were given (pass --optimize OUTDIR or its optimize.json)"],
        )
    parts, missing = [], []
    for doc in report.optimize:
        missing += [f"{doc.path.name} has no '{name}' for any candidate" for name in doc.missing]
        rows = [_candidate_cells(c, doc.by_agreement) for c in doc.candidates]
        classes = [_candidate_class(c) for c in doc.candidates]
        reasons = [
            f"{c['name']} {c.get('status', '')}: {c['reason']}" for c in doc.candidates if c.get("reason")
        ]
        y, _ = plots.pareto_axis(doc.candidates)
        plottable = any(c[y] is not None and c["latency_p50_ms"] is not None for c in doc.candidates)
        plot = (
            figure(plots.pareto_svg(doc.candidates), "Pareto front")
            + (AGREEMENT_LEGEND if doc.by_agreement else PARETO_LEGEND)
            if plottable
            else f'<p class="missing">no candidate has both {escape(_quality_name(doc))} and latency, '
            "so there is no plot</p>"
        )
        quality = (
            ["top-1 agreement", "max |Δ|", "max |Δ| rel"] if doc.by_agreement else ["accuracy", "drop (pt)"]
        )
        parts.append(
            f"<h3><code>{escape(str(doc.path))}</code></h3>"
            + "".join(f"<p><strong>{escape(line)}</strong></p>" for line in doc.summary()[:1])
            + "".join(f'<p class="note">{escape(n)}</p>' for n in [*doc.summary()[1:], *doc.notes])
            + plot
            + table(
                [
                    "candidate",
                    "runtime",
                    *quality,
                    "p50 ms",
                    "samples/s",
                    "size",
                    "speedup",
                    "faster",
                    "within budget",
                    "Pareto",
                    "picked",
                ],
                rows,
                left=(0, 1),
                row_classes=classes,
            )
            + "".join(f'<p class="note">{escape(r)}</p>' for r in reasons)
        )
    return Section("optimize", "Optimize: candidates and Pareto front", "".join(parts), missing)


def _quality_name(doc: Any) -> str:
    return "agreement with fp32" if doc.by_agreement else "accuracy"


def _candidate_cells(c: dict[str, Any], by_agreement: bool = False) -> list[str]:
    drop = c.get("accuracy_drop")
    status = c.get("status", "ok")
    top1 = c.get("top1_agreement")
    quality = (
        [num(100 * top1 if top1 is not None else None, ".2f", "%"), num(c.get("max_abs_diff"), ".3g")]
        + [num(100 * c["max_rel_diff"] if c.get("max_rel_diff") is not None else None, ".2f", "%")]
        if by_agreement
        else [num(c["accuracy"], ".4f"), num(100 * drop if drop is not None else None, "+.2f")]
    )
    return [
        c["name"] + (" (baseline)" if c.get("baseline") else ""),
        str(c.get("runtime", "–")) if status == "ok" else status,
        *quality,
        num(c["latency_p50_ms"], ".3f"),
        num(c["throughput_sps"], ",.0f"),
        size(c["size_bytes"]),
        num(c["speedup"], ".2f", "×"),
        flag(c.get("faster")),
        flag(c["within_budget"]),
        flag(c["pareto"]),
        "★" if c.get("picked") else "",
    ]


def _candidate_class(c: dict[str, Any]) -> str:
    if c.get("picked"):
        return "best"
    out_of_budget = c["within_budget"] is False or c.get("status", "ok") != "ok"
    return "dim" if out_of_budget else ""


def _bench(report: Report) -> Section:
    if not report.bench:
        return Section(
            "bench",
            "Bench",
            "",
            ["no bench results were given (pass --bench FILE from torchship bench --json)"],
        )
    parts = []
    for doc in report.bench:
        machine = doc.machine
        about = ", ".join(
            str(x)
            for x in (
                machine.get("cpu_model") or machine.get("cpu"),
                f"{machine.get('usable_cores', '?')} usable cores" if machine else None,
                machine.get("gpu"),
            )
            if x
        )
        versions = ", ".join(f"{k} {v}" for k, v in doc.versions.items())
        rows, classes = [], []
        for batch in dict.fromkeys(r.get("batch_size") for r in doc.rows):
            group = [r for r in doc.rows if r.get("batch_size") == batch]
            measured = [r for r in group if r.get("status", "ok") == "ok" and r.get("throughput_sps")]
            fastest = max(measured, key=lambda r: r["throughput_sps"]) if len(measured) > 1 else None
            for r in group:
                ok = r.get("status", "ok") == "ok"
                rows.append(
                    _bench_cells(r)
                    if ok
                    else [
                        str(r.get("label", "")),
                        str(r.get("runtime", "")),
                        str(batch),
                        "skipped",
                        *[""] * 7,
                    ]
                )
                classes.append("best" if r is fastest else ("" if ok else "dim"))
        parts.append(
            f"<h3><code>{escape(str(doc.path))}</code></h3>"
            f'<p class="note">{escape(about or "machine not recorded")} · '
            f"{escape(versions or 'versions not recorded')}"
            f"{' · created ' + escape(str(doc.created)) if doc.created else ''}</p>"
            + (f'<p class="note"><code>{escape(doc.command)}</code></p>' if doc.command else "")
            + "".join(f'<p class="missing">{escape(n)}</p>' for n in doc.notes)
            + table(
                [
                    "artifact",
                    "runtime",
                    "batch",
                    "p50 ms",
                    "p90 ms",
                    "p99 ms",
                    "samples/s",
                    "× base",
                    "load s",
                    "size",
                    "accuracy",
                ],
                rows,
                left=(0, 1),
                row_classes=classes,
                caption="samples/s = batch / p50; the fastest row of each batch size is highlighted",
            )
            + "".join(f'<p class="note">{escape(n)}</p>' for n in _skip_reasons(doc.rows))
            + (figure(plots.throughput_svg(doc.rows), "throughput by batch size") if doc.rows else "")
        )
    return Section("bench", "Bench", "".join(parts))


def _skip_reasons(rows: Sequence[dict[str, Any]]) -> list[str]:
    reasons = {f"{r.get('label')}/{r.get('runtime')}: {r['reason']}" for r in rows if r.get("reason")}
    return sorted(reasons)


def _bench_cells(r: dict[str, Any]) -> list[str]:
    return [
        str(r.get("label", "")),
        str(r.get("runtime", "")),
        str(r.get("batch_size", "")),
        num(r.get("latency_p50_ms"), ".3f"),
        num(r.get("latency_p90_ms"), ".3f"),
        num(r.get("latency_p99_ms"), ".3f"),
        num(r.get("throughput_sps"), ",.0f"),
        num(r.get("ratio"), ".2f", "×"),
        num(r.get("load_time_s"), ".2f"),
        size(r.get("file_size_bytes")),
        num(r.get("accuracy"), ".4f"),
    ]


def _exports(report: Report) -> Section:
    rows, without = [], []
    for e in report.entries:
        if not e.manifest.exports:
            without.append(e.label)
        for fmt, record in e.manifest.exports.items():
            agreement = record.get("top1_agreement")
            tolerance, worst = record.get("tolerance"), record.get("max_abs_diff")
            within = None if tolerance is None or worst is None else worst <= tolerance
            rows.append(
                [
                    e.label,
                    fmt,
                    str(record.get("file", "")),
                    num(worst, ".2e"),
                    num(record.get("mean_abs_diff"), ".2e"),
                    num(100 * agreement if agreement is not None else None, ".2f", " %"),
                    str(record.get("samples", "")),
                    num(tolerance, ".0e"),
                    flag(within),
                    str(record.get("verified_by", "")),
                ]
            )
    missing = (
        [f"no exports for {', '.join(without)} (add them: torchship export ART --format onnx,torchscript)"]
        if without
        else []
    )
    body = (
        table(
            [
                "artifact",
                "format",
                "file",
                "max |Δ|",
                "mean |Δ|",
                "top-1 agreement",
                "samples",
                "tolerance",
                "within",
                "verified by",
            ],
            rows,
            left=(0, 1, 2, 9),
        )
        if rows
        else ""
    )
    return Section("exports", "Export parity", body, missing)


# the page's sections, in order
SECTIONS = (
    _overview,
    _metrics,
    _curves,
    _federated,
    _confusion,
    _lineage,
    _optimize,
    tune_section,
    _bench,
    _exports,
)
