"""A model repository NVIDIA Triton or KServe loads as is::

    triton/<name>/config.pbtxt     # names, dims and datatype read from the ONNX model
    triton/<name>/labels.txt       # the manifest's labels, for Triton's classification extension
    triton/<name>/1/model.onnx     # the verified ONNX export

Point Triton at the ``triton`` folder: ``tritonserver --model-repository ART/triton``.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

from torchship.errors import require
from torchship.export.base import ExportContext, ExportError, Staged, exporters

REPOSITORY = "triton"
# ONNX TensorProto element type -> Triton data type
_DATA_TYPES = {
    1: "TYPE_FP32",
    10: "TYPE_FP16",
    11: "TYPE_FP64",
    16: "TYPE_BF16",
    2: "TYPE_UINT8",
    3: "TYPE_INT8",
    6: "TYPE_INT32",
    7: "TYPE_INT64",
    9: "TYPE_BOOL",
}


def model_name(name: str) -> str:
    """A Triton model name (a directory name) from the manifest's name."""
    cleaned = re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-.")
    return cleaned or "model"


@exporters.register("triton")
def export_triton(ctx: ExportContext) -> Staged:
    """Lay out ``triton/<name>/`` around the ONNX export staged earlier in this run.

    Raises:
        ExportError: If the ONNX model's inputs/outputs do not match the manifest.
    """
    onnx_staged = ctx.staged.get("onnx")
    if onnx_staged is None:
        raise ExportError(
            "the triton format packages the ONNX export", fix="export with --format onnx,triton"
        )
    name = model_name(ctx.artifact.manifest.name)
    root = ctx.staging / REPOSITORY / name
    (root / "1").mkdir(parents=True, exist_ok=True)
    files: dict[str, Path] = {}
    for file_name, path in onnx_staged.files.items():
        dst = root / "1" / file_name
        shutil.copyfile(path, dst)
        files[f"{REPOSITORY}/{name}/1/{file_name}"] = dst
    inputs, outputs = onnx_signature(onnx_staged.files["model.onnx"])
    _check_against_manifest(ctx, inputs, outputs)
    labels = root / "labels.txt"
    labels.write_text("\n".join(ctx.artifact.manifest.labels) + "\n")
    config = root / "config.pbtxt"
    kind = "KIND_GPU" if ctx.options.device.startswith("cuda") else "KIND_CPU"
    config.write_text(model_config(name, inputs, outputs, ctx.options.max_batch_size, kind, "labels.txt"))
    files[f"{REPOSITORY}/{name}/labels.txt"] = labels
    files[f"{REPOSITORY}/{name}/config.pbtxt"] = config
    record = {
        "file": f"{REPOSITORY}/{name}/config.pbtxt",
        "repository": REPOSITORY,
        "model_name": name,
        "platform": "onnxruntime_onnx",
        "max_batch_size": ctx.options.max_batch_size,
        "verified_by": "onnx",
    }
    return Staged(files, record, predictor=None)


def onnx_signature(path: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Graph inputs and outputs as ``{name, data_type, dims}`` without the batch dimension."""
    onnx = require("onnx", "onnx")
    graph = onnx.load(str(path), load_external_data=False).graph
    initializers = {init.name for init in graph.initializer}

    def describe(value: Any) -> dict[str, Any]:
        tensor = value.type.tensor_type
        dims = [d.dim_value if d.HasField("dim_value") else -1 for d in tensor.shape.dim]
        if not dims or dims[0] != -1:
            raise ExportError(f"ONNX {value.name!r} has no dynamic batch dimension ({dims})", fix="re-export")
        if -1 in dims[1:]:
            raise ExportError(f"ONNX {value.name!r} has a dynamic dimension besides the batch ({dims})")
        data_type = _DATA_TYPES.get(tensor.elem_type)
        if data_type is None:
            raise ExportError(
                f"ONNX {value.name!r} has element type {tensor.elem_type}, which Triton config lacks"
            )
        return {"name": value.name, "data_type": data_type, "dims": dims[1:]}

    inputs = [describe(v) for v in graph.input if v.name not in initializers]
    return inputs, [describe(v) for v in graph.output]


def _check_against_manifest(
    ctx: ExportContext, inputs: list[dict[str, Any]], outputs: list[dict[str, Any]]
) -> None:
    manifest = ctx.artifact.manifest
    want_in, want_out = list(manifest.input.shape), [len(manifest.labels)]
    if (
        len(inputs) != 1
        or inputs[0]["dims"] != want_in
        or len(outputs) != 1
        or outputs[0]["dims"] != want_out
    ):
        raise ExportError(
            f"ONNX signature {inputs} -> {outputs} does not match the manifest "
            f"(input {want_in}, output {want_out})",
            fix="re-export the artifact",
        )


def model_config(
    name: str,
    inputs: list[dict[str, Any]],
    outputs: list[dict[str, Any]],
    max_batch_size: int,
    kind: str = "KIND_CPU",
    label_filename: str | None = None,
) -> str:
    """Triton's ``config.pbtxt`` (protobuf text format of ``inference.ModelConfig``)."""

    def tensor(spec: dict[str, Any], labels: str | None) -> str:
        lines = [
            "  {",
            f'    name: "{spec["name"]}"',
            f"    data_type: {spec['data_type']}",
            f"    dims: [ {', '.join(str(d) for d in spec['dims'])} ]",
        ]
        if labels:
            lines.append(f'    label_filename: "{labels}"')
        return "\n".join([*lines, "  }"])

    return "\n".join(
        [
            f'name: "{name}"',
            'platform: "onnxruntime_onnx"',
            'backend: "onnxruntime"',
            f"max_batch_size: {max_batch_size}",
            "input [",
            ",\n".join(tensor(spec, None) for spec in inputs),
            "]",
            "output [",
            ",\n".join(tensor(spec, label_filename if i == 0 else None) for i, spec in enumerate(outputs)),
            "]",
            "dynamic_batching {",
            "  max_queue_delay_microseconds: 2000",
            "}",
            "instance_group [",
            "  {",
            "    count: 1",
            f"    kind: {kind}",
            "  }",
            "]",
            "",
        ]
    )
