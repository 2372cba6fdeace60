"""Writing output files all or nothing: a full or read-only disk is one line, and leaves no temp file.

Every file torchship writes goes to a temporary name beside its target and replaces the target only
once complete, so a reader never sees half a file, and a failure removes the temporary file.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from torchship.errors import OutputError


def output_error(exc: OSError, target: str | os.PathLike[str] | None = None) -> OutputError:
    """The one-line error for an OSError met while writing ``target``."""
    where = exc.filename or target
    reason = exc.strerror or str(exc)
    return OutputError(
        f"cannot write {where}: {reason}",
        fix="free some space, or write to a directory that is writable (-o)",
    )


def make_dirs(path: str | os.PathLike[str]) -> Path:
    """``mkdir -p`` with a one-line error (a read-only disk, a file where a directory should be)."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise output_error(exc, path) from None
    return path


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; once the block is done it replaces ``target``.

    Raises:
        OutputError: The file could not be written; the temporary file is gone.
    """
    target = Path(target)
    tmp = target.with_name(target.name + ".tmp")
    try:
        yield tmp
        os.replace(tmp, target)
    except OSError as exc:
        raise output_error(exc, target) from None
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)


def write_atomic(target: str | os.PathLike[str], content: str | bytes) -> Path:
    """Write ``content`` to ``target`` all or nothing (text as UTF-8)."""
    with atomic_path(target) as tmp:
        tmp.write_bytes(content.encode() if isinstance(content, str) else content)
    return Path(target)
