"""``torchship quickstart``: the main job on the embedded dataset, no downloads."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from torchship.cli._common import err, metrics_table, out
from torchship.cli.main import app


@app.command(epilog="Example: torchship quickstart --out /tmp/qs --epochs 5")
def quickstart(
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="Where everything is written.")] = Path(
        "torchship-quickstart"
    ),
    epochs: Annotated[int | None, typer.Option(help="Training epochs (default 15).")] = None,
) -> None:
    """Train the cnn on scikit-learn's digits and write the artifact, logs and a summary under OUT."""
    from torchship.quickstart import run_quickstart

    result = run_quickstart(out_dir, epochs, console=err)
    out.print(metrics_table(result.artifact.manifest.metrics, title=result.artifact.manifest.name))
    for step in result.steps:
        out.print(f"- {step}")
    out.print(f"summary: {result.out / 'summary.md'}")
