"""What every compression method shares: its error, the method registry, fine-tuning settings.

A method is one config model plus one function ``method(artifact, cfg, *, out) -> Artifact``,
registered by name; :func:`run` picks one by name and validates its config, reporting every
problem at once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    Field,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
)

from torchship.artifact import RUN_ARTIFACT, Artifact
from torchship.config import Strict, validate_config
from torchship.errors import TorchshipError
from torchship.registry import Registry


class CompressError(TorchshipError):
    """A compression method cannot run on this artifact or with these settings."""


class Finetune(Strict):
    """Training settings for the fine-tuning a method runs through the training engine."""

    epochs: NonNegativeInt = 0
    lr: PositiveFloat = 1e-3
    optimizer: Literal["sgd", "adam", "adamw", "adagrad", "rmsprop"] = "adamw"
    weight_decay: NonNegativeFloat = 0.0
    schedule: Literal["constant", "cosine"] = "cosine"
    batch_size: PositiveInt = 64
    seed: int = 0
    threads: PositiveInt | None = None
    work_dir: str | None = Field(
        default=None,
        description="keep checkpoints and logs here; default: a temporary directory, removed after",
    )


@dataclass(frozen=True)
class Method:
    """A registered compression method: its config model and the function that runs it."""

    config: type[Strict]
    run: Callable[..., Artifact]
    summary: str


methods: Registry[Method] = Registry("compression method", error=CompressError)


def register(name: str, config: type[Strict]) -> Callable[[Callable[..., Artifact]], Callable[..., Artifact]]:
    """Register ``fn(artifact, cfg, *, out, allow_import, console) -> Artifact`` under ``name``."""

    def decorate(fn: Callable[..., Artifact]) -> Callable[..., Artifact]:
        summary = (fn.__doc__ or name).strip().splitlines()[0]
        methods.register(name)(Method(config, fn, summary))
        return fn

    return decorate


def parse_config(method: str, config: Strict | dict[str, Any] | None) -> Strict:
    """Validate a method's config (a dict from YAML/--set, or the model itself)."""
    entry = methods.get(method)
    if isinstance(config, entry.config):
        return config
    if config is not None and not isinstance(config, dict):
        raise CompressError(f"{method} takes a {entry.config.__name__}, not a {type(config).__name__}")
    return validate_config(entry.config, config or {}, where=f"{method} config")


def run(
    artifact: Artifact,
    method: str,
    config: Strict | dict[str, Any] | None = None,
    *,
    out: str | Path,
    allow_import: Iterable[str] = (),
    console: Any = None,
) -> Artifact:
    """Compress ``artifact`` with the named method and save the result to ``out``.

    Raises:
        CompressError: Unknown method, or the method cannot run on this artifact.
        ConfigError: The config has problems (all of them are listed).
    """
    cfg = parse_config(method, config)
    if artifact.manifest.architecture is None and method in NEEDS_MODULE:
        raise CompressError(
            f"{artifact.manifest.name} was imported as a program only "
            f"({', '.join(artifact.manifest.exports)}); "
            f"{method} changes the PyTorch module, which this artifact does not have",
            fix="import the model from its weights with --class pkg.mod:Class to prune, fuse or distill it; "
            "quantize --mode dynamic works on the program",
        )
    return methods.get(method).run(artifact, cfg, out=out, allow_import=allow_import, console=console)


# methods that rebuild or retrain the module's Python structure (quantize can work on a program)
NEEDS_MODULE = ("prune", "fuse", "distill")


def check_out(out: str | Path, *parents: Artifact) -> Path:
    """Where a method writes its artifact: ``OUT/artifact``, refused when it would overwrite a parent.

    ``out`` is a run directory, as for ``train -o``; anything else a method writes goes beside
    the artifact in it.
    """
    target = Path(out).expanduser().resolve() / RUN_ARTIFACT
    for parent in parents:
        if parent.path is None:
            continue
        home = Path(parent.path).resolve()
        if target == home or home in target.parents:
            raise CompressError(
                f"output {target} would be inside the parent artifact {parent.path}",
                fix="choose another -o directory; a parent artifact is never modified",
            )
    return target
