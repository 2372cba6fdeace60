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
    """The main job on the bundled digits: train, export, prune, bench, report, and how to serve it.

    Trains the cnn on scikit-learn's digits, exports it to ONNX and TorchScript (verified against
    eager), prunes a quarter of its channels with a short fine-tune, benches both models, writes
    report.html and prints the serve command with a curl line. Everything goes under OUT.
    """
    from torchship.quickstart import run_quickstart

    result = run_quickstart(out_dir, epochs, console=err)
    out.print(metrics_table(result.artifact.manifest.metrics, title=result.artifact.manifest.name))
    if result.bench:
        from torchship.bench import results_table
        from torchship.cli.bench import print_unsqueezed

        print_unsqueezed(results_table(result.bench, title="torchship bench (samples/s = batch / p50)"))
    for step in result.steps:
        out.print(f"- {step}", highlight=False, soft_wrap=True)
    out.print(f"summary: {result.out / 'summary.md'}", highlight=False)
    out.print("serve it:", highlight=False)
    out.print(f"  {result.serve_command}", highlight=False, soft_wrap=True)
    out.print(f"  {result.curl_command}", highlight=False, soft_wrap=True)
