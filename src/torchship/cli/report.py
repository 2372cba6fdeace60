"""``torchship report``: one self-contained HTML page over runs, artifacts, bench and optimize results."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from torchship.cli._common import err, out
from torchship.cli.main import app

EXAMPLE = (
    "Example: torchship report runs/digits-cnn runs/digits-cnn-pruned --bench bench.json "
    "--optimize runs/opt -o report.html"
)


@app.command(epilog=EXAMPLE)
def report(
    paths: Annotated[
        list[Path],
        typer.Argument(
            help="Run directories (log.jsonl), artifact directories (manifest.json), bench/optimize JSON, "
            "or directories holding them."
        ),
    ],
    output: Annotated[Path, typer.Option("--output", "-o", help="The HTML file to write.")] = Path(
        "report.html"
    ),
    bench: Annotated[
        list[Path] | None, typer.Option(help="A torchship bench --json file (repeatable).")
    ] = None,
    optimize: Annotated[
        list[Path] | None, typer.Option(help="An optimize OUTDIR or its optimize.json (repeatable).")
    ] = None,
    data: Annotated[
        str | None,
        typer.Option(
            help="Dataset NAME[:PATH] for confusion matrices an artifact does not store; default: its own."
        ),
    ] = None,
    evaluate: Annotated[
        bool,
        typer.Option(
            help="Compute missing confusion matrices on the val split (shown in the page, never stored)."
        ),
    ] = True,
    title: Annotated[str | None, typer.Option(help="Page title; default: the first artifact's name.")] = None,
) -> None:
    """Write one self-contained HTML page over runs, artifacts, bench and optimize results.

    Sections: training curves, confusion matrix and per-class metrics, lineage, optimize
    candidates with the Pareto front, bench tables and export parity.

    The page has no external links (figures are inline SVG), so it can be mailed or archived
    as one file. A section whose inputs are missing says what to add instead of disappearing.
    """
    from rich.table import Table

    from torchship.report import write_report

    result = write_report(
        paths,
        output,
        bench=bench or [],
        optimize=optimize or [],
        data=data,
        evaluate=evaluate,
        title=title,
        progress=lambda message: err.print(f"  {message}", highlight=False),
    )
    table = Table(title="torchship report")
    table.add_column("section")
    table.add_column("missing")
    for section in result.sections:
        table.add_row(section.title, "\n".join(section.missing) if section.missing else "–")
    out.print(table)
    out.print(f"wrote {result.path} ({result.size_bytes / 1024:.0f} KiB)", highlight=False)
