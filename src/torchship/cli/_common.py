"""Small pieces every command shares: the consoles and option types."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

out = Console()  # results for people (stdout)
err = Console(stderr=True)  # progress and notes (stderr)

AllowImport = Annotated[
    list[str] | None,
    typer.Option(
        "--allow-import", help="Trust and import this bring-your-own model class (pkg.module:Class)."
    ),
]


@contextmanager
def progress_lines(first: str, *, in_log: bool = True) -> Iterator[Callable[[str], None]]:
    """Show a long step on stderr: a spinner on a terminal (gone when done), short lines in a log.

    ``in_log=False`` keeps a log silent, for a step whose bad input is only found inside it: the
    log then holds the one-line error alone. Yields the function that reports the next step.
    """
    if err.is_terminal:
        with err.status(first) as status:
            yield status.update
    elif in_log:
        err.print(first, highlight=False)
        yield lambda message: err.print(f"  {message}", highlight=False)
    else:
        yield lambda message: None


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


KeyFile = Annotated[
    Path | None,
    typer.Option(
        "--key-file",
        help="Key of an encrypted artifact (also TORCHSHIP_KEY_FILE, TORCHSHIP_KEY, TORCHSHIP_KEY_COMMAND).",
        show_default=False,
    ),
]


def use_key_file(key_file: Path | None) -> None:
    """Make ``--key-file`` the key every artifact load in this process (and its children) uses."""
    if key_file is not None:
        from torchship.artifact.encryption import use_key_file as use

        use(key_file)
