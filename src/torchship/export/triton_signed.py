"""A Triton model repository written from the manifest's signature (every input and output,
its datatype, ``-1`` for each named dynamic dim), for imported, int8 and ONNX-only artifacts::

    triton/<name>/config.pbtxt
    triton/<name>/README.md          # what the inputs must look like (already preprocessed)
    triton/<name>/labels.txt         # classification with labels only
    triton/<name>/<version>/model.onnx
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from torchship.artifact import Artifact
from torchship.artifact.manifest import BATCH, TensorSpec
from torchship.export.triton import REPOSITORY, model_config, model_name

TRITON_TYPES = {
    "float32": "TYPE_FP32",
    "float16": "TYPE_FP16",
    "bfloat16": "TYPE_BF16",
    "int64": "TYPE_INT64",
    "int32": "TYPE_INT32",
    "bool": "TYPE_BOOL",
}


def tensor_config(spec: TensorSpec) -> dict[str, Any]:
    """``{name, data_type, dims}`` without the batch dim; named dims are ``-1``."""
    dims = [-1 if isinstance(d, str) else d for d in spec.shape[1:]]
    return {"name": spec.name, "data_type": TRITON_TYPES[spec.dtype], "dims": dims}


def write_repository(
    artifact: Artifact, onnx_path: Path, staging: Path, max_batch_size: int, device: str
) -> tuple[dict[str, Path], dict[str, Any]]:
    """Lay out ``triton/<name>/<version>/model.onnx`` and its config; returns (files, manifest record)."""
    m = artifact.manifest
    name = model_name(m.name)
    version = str(m.version)
    root = staging / REPOSITORY / name
    (root / version).mkdir(parents=True, exist_ok=True)
    shutil.copyfile(onnx_path, root / version / "model.onnx")
    files = {f"{REPOSITORY}/{name}/{version}/model.onnx": root / version / "model.onnx"}
    batched = all(s.shape[0] == BATCH for s in [*m.signature.inputs, *m.signature.outputs])
    inputs = [tensor_config(s) for s in m.signature.inputs]
    outputs = [tensor_config(s) for s in m.signature.outputs]
    labels = "labels.txt" if m.task == "classification" and m.labels else None
    if labels:
        (root / labels).write_text("\n".join(m.labels) + "\n")
        files[f"{REPOSITORY}/{name}/{labels}"] = root / labels
    kind = "KIND_GPU" if device.startswith("cuda") else "KIND_CPU"
    config = model_config(name, inputs, outputs, max_batch_size if batched else 0, kind, labels)
    (root / "config.pbtxt").write_text(config)
    files[f"{REPOSITORY}/{name}/config.pbtxt"] = root / "config.pbtxt"
    (root / "README.md").write_text(readme(artifact, onnx_path.name))
    files[f"{REPOSITORY}/{name}/README.md"] = root / "README.md"
    record = {
        "file": f"{REPOSITORY}/{name}/config.pbtxt",
        "repository": REPOSITORY,
        "model_name": name,
        "version": version,
        "platform": "onnxruntime_onnx",
        "max_batch_size": max_batch_size if batched else 0,
        "inputs": [i["name"] for i in inputs],
        "outputs": [o["name"] for o in outputs],
    }
    return files, record


def readme(artifact: Artifact, source: str) -> str:
    m = artifact.manifest
    lines = [
        f"# {m.name} v{m.version} for Triton",
        "",
        f"`{artifact.manifest.version}/model.onnx` is the artifact's `{source}`. Inputs are expected "
        "**already preprocessed** (the tensors the model consumes); Triton applies no normalization.",
        "",
        "| tensor | dtype | shape | note |",
        "| --- | --- | --- | --- |",
    ]
    for side, specs in (("input", m.signature.inputs), ("output", m.signature.outputs)):
        for s in specs:
            note = f"values in [{s.range[0]}, {s.range[1]})" if s.range else ""
            if s.preprocessing is not None:
                p = s.preprocessing
                note = f"send (raw * {p.scale:.6g} - mean) / std, mean {p.mean}, std {p.std}"
            lines.append(f"| {side} `{s.name}` | {s.dtype} | [{', '.join(map(str, s.shape))}] | {note} |")
    if m.task == "classification":
        lines += [
            "",
            "Probabilities are softmax of the first output; torchship's own server also answers "
            "`probabilities`. Triton's classification extension reads `labels.txt`.",
        ]
    return "\n".join(lines) + "\n"
