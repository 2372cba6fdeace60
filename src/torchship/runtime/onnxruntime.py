"""ONNX Runtime: the exported ``model.onnx`` in an InferenceSession.

Graph optimizations are on (``ORT_ENABLE_ALL``) and the CPU provider is used unless a CUDA
device is asked for and the CUDA provider is present. An artifact made by ``compress quantize``
also holds an int8 graph (``exports["onnx-int8"]``); that one is run unless ``precision="fp32"``
is asked for. Loading an ONNX file parses protobuf
only; no Python code is run.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from torchship.artifact import Artifact
from torchship.errors import require
from torchship.runtime.base import (
    RuntimeError_,
    RuntimeOptions,
    as_batch,
    export_bytes,
    export_file,
    legacy_shape,
    runtimes,
)


class OnnxRuntimePredictor:
    """One ONNX Runtime session; ``predict`` feeds ``input`` and returns the first output."""

    name = "onnxruntime"

    def __init__(
        self,
        path: Path,
        options: RuntimeOptions,
        input_shape: Sequence[int] | None,
        data: bytes | None = None,
    ):
        ort = require("onnxruntime", "onnx")
        session_options = ort.SessionOptions()
        session_options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if options.threads:
            session_options.intra_op_num_threads = options.threads
        spin = options.extra.get("spin")
        if spin is False:
            # a server shares its cores with the HTTP loop: idle intra-op threads must sleep, not spin
            session_options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        elif spin == "run":
            # spin between the operators of a run, sleep from its end (the server's choice for a
            # model whose run is long next to the loop's work per request: serve/model.py)
            session_options.add_session_config_entry("session.force_spinning_stop", "1")
        if options.inter_op_threads:
            session_options.inter_op_num_threads = options.inter_op_threads
            session_options.execution_mode = ort.ExecutionMode.ORT_PARALLEL
        providers = options.extra.get("providers") or session_providers(ort, options.device)
        try:
            self.session = ort.InferenceSession(
                data if data is not None else str(path), session_options, providers=providers
            )
        except Exception as exc:  # onnxruntime raises its own pybind types (Fail, InvalidGraph, ...)
            raise RuntimeError_(
                f"ONNX Runtime cannot load {path.name} ({str(exc).splitlines()[0][:200]})",
                fix="re-export it with torchship export --format onnx",
            ) from None
        self.path = path
        self.options = options
        self.input_shape = tuple(input_shape) if input_shape is not None else None
        self.input_name = self.session.get_inputs()[0].name
        self.output_name = self.session.get_outputs()[0].name
        self.output_names = [o.name for o in self.session.get_outputs()]

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        # the graph's own input names: an exported legacy model calls its one input "input" too
        wanted = {i.name: feeds[i.name] for i in self.session.get_inputs()}
        values = self.session.run(self.output_names, wanted)
        return dict(zip(self.output_names, values, strict=False))

    def predict(self, batch: np.ndarray) -> np.ndarray:
        x = as_batch(batch, self.input_shape)
        return self.session.run([self.output_name], {self.input_name: x})[0]

    def describe(self) -> dict[str, Any]:
        import onnxruntime as ort

        session_options = self.session.get_session_options()
        return {
            "runtime": self.name,
            "file": self.path.name,
            "onnxruntime": ort.__version__,
            "providers": self.session.get_providers(),
            "device": self.options.device,
            "threads": session_options.intra_op_num_threads or "default",
            "inter_op_threads": session_options.inter_op_num_threads or "default",
            "graph_optimization": "ORT_ENABLE_ALL",
        }

    def close(self) -> None:
        self.session = None  # type: ignore[assignment]


def session_providers(ort: Any, device: str) -> list[Any]:
    """CPU by default; CUDA (then CPU for unsupported nodes) when ``device`` is ``cuda[:N]``.

    Raises:
        RuntimeError_: If CUDA is asked for but this onnxruntime has no CUDA provider.
    """
    if not device.startswith("cuda"):
        return ["CPUExecutionProvider"]
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        raise RuntimeError_(
            f"device {device} asked for, but this onnxruntime has no CUDA provider "
            f"(available: {', '.join(ort.get_available_providers())})",
            fix="pip install onnxruntime-gpu, or run on --device cpu",
        )
    device_id = int(device.split(":", 1)[1]) if ":" in device else 0
    return [("CUDAExecutionProvider", {"device_id": device_id}), "CPUExecutionProvider"]


INT8_EXPORT = "onnx-int8"


def onnx_file(artifact: Artifact, precision: str | None = None) -> Path:
    """The ONNX graph to run: the int8 one when the artifact has it (unless ``precision="fp32"``).

    Raises:
        RuntimeError_: An unknown precision, or the asked-for graph is not in the artifact.
    """
    if precision not in (None, "int8", "fp32"):
        raise RuntimeError_(f"unknown ONNX precision {precision!r}", fix="choose int8 or fp32")
    if precision != "fp32" and (precision == "int8" or INT8_EXPORT in artifact.manifest.exports):
        return export_file(artifact, INT8_EXPORT)
    return export_file(artifact, "onnx")


@runtimes.register("onnxruntime")
def _onnxruntime(artifact: Artifact, options: RuntimeOptions) -> OnnxRuntimePredictor:
    path = onnx_file(artifact, options.extra.get("precision"))
    return OnnxRuntimePredictor(path, options, legacy_shape(artifact), export_bytes(artifact, path))
