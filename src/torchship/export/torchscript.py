"""TorchScript: scripted (or traced, when scripting fails) and frozen, saved as ``model.ts``.

The file holds the frozen module; ``torch.jit.optimize_for_inference`` runs after loading
(``runtime/torchscript.py``), because a module saved after it fails to reload.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch

from torchship.export.base import ExportContext, ExportError, Staged, exporters, runs_in
from torchship.export.capture import failure_summary

FILE = "model.ts"


@exporters.register("torchscript")
@runs_in("torchscript")
def export_torchscript(ctx: ExportContext) -> Staged:
    """Script the model (trace it if scripting fails), freeze it, save ``model.ts``.

    Raises:
        ExportError: If the model can be neither scripted nor traced; names the op or line.
    """
    model = ctx.model.eval()
    try:
        module, method = torch.jit.script(model), "script"
    except Exception as script_exc:  # TorchScript's frontend raises many types for unsupported Python
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", torch.jit.TracerWarning)
                module, method = torch.jit.trace(model, (ctx.example,), check_trace=False), "trace"
        except Exception as trace_exc:  # tracing fails on the same breadth of errors
            raise ExportError(
                f"cannot export {type(model).__name__} to TorchScript: scripting failed "
                f"({failure_summary(script_exc)}) and tracing failed ({failure_summary(trace_exc)})",
                fix="export the other formats (--format onnx,exported)",
            ) from trace_exc
    path = ctx.staging / FILE
    torch.jit.freeze(module.eval()).save(str(path))
    from torchship.runtime.base import RuntimeOptions
    from torchship.runtime.torchscript import TorchScriptPredictor

    predictor = TorchScriptPredictor(
        path, RuntimeOptions(device=ctx.options.device), ctx.artifact.manifest.input.shape
    )
    record = {"file": FILE, "method": method, "frozen": True, "optimize_for_inference": "on load"}
    return Staged({FILE: path}, record, predictor)


def save_traced(module: torch.nn.Module, args: tuple[torch.Tensor, ...], path: Path, label: str) -> None:
    """Trace a several-input module on ``args`` (tuple or dict out), freeze it and save it.

    Tracing records the ops for these sizes; the caller verifies other sizes (batch, seq).

    Raises:
        ExportError: If tracing fails, naming the reason.
    """
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            traced = torch.jit.trace(module.eval(), args, strict=False, check_trace=False)
    except Exception as exc:  # tracing raises many types for unsupported Python
        raise ExportError(
            f"cannot trace {label} to TorchScript: {failure_summary(exc)}",
            fix="export the other formats (--format onnx,exported)",
        ) from exc
    torch.jit.freeze(traced.eval()).save(str(path))
