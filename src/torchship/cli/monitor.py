"""``torchship monitor check``: score new data against an artifact's training reference."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from torchship.cli._common import AllowImport, KeyFile, out, use_key_file
from torchship.cli.main import app

monitor_app = typer.Typer(
    help="Drift monitoring: compare new data with the training reference.",
    no_args_is_help=True,
    rich_markup_mode="markdown",
)
app.add_typer(monitor_app, name="monitor")

_EXAMPLE = """Example:

  torchship monitor check runs/digits-cnn/artifact --data npz:new-week.npz --threshold 0.2 --json

Exit status: 0 no drift, 1 drift above a threshold, 2 an error (one line on stderr).
"""


@monitor_app.command(epilog=_EXAMPLE)
def check(
    artifact: Annotated[Path, typer.Argument(help="Artifact directory (its manifest holds the reference).")],
    data: Annotated[
        str | None, typer.Option(help="New data NAME[:PATH]; default: the data it was trained on.")
    ] = None,
    split: Annotated[str, typer.Option(help="Which part of the new data: all, train, val or test.")] = "all",
    threshold: Annotated[
        float | None, typer.Option(help="PSI above which inputs or predictions drifted.")
    ] = None,
    confidence_drop: Annotated[
        float | None, typer.Option(help="Drop of the mean top-1 probability that counts as drift.")
    ] = None,
    runtime: Annotated[
        str | None,
        typer.Option(
            help="Runtime to predict with (eager, onnxruntime, ...; default eager, auto for named inputs)."
        ),
    ] = None,
    inputs: Annotated[
        Path | None,
        typer.Option(help="For a model with named inputs: a .npz/.json of new inputs (one array per input)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the scores as JSON.")] = False,
    allow_import: AllowImport = None,
    key_file: KeyFile = None,
) -> None:
    """Compare NEW data's inputs and predictions with ARTIFACT's reference; exit 1 on drift."""
    from torchship.artifact import Artifact
    from torchship.monitor import DriftThresholds
    from torchship.monitor import check as run_check

    limits = {
        k: v
        for k, v in {
            "input_psi": threshold,
            "prediction_psi": threshold,
            "confidence_drop": confidence_drop,
        }.items()
        if v is not None
    }
    use_key_file(key_file)
    result = run_check(
        Artifact.load(artifact),
        data,
        split,
        runtime,
        DriftThresholds(**limits),
        allow_import or [],
        inputs=inputs,
    )
    if as_json:
        print(json.dumps(result.to_json(), indent=2))
    else:
        out.print(_table(result))
    if result.drifted:
        raise typer.Exit(1)


def _table(result) -> Table:
    s = result.scores
    t = s.thresholds
    out.print(f"{result.data} ({result.split}: {s.rows} samples) vs {result.artifact}'s training reference")
    table = Table()
    for column in ("score", "value", "threshold", ""):
        table.add_column(column, justify="right" if column in ("value", "threshold") else "left")

    def row(name: str, value: float | None, limit: float | None, drifted: bool) -> None:
        shown = "-" if value is None else f"{value:.4f}"
        verdict = "" if limit is None else "[red]DRIFT[/]" if drifted else "ok"
        table.add_row(name, shown, "" if limit is None else f"{limit:g}", verdict)

    for group, value in s.input_psi.items():
        row(f"input PSI {group}", value, t.input_psi, f"input_psi:{group}" in s.drift)
    for name, value in s.output_psi.items():
        row(f"output PSI {name}", value, t.prediction_psi, f"output_psi:{name}" in s.drift)
    if s.prediction_psi is not None:
        row("prediction PSI", s.prediction_psi, t.prediction_psi, "prediction_psi" in s.drift)
        row("confidence PSI", s.confidence_psi, None, False)
        row("mean confidence drop", s.confidence_drop, t.confidence_drop, "confidence_drop" in s.drift)
    for name, why in s.skipped_inputs.items():
        table.add_row(f"input {name}", "-", "", f"[dim]skipped: {why}[/]")
    return table


_BASELINE_EXAMPLE = """Example:

  torchship monitor baseline runs/reg/artifact --inputs sample.npz -o runs/reg-watched

Records the reference drift is scored against, for a model torchship did not train.
"""


@monitor_app.command(epilog=_BASELINE_EXAMPLE)
def baseline(
    artifact: Annotated[Path, typer.Argument(help="Artifact directory (read only).")],
    inputs: Annotated[
        Path, typer.Option(help="A sample of the model's inputs: .npz/.json, one array per named input.")
    ],
    out_dir: Annotated[
        Path, typer.Option("--out", "-o", help="Run directory: the artifact goes to OUT/artifact.")
    ],
    runtime: Annotated[str, typer.Option(help="Runtime that computes the sample's outputs.")] = "auto",
    allow_import: AllowImport = None,
) -> None:
    """Record ARTIFACT's drift reference from a sample of its inputs (per float input, and per output)."""
    from torchship.artifact import Artifact
    from torchship.compress.base import check_out
    from torchship.monitor.baseline import reference_from_feeds
    from torchship.runtime.feeds import read_feeds

    parent = Artifact.load(artifact)
    target = check_out(out_dir, parent)
    feeds = read_feeds(inputs, parent.manifest.signature)
    ref = reference_from_feeds(parent, feeds, runtime, allow_import or [])
    saved = parent.with_manifest(reference=ref).save(target)
    watched = ", ".join(ref["named_inputs"]) or "none"
    out.print(f"{parent.manifest.name}: reference of {ref['n']} samples -> {saved.path}", soft_wrap=True)
    out.print(f"inputs watched: {watched}", soft_wrap=True)
    for name, why in (ref.get("skipped_inputs") or {}).items():
        out.print(f"input {name} skipped: {why}", soft_wrap=True)
    if ref.get("named_outputs"):
        out.print(f"outputs watched (PSI of their values): {', '.join(ref['named_outputs'])}", soft_wrap=True)
    else:
        out.print("predictions watched: predicted-class shares and confidence", soft_wrap=True)
