"""The federated-learning section: accuracy per round (against central training when the run
has it), who took part and who dropped, and how the clients' data was split."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from html import escape
from pathlib import Path
from typing import TYPE_CHECKING, Any

from torchship.report.markup import figure, num, table

if TYPE_CHECKING:
    from torchship.report.build import Report, Section


@dataclass
class FederatedDoc:
    """One ``torchship federate`` run directory, as read from its files."""

    path: Path
    rounds: list[dict[str, Any]]
    summary: dict[str, Any] = field(default_factory=dict)
    partitions: dict[str, Any] | None = None
    centralized_accuracy: float | None = None


def read_federated(path: Path) -> FederatedDoc:
    """Read rounds.jsonl, summary.json, partitions.json and centralized/summary.json if present."""

    def load(name: str) -> Any:
        file = path / name
        try:
            return json.loads(file.read_text()) if file.is_file() else None
        except ValueError:
            return None

    rounds = []
    for line in (path / "rounds.jsonl").read_text().splitlines():
        try:
            rounds.append(json.loads(line))
        except ValueError:
            continue
    central = load("centralized/summary.json")
    accuracy = (
        central.get("metrics", {}).get("val", {}).get("accuracy") if isinstance(central, dict) else None
    )
    return FederatedDoc(path, rounds, load("summary.json") or {}, load("partitions.json"), accuracy)


def federated_section(report: Report) -> Section | None:
    """The section for the federated runs among the sources; None (no section) without any."""
    from torchship.report import plots
    from torchship.report.build import Section

    parts = []
    for doc in report.federated:
        s = {k: escape(str(v)) for k, v in doc.summary.items() if k in ("strategy", "clients", "partition")}
        head = (
            f'<h3>{escape(doc.path.name)}</h3><p class="note">{s.get("strategy", "?")}, '
            f"{s.get('clients', '?')} clients, partition {s.get('partition', '?')}, "
            f"{len(doc.rounds)} round(s) from <code>{escape(str(doc.path / 'rounds.jsonl'))}</code>."
        )
        if doc.centralized_accuracy is not None:
            head += (
                " Central training on the same data and epoch budget: "
                f"val.accuracy {doc.centralized_accuracy:.4f}."
            )
        privacy = doc.summary.get("privacy")
        if privacy:
            eps = privacy.get("epsilon")
            spent = f"ε = {eps:.2f} at δ = {privacy.get('delta'):g}" if eps is not None else "ε not computed"
            head += (
                f" Differential privacy: clip {privacy.get('clip_norm')}, noise multiplier "
                f"{privacy.get('noise_multiplier')}, {escape(spent)}."
            )
        parts.append(head + "</p>")
        parts.append(figure(plots.rounds_svg(doc.rounds, doc.centralized_accuracy), "accuracy per round"))
        rows = [
            [
                str(r.get("round")),
                f"{len(r.get('participants', []))}/{r.get('clients_sampled', '?')}",
                escape(", ".join([*r.get("dropped", {}), *r.get("timed_out", [])]) or "–"),
                num(r.get("train.loss"), ".4f"),
                num(r.get("val.loss"), ".4f"),
                num(r.get("val.accuracy"), ".4f"),
                num(r.get("epsilon"), ".2f"),
            ]
            for r in doc.rounds
        ]
        parts.append(
            table(
                ["round", "clients", "dropped", "train.loss", "val.loss", "val.accuracy", "ε"],
                rows,
                left=(2,),
            )
        )
        if doc.partitions:
            p = doc.partitions
            parts.append(
                f'<p class="note">Partition {escape(str(p.get("partition")))} (seed {p.get("seed")}): '
                f"label skew {num(p.get('skew'), '.3f')} (mean total-variation distance of a client's "
                "labels from the whole; 0 is IID).</p>"
            )
            parts.append(figure(plots.partition_svg(p), "samples per client and class"))
    return Section("federated", "Federated rounds", "".join(parts)) if parts else None
