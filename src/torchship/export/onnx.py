"""ONNX through torch.onnx's dynamo exporter: dynamic batch, opset 18+, weights inside the file.

The graph is translated from the ExportedProgram the other formats share, slimmed with
onnxslim (optional), checked with ``onnx.checker`` and run in ONNX Runtime for parity.
Weights go into a separate ``model.onnx.data`` file only when the model is over protobuf's
2 GB limit.
"""

from __future__ import annotations

import logging
from typing import Any

import torch

from torchship.errors import require
from torchship.export.base import ExportContext, ExportError, Staged, exporters, runs_in
from torchship.export.capture import failure_summary

FILE = "model.onnx"
INPUT_NAME = "input"
OUTPUT_NAME = "logits"
MIN_OPSET = 18
# protobuf cannot serialize a message over 2 GiB; leave room for the graph itself
MAX_EMBEDDED_BYTES = 1_800_000_000


@exporters.register("onnx")
@runs_in("onnxruntime", module="onnxruntime")
def export_onnx(ctx: ExportContext) -> Staged:
    """Write ``model.onnx`` (and ``model.onnx.data`` for models over 2 GB) into the staging directory.

    Raises:
        ExportError: If an op has no ONNX translation (the message names it) or the checker fails.
    """
    onnx = require("onnx", "onnx")
    require("onnxscript", "onnx")
    if ctx.options.opset < MIN_OPSET:
        raise ExportError(
            f"ONNX opset {ctx.options.opset} is too old", fix=f"use --opset {MIN_OPSET} or newer"
        )
    path = ctx.staging / FILE
    external = _weight_bytes(ctx.model) > MAX_EMBEDDED_BYTES
    program = translate(ctx)
    model = program.model_proto if not external else None
    slimmed = False
    if ctx.options.slim and not external:
        model, slimmed = slim(model)
    if model is not None:
        onnx.save_model(model, str(path))
    else:
        program.save(str(path), external_data=True)
    try:
        onnx.checker.check_model(str(path), full_check=True)
    except onnx.checker.ValidationError as exc:
        raise ExportError(f"onnx.checker rejects the exported model ({str(exc).splitlines()[0]})") from None
    files = {FILE: path}
    data = ctx.staging / (FILE + ".data")
    if data.exists():
        files[data.name] = data
    from torchship.runtime.base import RuntimeOptions
    from torchship.runtime.onnxruntime import OnnxRuntimePredictor

    predictor = OnnxRuntimePredictor(
        path, RuntimeOptions(device=ctx.options.device), ctx.artifact.manifest.input.shape
    )
    record: dict[str, Any] = {
        "file": FILE,
        "opset": ctx.options.opset,
        "input": INPUT_NAME,
        "output": OUTPUT_NAME,
        "dynamic_batch": True,
        "slimmed": slimmed,
        "external_data": external,
        "onnx": onnx.__version__,
    }
    return Staged(files, record, predictor)


def translate(ctx: ExportContext) -> Any:
    """The ONNXProgram for the context's model, inputs named ``input`` and outputs ``logits``.

    Raises:
        ExportError: Naming the op that has no ONNX translation.
    """
    try:
        program: Any = ctx.program()
        source = "ExportedProgram"
    except ExportError:
        # torch.export failed; let the ONNX exporter try its own fallbacks (draft export, JIT trace)
        program, source = ctx.model, type(ctx.model).__name__
    try:
        with _quiet_exporter():
            return torch.onnx.export(
                program,
                (ctx.example,),
                input_names=[INPUT_NAME],
                output_names=[OUTPUT_NAME],
                opset_version=ctx.options.opset,
                dynamo=True,
                external_data=False,
                dynamic_shapes=None
                if source == "ExportedProgram"
                else ({0: torch.export.Dim("batch", min=1)},),
                optimize=True,
                verbose=False,
            )
    except Exception as exc:  # the exporter raises OnnxExporterError, ConversionError, TorchExportError, ...
        raise ExportError(
            f"cannot export {type(ctx.model).__name__} to ONNX: {failure_summary(exc)}",
            fix="replace that op in the model, or export the other formats (--format torchscript,exported)",
        ) from exc


def slim(model: Any) -> tuple[Any, bool]:
    """Simplify the graph with onnxslim when it is installed; returns (model, slimmed)."""
    try:
        import onnxslim
    except ImportError:
        logging.getLogger(__name__).info("onnxslim is not installed; the ONNX graph is not slimmed")
        return model, False
    return onnxslim.slim(model), True


def _weight_bytes(model: torch.nn.Module) -> int:
    return sum(t.numel() * t.element_size() for t in model.state_dict().values())


class _quiet_exporter:  # noqa: N801 - used as a context manager
    """Silence the exporter's progress prints and its torchvision-missing warnings."""

    def __enter__(self) -> None:
        import contextlib
        import io

        self._loggers = [
            logging.getLogger(name) for name in ("torch.onnx", "torch.onnx._internal.exporter._registration")
        ]
        self._levels = [lg.level for lg in self._loggers]
        for lg in self._loggers:
            lg.setLevel(logging.ERROR)
        self._stdout = contextlib.redirect_stdout(io.StringIO())
        self._stdout.__enter__()

    def __exit__(self, *exc: object) -> None:
        self._stdout.__exit__(*exc)
        for lg, level in zip(self._loggers, self._levels, strict=False):
            lg.setLevel(level)
