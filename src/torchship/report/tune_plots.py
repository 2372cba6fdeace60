"""The tune section's figures: optimization history, parameter importances, Pareto front (inline SVG)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torchship.report.plots import _COLORS, _figure, _finite, to_svg

_STATE_MARKERS = {"COMPLETE": ("o", True), "PRUNED": ("v", False)}


def history_svg(rows: Sequence[dict[str, Any]], objectives: Sequence[dict[str, Any]]) -> str:
    """Each objective per trial (pruned ones hollow, at the value they stopped on) and the best so far."""
    fig = _figure(5.2 * len(objectives), 3.2)
    axes = fig.subplots(1, len(objectives), squeeze=False)[0]
    for ax, objective in zip(axes, objectives, strict=True):
        metric, maximize = objective["metric"], objective["direction"] == "maximize"
        for state, (marker, filled) in _STATE_MARKERS.items():
            points = [(r["number"], r["values"].get(metric)) for r in rows if r["state"] == state]
            points = [(n, v) for n, v in points if _finite(v)]
            if points:
                xs, ys = zip(*points, strict=True)
                ax.scatter(
                    xs,
                    ys,
                    marker=marker,
                    s=28,
                    label=state.lower(),
                    edgecolors=_COLORS[0],
                    facecolors=_COLORS[0] if filled else "none",
                )
        best, line = None, []
        for r in sorted(rows, key=lambda r: r["number"]):
            value = r["values"].get(metric)
            if r["state"] == "COMPLETE" and _finite(value):
                best = value if best is None else (max(best, value) if maximize else min(best, value))
            if best is not None:
                line.append((r["number"], best))
        if line:
            xs, ys = zip(*line, strict=True)
            ax.plot(xs, ys, color=_COLORS[1], drawstyle="steps-post", label="best so far")
        ax.set_title(f"{metric} ({'higher' if maximize else 'lower'} is better)")
        ax.set_xlabel("trial")
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize="small")
    return to_svg(fig)


def importances_svg(importances: dict[str, dict[str, float]]) -> str:
    """Optuna's parameter importances, one bar chart per objective, most important on top."""
    fig = _figure(5.2 * len(importances), 0.8 + 0.35 * max(len(v) for v in importances.values()))
    axes = fig.subplots(1, len(importances), squeeze=False)[0]
    for ax, (metric, scores) in zip(axes, importances.items(), strict=True):
        ordered = sorted(scores.items(), key=lambda kv: kv[1])
        ax.barh([k for k, _ in ordered], [v for _, v in ordered], color=_COLORS[0])
        ax.set_xlim(0, 1)
        ax.set_xlabel("importance (share)")
        ax.set_title(f"for {metric}")
        ax.grid(alpha=0.3, axis="x")
    return to_svg(fig)


def front_svg(
    rows: Sequence[dict[str, Any]], objectives: Sequence[dict[str, Any]], picked: int | None
) -> str:
    """The first two objectives against each other: the Pareto front filled and joined, the pick starred."""
    (a, b) = objectives[0]["metric"], objectives[1]["metric"]
    usable = [
        r
        for r in rows
        if r["state"] == "COMPLETE" and _finite(r["values"].get(a)) and _finite(r["values"].get(b))
    ]
    fig = _figure(6.5, 4.0)
    ax = fig.subplots()
    for r in usable:
        x, y = r["values"][b], r["values"][a]
        ax.scatter(x, y, s=50, edgecolors=_COLORS[0], facecolors=_COLORS[0] if r["best"] else "none")
        ax.annotate(str(r["number"]), (x, y), textcoords="offset points", xytext=(5, 3), fontsize=8)
        if r["number"] == picked:
            ax.scatter(x, y, s=220, marker="*", color=_COLORS[1], zorder=3, label=f"artifact: trial {picked}")
    front = sorted((r for r in usable if r["best"]), key=lambda r: r["values"][b])
    if len(front) > 1:
        ax.plot(
            [r["values"][b] for r in front],
            [r["values"][a] for r in front],
            color=_COLORS[0],
            alpha=0.5,
            drawstyle="steps-post",
            label="Pareto front",
        )
    ax.set_xlabel(b)
    ax.set_ylabel(a)
    ax.set_title(f"{a} vs {b} (filled: Pareto front)")
    ax.margins(0.1, 0.15)
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize="small")
    return to_svg(fig)
