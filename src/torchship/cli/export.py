"""``torchship export``: add verified exports (ONNX, TorchScript, torch.export, AOTInductor, Triton)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from torchship.cli._common import AllowImport, KeyFile, out, progress_lines, use_key_file
from torchship.cli.main import app

EXAMPLE = (
    "Example: torchship export runs/digits-cnn/artifact --format onnx,torchscript,exported,triton "
    "-o runs/digits-cnn/exported"
)


@app.command(epilog=EXAMPLE)
def export(
    artifact: Annotated[Path, typer.Argument(help="Artifact directory.")],
    formats: Annotated[
        str,
        typer.Option("--format", "-f", help="Comma-separated: onnx, torchscript, exported, aoti, triton."),
    ] = "onnx",
    out_dir: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="Run directory: writes OUT/artifact; default: ARTIFACT."),
    ] = None,
    tolerance: Annotated[
        float | None, typer.Option(help="Largest max |Δ| vs eager accepted (default 1e-4).")
    ] = None,
    data: Annotated[
        str | None,
        typer.Option(
            help="Parity inputs: dataset NAME[:PATH] (val split), a .npy file, or 'random'; "
            "default: the artifact's own dataset, else random."
        ),
    ] = None,
    samples: Annotated[
        int, typer.Option(help="Verify on a seeded sample of at most this many inputs.")
    ] = 256,
    slim: Annotated[
        bool, typer.Option("--slim/--no-slim", help="Simplify the ONNX graph with onnxslim.")
    ] = True,
    opset: Annotated[int, typer.Option(help="ONNX opset (18 or newer).")] = 18,
    max_batch_size: Annotated[int, typer.Option(help="max_batch_size in the Triton config.")] = 64,
    device: Annotated[str, typer.Option(help="cpu or cuda[:N].")] = "cpu",
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the exports' manifest records as JSON.")
    ] = False,
    allow_import: AllowImport = None,
    key_file: KeyFile = None,
) -> None:
    """Export ARTIFACT, verify every export against eager PyTorch, and record parity in the manifest.

    Nothing is written unless every format passes: max |Δ| within the tolerance on the
    validation split (or seeded random inputs when the artifact names no dataset).
    """
    from torchship.artifact import Artifact
    from torchship.export import export as run_export
    from torchship.export import resolve_formats

    use_key_file(key_file)
    art = Artifact.load(artifact)
    names = resolve_formats(formats)
    title = f"exporting {art.manifest.name} to {', '.join(names)} (verifying each against eager)"
    with progress_lines(title) as step:
        result = run_export(
            art,
            names,
            out_dir,
            tolerance=tolerance,
            data=data,
            slim=slim,
            opset=opset,
            max_batch_size=max_batch_size,
            max_samples=samples,
            device=device,
            allow_import=allow_import or [],
            progress=step,
        )
    records = {name: result.manifest.exports[name] for name in names}
    if as_json:
        print(json.dumps({"artifact": str(result.path), "exports": records}, indent=2))
        return
    out.print(
        exports_table(f"{result.manifest.name}: exports verified against eager ({result.path})", records)
    )
    for name, info in records.items():
        if len(info.get("outputs", {})) > 1:  # a model with several outputs: parity of each
            per = ", ".join(f"{k} {v['max_abs_diff']:.3g}" for k, v in info["outputs"].items())
            out.print(f"{name} max |Δ| per output: {per}", highlight=False)
    source = next((r["samples_source"] for r in records.values() if "samples_source" in r), None)
    if source:
        out.print(f"parity inputs: {source}")
    if "triton" in records:
        triton = records["triton"]
        repo = result.path / triton["repository"]
        out.print(f"Triton/KServe: tritonserver --model-repository {repo}")
        out.print(
            f"Triton takes inputs already preprocessed: {repo / triton['model_name'] / 'README.md'} "
            "gives the normalization",
            highlight=False,
        )


def exports_table(title: str, records: dict[str, dict[str, Any]]) -> Table:
    """One row per export: its file and its parity with eager PyTorch."""
    table = Table(title=title)
    # fold, never cut: in an 80-column log rich would cut the last column to "…"
    for column in ("format", "file", "max |Δ|", "mean |Δ|", "top-1 agreement", "samples", "tolerance"):
        table.add_column(column, justify="left" if column in ("format", "file") else "right", overflow="fold")
    for name, info in records.items():
        table.add_row(
            name,
            str(info.get("file", "")),
            _fmt(info.get("max_abs_diff"), ".3g"),
            _fmt(info.get("mean_abs_diff"), ".3g"),
            _fmt(info.get("top1_agreement"), ".2%"),
            str(info.get("samples", "")),
            _fmt(info.get("tolerance"), ".0e"),
        )
    return table


def _fmt(value: object, spec: str) -> str:
    """A figure, or a dash where a format has none (no top-1 agreement for a regression)."""
    return format(value, spec) if isinstance(value, (int, float)) else "–"
