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
        str | None,
        typer.Option(
            help="Runtime to evaluate through (eager, onnxruntime, ...; default eager, auto for --inputs)."
        ),
    ] = None,
    inputs: Annotated[
        Path | None,
        typer.Option(
            help="Named inputs and targets (.npz/.json): one array per input, plus 'labels' (a classifier) "
            "or one array per output (MSE/MAE)."
        ),
    ] = None,
    json_out: Annotated[
        Path | None, typer.Option("--json", help="Write metrics + confusion matrix here.")
    ] = None,
    allow_import: AllowImport = None,
    key_file: KeyFile = None,
) -> None:
    """Measure accuracy, macro-F1, AUROC and loss, and print the confusion matrix (MSE/MAE per output
    for a model that is not a classifier, with --inputs)."""
    from torchship.artifact import Artifact
    from torchship.evaluate import evaluate as run_evaluation
    from torchship.evaluate.named import OutputEvaluation, evaluate_inputs

    use_key_file(key_file)
    art = Artifact.load(artifact)
    if inputs is not None:
        runtime = runtime or "auto"
        with progress_lines(f"evaluating {art.manifest.name} on {inputs} ({runtime})", in_log=False):
            result = evaluate_inputs(art, inputs, runtime, allow_import or [])
        if isinstance(result, OutputEvaluation):
            _print_outputs(art.manifest.name, result)
            if json_out is not None:
                write_atomic(json_out, json.dumps(result.to_json(), indent=2) + "\n")
                out.print(f"wrote {json_out}")
            return
    else:
        runtime = runtime or "eager"
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


def _print_outputs(name: str, result) -> None:
    table = Table(title=f"{name} ({result.samples} samples from {result.source}, {result.runtime})")
    for column in ("output", "MSE", "MAE"):
        table.add_column(column, justify="left" if column == "output" else "right")
    for output, figures in result.metrics.items():
        table.add_row(output, f"{figures['mse']:.6g}", f"{figures['mae']:.6g}")
    for output, why in result.skipped.items():
        table.add_row(output, "-", "-")
        out.print(f"output {output} skipped: {why}", soft_wrap=True)
    out.print(table)


@app.command(
    epilog="Example: torchship predict runs/digits-cnn/artifact seven.png three.npy --top-k 3\n\n"
    "Named inputs: torchship predict runs/bert/artifact --inputs batch.npz --json"
)
def predict(
    artifact: Annotated[Path, typer.Argument(help="Artifact directory.")],
    files: Annotated[
        list[Path] | None, typer.Argument(help="Images (PNG/JPEG/BMP) or .npy arrays.", show_default=False)
    ] = None,
    inputs: Annotated[
        Path | None, typer.Option(help="Named inputs (.npz/.json, one array per input, batch first).")
    ] = None,
    top_k: Annotated[int, typer.Option(help="How many labels to show per file.")] = 3,
    runtime: Annotated[
        str | None, typer.Option(help="Runtime (eager, onnxruntime, ...; default eager, auto for --inputs).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    allow_import: AllowImport = None,
    key_file: KeyFile = None,
) -> None:
    """Top-k labels with probabilities; preprocessing (size, channels, normalization) is the manifest's.

    A model with named inputs reads them from --inputs and answers per row (its outputs, or
    top-k labels for a classifier)."""
    from torchship.artifact import Artifact
    from torchship.errors import DataError
    from torchship.evaluate import predict_files
    from torchship.evaluate.named import predict_inputs, what_to_send
    from torchship.runtime.base import legacy_shape

    use_key_file(key_file)
    art = Artifact.load(artifact)
    if inputs is not None:
        if files:
            raise DataError(
                "pass files or --inputs, not both", fix="files feed a one-input model; --inputs named inputs"
            )
        _print_rows(art, predict_inputs(art, inputs, top_k, runtime or "auto", allow_import or []), as_json)
        return
    if not files:
        raise DataError(
            f"nothing to predict for {art.manifest.name}", fix="pass image/.npy files, or --inputs FILE.npz"
        )
    if legacy_shape(art) is None or not art.manifest.answers_classes:
        what = "takes named inputs" if legacy_shape(art) is None else f"is a {art.manifest.task} model"
        raise DataError(
            f"{art.manifest.name} {what}: files give top-k labels of a one-input classifier",
            fix=what_to_send(art, targets=False),
        )
    # a program-only artifact has no class to run eagerly
    runtime = runtime or ("eager" if art.manifest.architecture is not None else "auto")
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


def _print_rows(art, rows: list[dict], as_json: bool) -> None:
    """Per row: top-k labels (a classifier) or every output's values."""
    for row in rows:
        if "top" in row:
            row["top"] = [{"label": label, "probability": p} for label, p in row["top"]]
    if as_json:
        print(json.dumps(rows, allow_nan=False))
        return
    table = Table()
    table.add_column("row", justify="right")
    classifier = bool(rows) and "top" in rows[0]
    names = [] if classifier or not rows else list(rows[0]["outputs"])
    for i in range(len(rows[0]["top"]) if classifier else 0):
        table.add_column(f"#{i + 1}")
    for name in names:
        table.add_column(name)
    for row in rows:
        if classifier:
            table.add_row(str(row["row"]), *[f"{t['label']} ({t['probability']:.1%})" for t in row["top"]])
        else:
            table.add_row(str(row["row"]), *[_short(row["outputs"][n]) for n in names])
    out.print(table)


def _short(value) -> str:
    """An output's values for a table cell: a number, or the first few of a list."""
    import numpy as np

    flat = np.asarray(value, dtype=np.float64).ravel()
    text = ", ".join(f"{v:.4g}" for v in flat[:4])
    return text if flat.size <= 4 else f"[{text}, … ({flat.size} values)]"
