"""AOTInductor: the ExportedProgram compiled ahead of time into ``model.aoti.pt2``.

The package holds a native library compiled for this machine's CPU (or GPU) and this torch
version, with a dynamic batch dimension; it runs without Python model code. Compiling takes
tens of seconds even for a small model and needs a C++ compiler.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import torch

from torchship.export.base import ExportContext, ExportError, Staged, exporters, runs_in
from torchship.export.capture import failure_summary

FILE = "model.aoti.pt2"


@exporters.register("aoti")
@runs_in("aoti")
def export_aoti(ctx: ExportContext) -> Staged:
    """Compile the shared ExportedProgram with ``aoti_compile_and_package``.

    Raises:
        ExportError: If no C++ compiler is found or Inductor cannot compile the graph.
    """
    path = ctx.staging / FILE
    compile_package(ctx.program(), path, type(ctx.model).__name__, ctx.options.device)
    from torchship.runtime.aoti import AotiPredictor
    from torchship.runtime.base import RuntimeOptions

    predictor = AotiPredictor(
        path, RuntimeOptions(device=ctx.options.device), ctx.artifact.manifest.input.shape
    )
    record = {"file": FILE, "dynamic_batch": True, "device": ctx.options.device, "torch": torch.__version__}
    return Staged({FILE: path}, record, predictor)


def compile_package(program: torch.export.ExportedProgram, path: Path, label: str, device: str) -> None:
    """Compile ``program`` (every input and output it has, its dynamic dims) into ``path``.

    Raises:
        ExportError: If no C++ compiler is found or Inductor cannot compile the graph.
    """
    if device == "cpu" and not (shutil.which("g++") or shutil.which("c++") or shutil.which("clang++")):
        raise ExportError(
            "AOTInductor needs a C++ compiler and none is on PATH", fix="install g++ (apt install g++)"
        )
    try:
        torch._inductor.aoti_compile_and_package(program, package_path=str(path))
    except Exception as exc:  # Inductor raises BackendCompilerFailed, CppCompileError, ...
        raise ExportError(
            f"AOTInductor cannot compile {label}: {failure_summary(exc)}",
            fix="export the other formats (--format onnx,exported)",
        ) from exc
