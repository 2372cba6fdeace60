"""The ``torchship`` command: parse -> call -> print; no logic beyond that.

Every command lives in its own module under ``torchship.cli`` and registers itself on
``app``. ``main`` turns a ``TorchshipError`` or a usage error (unknown option or command,
bad value, missing argument) into one line on stderr and exit status 2; ``--debug``
(anywhere on the line) shows the traceback instead.
"""

from __future__ import annotations

import errno
import importlib
import os
import re
import sys
from typing import Annotated

import typer

from torchship.errors import TorchshipError

# typer 0.20 raises click's exceptions; later typers vendor click as ``typer._click`` and raise
# those. Take the classes from wherever typer's own BadParameter lives, so the package never
# imports click (not a dependency of ours) and works with both.
_click_exceptions = importlib.import_module(typer.BadParameter.__module__)
UsageError = _click_exceptions.UsageError
_NoArgsIsHelp = getattr(_click_exceptions, "NoArgsIsHelpError", ())

# errors that only writing meets: a full, over-quota or read-only disk, a file where a directory should be
_WRITE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.ENOTDIR, errno.EEXIST}

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
COMMAND_MODULES = (
    "train",
    "artifact",
    "evaluate",
    "quickstart",
    "compress",
    "monitor",
    "protect",
    "tune",
    "import_",
)
_optional = ("export", "bench", "serve", "report", "deploy", "federate")


def _print_version(value: bool) -> None:
    if value:
        from torchship import __version__

        print(f"torchship {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_print_version, is_eager=True, help="Print the version and exit."),
    ] = False,
) -> None:
    """Carry a PyTorch model from training to a production endpoint."""


def _register() -> None:
    for name in COMMAND_MODULES:
        importlib.import_module(f"torchship.cli.{name}")
    for name in _optional:
        try:
            importlib.import_module(f"torchship.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"torchship.cli.{name}":
                raise


def usage_error_line(exc: Exception) -> str:
    """One line for a usage error: what was wrong, the did-you-mean if any, where the help is."""
    if hasattr(exc, "possibilities"):
        # an unknown option or command: each click words format_message() differently, and typer
        # adds its own suggestion to an unknown command's message, so build the line from the parts
        message = exc.message.rstrip(".")
        if exc.possibilities and "Did you mean" not in message:
            message += ". Did you mean " + " or ".join(repr(p) for p in sorted(exc.possibilities)) + "?"
    else:
        message = exc.format_message()
    message = " ".join(message.split())
    ctx = getattr(exc, "ctx", None)
    # later typers name a group's argument {artifact} in the path; write it as usage does, ARTIFACT
    path = ctx.command_path if ctx is not None else "torchship"
    where = "'" + re.sub(r"\{(\w+)\}", lambda m: m.group(1).upper(), path) + " --help'"
    if message.endswith("?"):
        return f"error: {message} See {where}."
    return f"error: {message.rstrip('.')}; see {where}"


def missing_extra(exc: ModuleNotFoundError) -> str | None:
    """The torchship extra that installs the module ``exc`` names, read from our package metadata."""
    from importlib import metadata

    module = (exc.name or "").split(".")[0].lower()
    try:
        requirements = metadata.requires("torchship") or []
    except metadata.PackageNotFoundError:  # running from a source tree that was never installed
        return None
    for requirement in requirements:
        found = re.match(r"([A-Za-z0-9_.-]+).*extra == \"(\w+)\"", requirement)
        if found and found.group(1).lower().replace("-", "_") == module:
            return found.group(2)
    return None


def error_line(exc: Exception) -> str | None:
    """The one line to print for an error the user can fix, or None for a bug (shown as a traceback)."""
    if isinstance(exc, TorchshipError):
        return f"error: {exc}"
    if isinstance(exc, UsageError):
        return usage_error_line(exc)
    if isinstance(exc, _click_exceptions.ClickException):  # e.g. a file typer could not open
        return f"error: {' '.join(exc.format_message().split())}"
    if isinstance(exc, OSError) and exc.errno in _WRITE_ERRNOS:  # a writer without its own OutputError
        from torchship.output import output_error

        return f"error: {output_error(exc)}"
    if isinstance(exc, ModuleNotFoundError) and (extra := missing_extra(exc)) is not None:
        return f"error: {exc.name} is not installed; pip install 'torchship[{extra}]'"
    return None


def main(argv: list[str] | None = None) -> None:
    """Entry point of the console script and ``python -m torchship``."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args or os.environ.get("TORCHSHIP_DEBUG") == "1"
    args = [a for a in args if a != "--debug"]
    _register()
    try:
        result = app(args=args, prog_name="torchship", standalone_mode=False)
    except _NoArgsIsHelp as exc:  # a bare group: its help, as click prints it
        exc.show()
        sys.exit(exc.exit_code)
    except typer.Abort:
        print("aborted", file=sys.stderr)
        sys.exit(130)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    except Exception as exc:
        line = None if debug else error_line(exc)
        if line is None:
            raise
        print(line, file=sys.stderr)
        sys.exit(2)
    if isinstance(result, int) and result:
        sys.exit(result)
