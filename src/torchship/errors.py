"""The errors torchship raises for things a user can fix.

Every message is one line: what went wrong, then what to do about it. The CLI prints
``str(err)`` to stderr and exits with status 2; a traceback appears only with ``--debug``.
"""

from __future__ import annotations


class TorchshipError(Exception):
    """Base class: a problem the user can act on, described in one line."""

    def __init__(self, what: str, fix: str | None = None):
        self.what = what
        self.fix = fix
        message = f"{what}; {fix}" if fix else what
        super().__init__(" ".join(message.split("\n")))


class ConfigError(TorchshipError):
    """A configuration file or ``--set`` override is wrong."""


class DataError(TorchshipError):
    """A dataset is missing, malformed, or does not fit the model."""


class ArtifactError(TorchshipError):
    """An artifact is missing, corrupt, tampered with, or of an unknown schema."""


class ModelError(TorchshipError):
    """A model cannot be built or does not accept the data."""


class TrainingError(TorchshipError):
    """Training cannot go on (a non-finite loss, an unusable checkpoint)."""


class DependencyError(TorchshipError):
    """An optional dependency is missing."""


def require(module: str, extra: str):
    """Import an optional dependency or say which extra installs it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise DependencyError(
            f"{module} is not installed ({exc})", fix=f"pip install 'torchship[{extra}]'"
        ) from exc


class OutputError(TorchshipError):
    """An output cannot be written (disk full, read-only, not a directory, no permission)."""
