"""Build a model from an architecture record: zoo name, or an import path the user allowed."""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Iterable
from typing import Any

from torch import nn

from torchship.artifact.manifest import Architecture
from torchship.errors import ModelError
from torchship.models.composite import composites
from torchship.models.init import apply_init
from torchship.models.structure import apply_structure_, split_structure
from torchship.models.zoo import zoo


def build_model(
    architecture: Architecture | dict[str, Any],
    allow_import: Iterable[str] = (),
    init: str | None = None,
) -> nn.Module:
    """Instantiate the architecture; bring-your-own classes only if named in ``allow_import``.

    Raises:
        ModelError: unknown zoo name, a disallowed or failing import, bad kwargs.
    """
    arch = (
        architecture if isinstance(architecture, Architecture) else Architecture.model_validate(architecture)
    )
    if arch.name is not None:
        factory = composites.get(arch.name) if arch.name in composites else zoo.get(arch.name)
        what = arch.name
    else:
        factory = import_model_class(arch.import_path or "", allow_import)
        what = arch.import_path
    own, edits = split_structure(arch.kwargs)  # pruned shapes / fusions, replayed after building
    kwargs = _accepted(factory, own) if arch.import_path else own
    try:
        model = factory(**kwargs)
    except (TypeError, ValueError, RuntimeError) as exc:  # RuntimeError: e.g. a negative or huge size
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelError(f"cannot build {what} with {kwargs} ({first})", fix="fix model.kwargs") from None
    if not isinstance(model, nn.Module):
        raise ModelError(f"{what} did not return a torch.nn.Module (got {type(model).__name__})")
    apply_structure_(model, edits)
    if init:
        apply_init(model, init)
    return model


def import_model_class(path: str, allow_import: Iterable[str]) -> Any:
    """Import ``pkg.module:Class`` only when the user listed it explicitly."""
    allowed = set(allow_import)
    if path not in allowed:
        raise ModelError(
            f"the artifact's model is imported from {path!r}, which was not allowed",
            fix=f"pass --allow-import {path} (Python API: allow_import=[{path!r}]) if you trust that code",
        )
    module_name, sep, attr = path.partition(":")
    if not sep or not module_name or not attr:
        raise ModelError(f"model import path {path!r} is not of the form pkg.module:Class")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ModelError(
            f"cannot import {module_name} ({exc})", fix="install the package or add its folder to PYTHONPATH"
        ) from None
    try:
        return getattr(module, attr)
    except AttributeError:
        raise ModelError(f"{module_name} has no attribute {attr!r}") from None


def _accepted(factory: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
    """Drop the data-derived kwargs (in_channels, input_size, ...) a user class does not take."""
    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        return kwargs
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return kwargs
    derived = {"in_channels", "num_classes", "input_size"}
    return {k: v for k, v in kwargs.items() if k in params or k not in derived}
