"""Small pieces every command shares: the consoles and option types."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

out = Console()  # results for people (stdout)
err = Console(stderr=True)  # progress and notes (stderr)

AllowImport = Annotated[
    list[str] | None,
    typer.Option("--allow-import", help="Trust and import this bring-your-own model class (pkg.module:Class)."),
]


def metrics_table(metrics: dict[str, dict[str, float]], title: str = "metrics"):
    from rich.table import Table

    names = sorted({k for values in metrics.values() for k in values})
    table = Table(title=title)
    table.add_column("split")
    for name in names:
        table.add_column(name, justify="right")
    for split, values in metrics.items():
        table.add_row(split, *[f"{values[n]:.4f}" if n in values else "" for n in names])
    return table
