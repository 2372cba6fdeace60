"""What every exporter shares: the errors, the context it works in, and the registry.

An exporter is one function, registered under its format name, that writes its files into
a staging directory and says how to run them; ``runs_in`` records on it which runtime serves
the format (the one place that fact lives: ``auto``, ``bench`` and ``optimize`` read it back
with :func:`format_runtimes`)::

    @exporters.register("onnx")
    @runs_in("onnxruntime", module="onnxruntime")
    def export_onnx(ctx: ExportContext) -> Staged: ...

The pipeline (``torchship.export.export``) verifies every ``Staged`` result against eager
PyTorch before anything is written into the artifact.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from torchship.artifact import Artifact
from torchship.errors import TorchshipError
from torchship.registry import Registry

# The order formats are produced in: triton packages the ONNX file, so it comes after onnx.
FORMAT_ORDER = ("onnx", "torchscript", "exported", "aoti", "triton")


class ExportError(TorchshipError):
    """A model cannot be exported to a format (an unsupported op, data-dependent control flow, ...)."""


class ExportParityError(ExportError):
    """An export's outputs differ from eager PyTorch by more than the tolerance."""


@dataclass
class ExportOptions:
    """Knobs every exporter may read.

    Attributes:
        opset: ONNX opset version (18 or newer).
        slim: Simplify the ONNX graph with onnxslim after export.
        max_batch_size: Largest batch the Triton configuration admits.
        device: Where the exporters trace and compile (``cpu`` or ``cuda``).
    """

    opset: int = 18
    slim: bool = True
    max_batch_size: int = 64
    device: str = "cpu"


@dataclass
class ExportContext:
    """The model being exported, an example batch, and what earlier formats staged this run."""

    artifact: Artifact
    model: nn.Module
    example: torch.Tensor
    staging: Path
    options: ExportOptions
    staged: dict[str, Staged] = field(default_factory=dict)
    _program: Any = None

    def program(self) -> torch.export.ExportedProgram:
        """The model captured once by torch.export with a dynamic batch dimension (cached)."""
        if self._program is None:
            from torchship.export.capture import capture_program

            self._program = capture_program(self.model, self.example)
        return self._program


@dataclass
class Staged:
    """One format's files in the staging directory, ready to verify and then to write.

    Attributes:
        files: Artifact-relative file name -> staged path.
        record: What goes into ``manifest.exports[format]`` besides the parity figures.
        predictor: Runs the staged export; ``None`` when another format's parity stands for it.
    """

    files: dict[str, Path]
    record: dict[str, Any]
    predictor: Any = None


Exporter = Callable[[ExportContext], Staged]
exporters: Registry[Exporter] = Registry("export format", error=ExportError)


@dataclass(frozen=True)
class Runs:
    """The runtime that runs a format's files, and the module it needs (None: torch alone)."""

    runtime: str
    module: str | None = None


def runs_in(runtime: str, module: str | None = None) -> Callable[[Exporter], Exporter]:
    """Record on an exporter which ``torchship.runtime`` runtime serves its format."""

    def mark(exporter: Exporter) -> Exporter:
        exporter.runs = Runs(runtime, module)  # type: ignore[attr-defined]
        return exporter

    return mark


def format_runtimes() -> dict[str, Runs]:
    """Export format -> the runtime serving it, for every registered format that has one.

    Example:
        >>> format_runtimes()["onnx"].runtime
        'onnxruntime'
    """
    import torchship.export  # noqa: F401 - importing the package registers every format

    marked = {name: exporter.runs for name, exporter in exporters if getattr(exporter, "runs", None)}
    return {name: marked[name] for name in sorted(marked, key=_production_rank)}


def _production_rank(name: str) -> tuple[int, str]:
    return (FORMAT_ORDER.index(name) if name in FORMAT_ORDER else len(FORMAT_ORDER), name)
