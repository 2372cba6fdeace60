"""``torchship evaluate`` and ``torchship predict``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from torchship.cli._common import AllowImport, KeyFile, metrics_table, out, progress_lines, use_key_file
from torchship.cli.main import app
from torchship.output import write_atomic


@app.command(epilog="Example: torchship evaluate runs/digits-cnn/artifact --split val --json metrics.json")
def evaluate(
    artifact: Annotated[Path, typer.Argument(help="Artifact directory.")],
    data: Annotated[
        str | None, typer.Option(help="Dataset NAME[:PATH]; default: the one it was trained on.")
    ] = None,
    split: Annotated[str, typer.Option(help="train, val or test.")] = "val",
    runtime: Annotated[
        str, typer.Option(help="Runtime to evaluate through (eager, onnxruntime, ...).")
    ] = "eager",
    json_out: Annotated[
        Path | None, typer.Option("--json", help="Write metrics + confusion matrix here.")
    ] = None,
    allow_import: AllowImport = None,
    key_file: KeyFile = None,
) -> None:
    """Measure accuracy, macro-F1, AUROC and loss, and print the confusion matrix."""
    from torchship.artifact import Artifact
    from torchship.evaluate import evaluate as run_evaluation

    use_key_file(key_file)
    art = Artifact.load(artifact)
    title = f"evaluating {art.manifest.name} on {data or 'its dataset'} ({split} split, {runtime})"
    with progress_lines(title, in_log=False):
        result = run_evaluation(art, data, split, runtime, allow_import or [])
    out.print(
        metrics_table(
            {result.split: result.metrics}, title=f"{art.manifest.name} ({result.samples} samples, {runtime})"
        )
    )
    table = Table(title="confusion matrix (rows: true, columns: predicted)")
    table.add_column("")
    for label in result.labels:
        table.add_column(label, justify="right")
    for label, row in zip(result.labels, result.confusion, strict=False):
        table.add_row(label, *[str(v) if v else "." for v in row])
    out.print(table)
    if json_out is not None:
        write_atomic(json_out, json.dumps(result.to_json(), indent=2) + "\n")
        out.print(f"wrote {json_out}")


@app.command(epilog="Example: torchship predict runs/digits-cnn/artifact seven.png three.npy --top-k 3")
def predict(
    artifact: Annotated[Path, typer.Argument(help="Artifact directory.")],
    files: Annotated[list[Path], typer.Argument(help="Images (PNG/JPEG/BMP) or .npy arrays.")],
    top_k: Annotated[int, typer.Option(help="How many labels to show per file.")] = 3,
    runtime: Annotated[str, typer.Option(help="Runtime (eager, onnxruntime, ...).")] = "eager",
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    allow_import: AllowImport = None,
    key_file: KeyFile = None,
) -> None:
    """Top-k labels with probabilities; preprocessing (size, channels, normalization) is the manifest's."""
    from torchship.artifact import Artifact
    from torchship.evaluate import predict_files

    use_key_file(key_file)
    art = Artifact.load(artifact)
    results = predict_files(art, files, top_k, runtime, allow_import or [])
    if as_json:
        results_json = [
            {"file": r.file, "top": [{"label": label, "probability": p} for label, p in r.top]}
            for r in results
        ]
        print(json.dumps(results_json, allow_nan=False))  # strict JSON; predict_files refuses NaN
        return
    table = Table()
    table.add_column("file")
    for i in range(1, min(top_k, len(art.manifest.labels)) + 1):
        table.add_column(f"#{i}")
    for r in results:
        table.add_row(r.file, *[f"{label} ({p:.1%})" for label, p in r.top])
    out.print(table)
