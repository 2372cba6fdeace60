"""The report's figures, drawn with matplotlib and returned as inline SVG text.

Figures are built with ``matplotlib.figure.Figure`` (no pyplot, so no global state and no
GUI backend); text stays text (``svg.fonttype = none``) so the page is small and searchable.
"""

from __future__ import annotations

import io
import math
import re
from collections.abc import Sequence
from typing import Any

from torchship.errors import require
from torchship.report.results import accuracy_latency_front

_COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#17becf", "#7f7f7f")


def _figure(width_in: float, height_in: float):
    require("matplotlib", "report")
    from matplotlib.figure import Figure

    return Figure(figsize=(width_in, height_in), layout="constrained")


def to_svg(fig) -> str:
    """The figure as an ``<svg>`` element (XML declaration and DOCTYPE stripped), ready to inline."""
    import matplotlib

    buffer = io.StringIO()
    with matplotlib.rc_context({"svg.fonttype": "none"}):
        fig.savefig(buffer, format="svg", metadata={"Date": None, "Creator": None})
    text = buffer.getvalue()
    # the RDF block only names matplotlib's and Dublin Core's URIs; the page should name none
    text = re.sub(r"<metadata>.*?</metadata>\s*", "", text, flags=re.S)
    return text[text.index("<svg") :]


def curves_svg(records: Sequence[dict[str, Any]]) -> str:
    """Loss, accuracy (and macro-F1) and learning rate per epoch, side by side."""
    from matplotlib.ticker import MaxNLocator

    fig = _figure(10.5, 3.0)
    panels = [
        ("loss", ("train.loss", "val.loss"), None),
        ("accuracy", ("train.accuracy", "val.accuracy", "val.f1_macro"), (None, 1.0)),
        ("learning rate", ("lr",), None),
    ]
    axes = fig.subplots(1, len(panels))
    for ax, (title, keys, ylim) in zip(axes, panels, strict=True):
        for color, key in zip(_COLORS, keys, strict=False):
            points = [
                (r["epoch"], r[key]) for r in records if _finite(r.get(key)) and _finite(r.get("epoch"))
            ]
            if points:
                xs, ys = zip(*points, strict=True)
                ax.plot(xs, ys, marker="o", markersize=3, color=color, label=key)
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        if ylim is not None:
            ax.set_ylim(top=ylim[1])
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize="small")
        else:
            ax.text(0.5, 0.5, "not logged", ha="center", va="center", transform=ax.transAxes, color="#888")
    return to_svg(fig)


def confusion_svg(labels: Sequence[str], matrix: Sequence[Sequence[int]], title: str) -> str:
    """A heat map of the confusion matrix with the counts written in the cells."""
    n = len(matrix)
    side = min(6.0, 1.8 + 0.32 * n)
    fig = _figure(side + 0.9, side)
    ax = fig.subplots()
    image = ax.imshow(matrix, cmap="Blues")
    peak = max((max(row) for row in matrix), default=0) or 1
    if n <= 30:
        for i, row in enumerate(matrix):
            for j, value in enumerate(row):
                if value:
                    ax.text(
                        j,
                        i,
                        str(value),
                        ha="center",
                        va="center",
                        fontsize=8,
                        color="white" if value > peak / 2 else "black",
                    )
    ticks = range(n)
    names = list(labels[:n]) + [str(i) for i in range(len(labels), n)]
    ax.set_xticks(ticks, names, rotation=90 if max(map(len, names), default=0) > 3 else 0)
    ax.set_yticks(ticks, names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    fig.colorbar(image, ax=ax, shrink=0.8)
    return to_svg(fig)


def pareto_axis(candidates: Sequence[dict[str, Any]]) -> tuple[str, str]:
    """The quality key the Pareto plot draws and its axis label: accuracy, else (a run judged by
    agreement with fp32) top-1 agreement for a classifier, else the max relative |Δ|."""
    for key, label in (
        ("accuracy", "accuracy"),
        ("top1_agreement", "top-1 agreement with fp32"),
        ("max_rel_diff", "max relative |Δ| vs fp32"),
    ):
        if any(_finite(c.get(key)) for c in candidates):
            return key, label
    return "accuracy", "accuracy"


def pareto_svg(candidates: Sequence[dict[str, Any]]) -> str:
    """Quality (see :func:`pareto_axis`) against p50 latency; marker area follows file size; the
    front is joined by a line.

    Filled markers are on the Pareto front the file marks, hollow ones off it, faded ones
    outside the budget; the picked candidate wears a star; the step line joins the candidates
    no other beats on both quality and latency. A max relative |Δ| axis is drawn inverted, so
    better is up on every plot.
    """
    fig = _figure(7.0, 4.2)
    ax = fig.subplots()
    y, label = pareto_axis(candidates)
    usable = [c for c in candidates if _finite(c.get(y)) and _finite(c.get("latency_p50_ms"))]
    sizes = [c["size_bytes"] for c in usable if _finite(c.get("size_bytes"))]
    largest = max(sizes, default=0) or 1
    for c in usable:
        area = 40 + 400 * c["size_bytes"] / largest if _finite(c.get("size_bytes")) else 60
        inside = c.get("within_budget") is not False
        on_front = bool(c.get("pareto"))
        ax.scatter(
            c["latency_p50_ms"],
            c[y],
            s=area,
            alpha=0.9 if inside else 0.3,
            facecolors=_COLORS[0] if on_front else "none",
            edgecolors=_COLORS[0],
            linewidths=1.5,
        )
        if c.get("picked"):
            ax.scatter(
                c["latency_p50_ms"],
                c[y],
                s=220,
                marker="*",
                color=_COLORS[1],
                zorder=3,
                label=f"picked: {c['name']}",
            )
        ax.annotate(
            str(c["name"]),
            (c["latency_p50_ms"], c[y]),
            textcoords="offset points",
            xytext=(6, 4),
            fontsize=8,
        )
    # the line is the two-dimensional front; a file may mark a front over more axes (size too)
    ranked = [{**c, "rank": c[y] if y != "max_rel_diff" else -c[y]} for c in usable]
    front = sorted(accuracy_latency_front(ranked, "rank"), key=lambda c: c["latency_p50_ms"])
    short = "accuracy" if y == "accuracy" else "agreement"
    if len(front) > 1:
        ax.plot(
            [c["latency_p50_ms"] for c in front],
            [c[y] for c in front],
            color=_COLORS[0],
            alpha=0.5,
            drawstyle="steps-post",
            label=f"{short}/latency front",
        )
    ax.margins(0.08, 0.15)
    if y == "max_rel_diff":
        ax.invert_yaxis()
    ax.set_xlabel("latency p50 (ms)")
    ax.set_ylabel(label)
    ax.set_title(f"{short} vs latency (marker area ∝ file size)")
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize="small", loc="lower right")
    return to_svg(fig)


def throughput_svg(rows: Sequence[dict[str, Any]]) -> str:
    """Samples/s against batch size, one line per artifact/runtime (measured rows only)."""
    fig = _figure(7.0, 3.6)
    ax = fig.subplots()
    series: dict[str, list[tuple[int, float]]] = {}
    for row in rows:
        if (
            row.get("status", "ok") == "ok"
            and _finite(row.get("throughput_sps"))
            and _finite(row.get("batch_size"))
        ):
            label = f"{row.get('label') or row.get('artifact', '?')}/{row.get('runtime', '?')}"
            series.setdefault(label, []).append((row["batch_size"], row["throughput_sps"]))
    for color, (label, points) in zip(_COLORS * 4, series.items(), strict=False):
        xs, ys = zip(*sorted(points), strict=True)
        ax.plot(xs, ys, marker="o", color=color, label=label)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("batch size")
    ax.set_ylabel("samples/s (batch / p50)")
    ax.grid(alpha=0.3)
    if series:
        ax.legend(fontsize="small")
    return to_svg(fig)


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def rounds_svg(rounds: Sequence[dict[str, Any]], centralized: float | None) -> str:
    """Global val.accuracy per federated round, with central training's accuracy as a line."""
    from matplotlib.ticker import MaxNLocator

    fig = _figure(6.0, 3.0)
    ax = fig.subplots()
    points = [(r["round"], r["val.accuracy"]) for r in rounds if _finite(r.get("val.accuracy"))]
    if points:
        xs, ys = zip(*points, strict=True)
        ax.plot(xs, ys, marker="o", markersize=3, color=_COLORS[0], label="federated (global model)")
    if centralized is not None:
        ax.axhline(centralized, color=_COLORS[1], linestyle="--", label="centralized")
    ax.set_xlabel("round")
    ax.set_ylabel("val accuracy")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize="small")
    return to_svg(fig)


def partition_svg(partitions: dict[str, Any]) -> str:
    """Samples per client, stacked by class: the partition sizes and their label skew."""
    clients = partitions.get("clients", [])
    labels = partitions.get("labels", [])
    fig = _figure(max(4.0, 0.45 * len(clients) + 2.0), 3.0)
    ax = fig.subplots()
    bottom = [0] * len(clients)
    cmap = __import__("matplotlib").colormaps["tab10" if len(labels) <= 10 else "tab20"]
    for k, label in enumerate(labels):
        heights = [c["label_counts"][k] for c in clients]
        ax.bar(range(len(clients)), heights, bottom=bottom, color=cmap(k % cmap.N), label=str(label))
        bottom = [b + h for b, h in zip(bottom, heights, strict=True)]
    ax.set_xticks(range(len(clients)), [str(i) for i in range(len(clients))])
    ax.set_xlabel("client")
    ax.set_ylabel("samples")
    if labels and len(labels) <= 20:
        ax.legend(
            fontsize="x-small",
            ncols=2,
            title="class",
            title_fontsize="x-small",
            loc="upper left",
            bbox_to_anchor=(1.0, 1.0),
        )
    return to_svg(fig)
