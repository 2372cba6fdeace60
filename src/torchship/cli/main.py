"""The ``torchship`` command: parse -> call -> print; no logic beyond that.

Every command lives in its own module under ``torchship.cli`` and registers itself on
``app``. ``main`` turns a ``TorchshipError`` into one line on stderr and exit status 2;
``--debug`` (anywhere on the line) shows the traceback instead.
"""

from __future__ import annotations

import importlib
import os
import sys

import click
import typer

from torchship.errors import TorchshipError

app = typer.Typer(
    name="torchship",
    help="Carry a PyTorch model from training to a production endpoint.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",  # reflow docstring paragraphs to the terminal width
    context_settings={"help_option_names": ["-h", "--help"]},
)

# One module per command (group); each does `@app.command()` on import.
COMMAND_MODULES = ("train", "artifact", "evaluate", "quickstart", "compress", "monitor", "import_")
_optional = ("export", "bench", "serve", "report")


def _register() -> None:
    for name in COMMAND_MODULES:
        importlib.import_module(f"torchship.cli.{name}")
    for name in _optional:
        try:
            importlib.import_module(f"torchship.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"torchship.cli.{name}":
                raise


def main(argv: list[str] | None = None) -> None:
    """Entry point of the console script and ``python -m torchship``."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args or os.environ.get("TORCHSHIP_DEBUG") == "1"
    args = [a for a in args if a != "--debug"]
    _register()
    try:
        result = app(args=args, prog_name="torchship", standalone_mode=False)
    except TorchshipError as exc:
        if debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    except click.exceptions.Abort:
        print("aborted", file=sys.stderr)
        sys.exit(130)
    except click.exceptions.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    if isinstance(result, int) and result:
        sys.exit(result)
