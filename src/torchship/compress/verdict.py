"""The verdict of an ``optimize`` run: each candidate judged against the fp32 baseline, the
Pareto front, the pick, and the document (``optimize.json``) with its Markdown table.

Judged by accuracy, a candidate's loss is its accuracy drop on the validation split. Judged
by agreement (a model without labelled data), it is a classifier's top-1 disagreement with
fp32, or any other model's largest max |Δ| relative to the output's largest fp32 value.
"""

from __future__ import annotations

import datetime as _dt
import os
import platform
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from torchship.artifact import Artifact
    from torchship.compress.optimize import OptimizeConfig

SCHEMA = 1
_EPS = 1e-9


def judge_(candidate: dict[str, Any], baseline: dict[str, Any], cfg: OptimizeConfig) -> None:
    """Set accuracy_drop, speedup, faster and within_budget of a measured candidate against the baseline.

    Judged by agreement, ``accuracy_drop`` is the top-1 disagreement of a classifier, and
    no accuracy drop (None) otherwise: there ``max_rel_diff`` is held to ``max_relative_diff``.
    """
    if candidate["status"] != "ok":
        return
    agreement = candidate.get("agreement")
    if agreement is None:
        candidate["accuracy_drop"] = baseline["accuracy"] - candidate["accuracy"]
        within = candidate["accuracy_drop"] <= cfg.max_accuracy_drop + _EPS
    elif "top1_agreement" in agreement:
        candidate["accuracy_drop"] = 1.0 - agreement["top1_agreement"]
        within = candidate["accuracy_drop"] <= cfg.max_accuracy_drop + _EPS
    else:
        candidate["accuracy_drop"] = None
        within = agreement["max_rel_diff"] <= cfg.max_relative_diff + _EPS
    candidate["speedup"] = candidate["throughput_sps"] / baseline["throughput_sps"]
    candidate["faster"] = candidate["speedup"] >= cfg.min_speedup
    candidate["within_budget"] = within


def document(
    artifact: Artifact,
    cfg: OptimizeConfig,
    baseline: dict[str, Any],
    candidates: list[dict[str, Any]],
    judged_by: str = "accuracy",
) -> dict[str, Any]:
    for c in candidates:
        judge_(c, baseline, cfg)
    # the reference row, in the candidates' terms (readers such as the report need no special case)
    baseline.update(
        accuracy_drop=0.0 if "top1_agreement" in baseline.get("agreement", {"top1_agreement": 1}) else None,
        speedup=1.0,
        faster=False,
        within_budget=True,
    )
    rows = [baseline, *candidates]
    mark_pareto_(rows)
    eligible = [c for c in candidates if c["status"] == "ok" and c["faster"] and c["within_budget"]]
    key = {
        "latency": lambda c: c["latency_p50_ms"],
        "throughput": lambda c: -c["throughput_sps"],
        "size": lambda c: (c["size_bytes"], c["latency_p50_ms"]),
    }[cfg.objective]
    best = min(eligible, key=key) if eligible else None
    for c in rows:
        c["picked"] = c is best
    if best is not None:
        verdict = (
            f"picked {best['name']}: {best['speedup']:.2f}x the throughput of fp32 "
            f"{baseline['runtime']} at batch {cfg.batch_size}, {_loss(best)}"
        )
    else:
        verdict = (
            f"no candidate is both faster than fp32 {baseline['runtime']} at batch {cfg.batch_size} "
            f"and within the {_budget(baseline, cfg)}"
        )
    now = _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0)
    return {
        "kind": "torchship.optimize",
        "schema": SCHEMA,
        "created": now.isoformat().replace("+00:00", "Z"),
        "artifact": str(artifact.path) if artifact.path else None,
        "parent": artifact.digest,
        "name": artifact.manifest.name,
        "settings": cfg.model_dump(mode="json"),
        "judged_by": judged_by,
        "judgement": _judgement(judged_by, baseline),
        "machine": {
            "cpu": platform.processor() or platform.machine(),
            "cores": os.cpu_count(),
            "platform": platform.platform(),
        },
        "baseline": baseline,
        "candidates": rows,
        "pareto": [c["name"] for c in rows if c.get("pareto")],
        "picked": best["name"] if best else None,
        "picked_artifact": best["artifact"] if best else None,
        "verdict": verdict,
    }


def _judgement(judged_by: str, baseline: dict[str, Any]) -> str:
    """One line saying what the accuracy columns mean."""
    if judged_by == "accuracy":
        return "accuracy on the validation split"
    agreement = baseline.get("agreement", {})
    what = "top-1 agreement and max |Δ|" if "top1_agreement" in agreement else "max |Δ| and max |Δ| relative"
    return (
        f"output agreement (no labelled data): {what} of every output against fp32 {baseline['runtime']} "
        f"on {agreement.get('samples', 0)} inputs generated from the signature"
    )


def _loss(row: dict[str, Any]) -> str:
    agreement = row.get("agreement")
    if agreement is None:
        return f"accuracy drop {row['accuracy_drop'] * 100:+.2f} pt"
    parts = [f"max |Δ| {agreement['max_abs_diff']:.3g} ({agreement['max_rel_diff']:.2%} relative)"]
    if "top1_agreement" in agreement:
        parts.insert(0, f"top-1 agreement {agreement['top1_agreement']:.2%}")
    return ", ".join(parts) + " vs fp32"


def _budget(baseline: dict[str, Any], cfg: OptimizeConfig) -> str:
    agreement = baseline.get("agreement")
    if agreement is None:
        return f"accuracy budget of {cfg.max_accuracy_drop * 100:.2f} pt"
    if "top1_agreement" in agreement:
        return f"budget of {cfg.max_accuracy_drop * 100:.2f} pt top-1 disagreement with fp32"
    return f"budget of {cfg.max_relative_diff:.2%} max relative |Δ| from fp32"


def quality(row: dict[str, Any]) -> float:
    """Higher is better: accuracy, else top-1 agreement with fp32, else minus the max relative |Δ|."""
    agreement = row.get("agreement")
    if agreement is None:
        return float(row["accuracy"])
    if "top1_agreement" in agreement:
        return float(agreement["top1_agreement"])
    return -float(agreement["max_rel_diff"])


def mark_pareto_(rows: list[dict[str, Any]]) -> None:
    """Set ``pareto`` on every measured row: no other row is at least as good (see :func:`quality`),
    as fast and as small."""
    measured = [r for r in rows if r.get("status") == "ok"]

    def dominates(a: dict[str, Any], b: dict[str, Any]) -> bool:
        # quality up, latency and size down: compare (quality, -latency, -size) element-wise
        left = (quality(a), -a["latency_p50_ms"], -a["size_bytes"])
        right = (quality(b), -b["latency_p50_ms"], -b["size_bytes"])
        return all(x >= y for x, y in zip(left, right, strict=True)) and left != right

    for r in rows:
        r["pareto"] = r in measured and not any(dominates(o, r) for o in measured if o is not r)


def to_markdown(document: dict[str, Any]) -> str:
    """The candidate table as Markdown, baseline first, with the verdict under it."""
    base, settings = document["baseline"], document["settings"]
    agreed = document.get("judged_by") == "agreement"
    budget = (
        f"accuracy budget {settings['max_accuracy_drop'] * 100:.2f} pt"
        if not agreed
        else f"judged by {document['judgement']}; budget {settings['max_accuracy_drop'] * 100:.2f} pt "
        f"top-1 disagreement (classifiers), else {settings['max_relative_diff']:.2%} max relative |Δ|"
    )
    lines = [
        f"# optimize {document['name']}",
        "",
        f"objective **{settings['objective']}** at batch {settings['batch_size']}, "
        f"{budget}; baseline: fp32 {base['runtime']} ({base['latency_p50_ms']:.3f} ms p50)",
        "",
        f"| candidate | status | runtime | {'agreement | max Δ (rel)' if agreed else 'accuracy | drop (pt)'} "
        "| p50 ms | samples/s | size | speed-up | faster | in budget | Pareto | picked |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- | --- | --- |",
    ]
    for c in document["candidates"]:
        if c["status"] != "ok":
            lines.append(f"| {c['name']} | {c['status']}: {c['reason']} | | | | | | | | | | | |")
            continue
        speed = "1.00x" if c.get("baseline") else f"{c['speedup']:.2f}x"
        judged = ["", ""] if c.get("baseline") else [_yes(c["faster"]), _yes(c["within_budget"])]
        flags = [*judged, _yes(c["pareto"]), "★" if c["picked"] else ""]
        figures = [
            *quality_cells(c),
            f"{c['latency_p50_ms']:.3f}",
            f"{c['throughput_sps']:,.0f}",
            f"{c['size_bytes']:,}",
            speed,
            *flags,
        ]
        lines.append(f"| {c['name']} | ok | {c['runtime']} | " + " | ".join(figures) + " |")
    return "\n".join([*lines, "", document["verdict"], ""])


def quality_cells(row: dict[str, Any]) -> list[str]:
    """The two quality cells of a measured row: accuracy and drop, or top-1 agreement and max |Δ|."""
    agreement = row.get("agreement")
    if agreement is None:
        drop = "" if row.get("baseline") else f"{row['accuracy_drop'] * 100:+.2f}"
        return [f"{row['accuracy']:.4f}", drop]
    top1 = f"{agreement['top1_agreement']:.2%}" if "top1_agreement" in agreement else "–"
    return [top1, f"{agreement['max_abs_diff']:.3g} ({agreement['max_rel_diff']:.2%})"]


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"
