"""A model repository NVIDIA Triton or KServe loads as is, written from the manifest's signature::

    triton/<name>/config.pbtxt           # every input and output, its datatype, -1 per named dynamic dim
    triton/<name>/README.md              # what the inputs must look like (already preprocessed)
    triton/<name>/labels.txt             # classification with labels only
    triton/<name>/<version>/model.onnx   # the artifact's ONNX program (fp32 or int8)

One writer serves every artifact with an ONNX program: a trained classifier (its schema-1
manifest is migrated to a signature), its int8 child, an ONNX-only import, an imported BERT.
``<version>`` is the manifest's ``version``. A classifier's graph gains a ``Softmax`` node, so
Triton answers ``probabilities`` as torchship's server does; the written graph is run in ONNX
Runtime beside its source before anything is kept. Point Triton at the ``triton`` folder:
``tritonserver --model-repository ART/triton``.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from torchship.artifact import Artifact
from torchship.artifact.manifest import BATCH, Manifest, Signature, TensorSpec
from torchship.errors import require
from torchship.export.base import ExportContext, ExportError, Staged, exporters

REPOSITORY = "triton"
PROBABILITIES = "probabilities"  # the name torchship's server answers softmax under
TRITON_TYPES = {
    "float32": "TYPE_FP32",
    "float16": "TYPE_FP16",
    "bfloat16": "TYPE_BF16",
    "int64": "TYPE_INT64",
    "int32": "TYPE_INT32",
    "bool": "TYPE_BOOL",
}
# ONNX TensorProto element type -> the manifest's dtype name
ONNX_DTYPES = {1: "float32", 10: "float16", 16: "bfloat16", 7: "int64", 6: "int32", 9: "bool"}
# a rewritten graph must answer its source's outputs bit for bit, and softmax as the server does
PROBABILITIES_TOLERANCE = 1e-6


def model_name(name: str) -> str:
    """A Triton model name (a directory name) from the manifest's name."""
    cleaned = re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-.")
    return cleaned or "model"


def version_dir(manifest: Manifest) -> tuple[str, str | None]:
    """The version directory (the artifact's version) and, when it falls back to 1, why."""
    if manifest.version >= 1:
        return str(manifest.version), None
    return "1", f"artifact version {manifest.version} is not a Triton version (a positive integer); wrote 1"


def answers_probabilities(manifest: Manifest) -> bool:
    """Whether torchship's server answers ``probabilities`` for this artifact (softmax of output 0)."""
    first = manifest.signature.outputs[0]
    return (
        manifest.task == "classification"
        and len(first.shape) == 2
        and first.is_float
        and PROBABILITIES not in manifest.signature.output_names
    )


@exporters.register("triton")
def export_triton(ctx: ExportContext) -> Staged:
    """Lay out ``triton/<name>/`` around the ONNX export staged earlier in this run.

    Raises:
        ExportError: If the ONNX graph does not match the manifest's signature.
    """
    onnx_staged = ctx.staged.get("onnx")
    if onnx_staged is None:
        raise ExportError(
            "the triton format packages the ONNX export", fix="export with --format onnx,triton"
        )
    files, record = write_repository(
        ctx.artifact,
        onnx_staged.files["model.onnx"],
        ctx.staging,
        ctx.options.max_batch_size,
        ctx.options.device,
    )
    return Staged(files, {**record, "verified_by": "onnx"}, predictor=None)


def write_repository(
    artifact: Artifact, onnx_path: Path, staging: Path, max_batch_size: int, device: str
) -> tuple[dict[str, Path], dict[str, Any]]:
    """Write ``triton/<name>/`` for ``onnx_path`` under ``staging``; returns (files, manifest record).

    Raises:
        ExportError: If the graph's inputs/outputs differ from the signature, or the written
            graph answers differently from its source.
    """
    onnx = require("onnx", "onnx")
    m = artifact.manifest
    if m.encryption is not None:  # Triton reads model.onnx from disk and has no key
        raise ExportError(
            f"{m.name} is encrypted and Triton cannot read an encrypted model.onnx",
            fix="export for Triton from the clear artifact and protect that repository by other means",
        )
    sig = m.signature
    name = model_name(m.name)
    version, fallback = version_dir(m)
    root = staging / REPOSITORY / name
    (root / version).mkdir(parents=True, exist_ok=True)
    model = onnx.load(str(onnx_path), load_external_data=False)
    check_graph(model, sig, onnx_path.name)
    probabilities = answers_probabilities(m)
    if probabilities:
        add_softmax_output(model, sig.outputs[0].name, PROBABILITIES)
    target = root / version / "model.onnx"
    onnx.save_model(model, str(target))
    files = {f"{REPOSITORY}/{name}/{version}/model.onnx": target}
    for data in external_data_files(model):  # beside the graph, where its tensors point
        shutil.copyfile(onnx_path.parent / data, root / version / data)
        files[f"{REPOSITORY}/{name}/{version}/{data}"] = root / version / data
    checked = check_rewritten(onnx_path, target, sig, probabilities)
    batched = all(s.shape[0] == BATCH for s in [*sig.inputs, *sig.outputs])
    inputs = [tensor_config(s, batched) for s in sig.inputs]
    served = [(s.name, s) for s in sig.outputs] + ([(PROBABILITIES, sig.outputs[0])] if probabilities else [])
    outputs = [{**tensor_config(s, batched), "name": n} for n, s in served]
    labels = "labels.txt" if m.task == "classification" and m.labels else None
    if labels:
        (root / labels).write_text("\n".join(m.labels) + "\n")
        files[f"{REPOSITORY}/{name}/{labels}"] = root / labels
        for o in outputs:
            if o["name"] in (sig.outputs[0].name, PROBABILITIES):  # the logits and their probabilities
                o["label_filename"] = labels
    kind = "KIND_GPU" if device.startswith("cuda") else "KIND_CPU"
    batch = max_batch_size if batched else 0
    (root / "config.pbtxt").write_text(model_config(name, inputs, outputs, batch, kind))
    files[f"{REPOSITORY}/{name}/config.pbtxt"] = root / "config.pbtxt"
    (root / "README.md").write_text(readme(artifact, onnx_path.name, version, probabilities))
    files[f"{REPOSITORY}/{name}/README.md"] = root / "README.md"
    record: dict[str, Any] = {
        "file": f"{REPOSITORY}/{name}/config.pbtxt",
        "repository": REPOSITORY,
        "model_name": name,
        "version": version,
        "platform": "onnxruntime_onnx",
        "max_batch_size": batch,
        # not "outputs": in an export record that key holds the parity per output
        "input_names": [i["name"] for i in inputs],
        "output_names": [o["name"] for o in outputs],
        "checked": checked,
    }
    if fallback:
        record["version_note"] = fallback
    return files, record


def tensor_config(spec: TensorSpec, batched: bool = True) -> dict[str, Any]:
    """``{name, data_type, dims}``, the batch dim left out when batched; named dims are ``-1``."""
    shape = spec.shape[1:] if batched else spec.shape
    dims = [-1 if isinstance(d, str) else d for d in shape]
    return {"name": spec.name, "data_type": TRITON_TYPES[spec.dtype], "dims": dims}


def check_graph(model: Any, signature: Signature, source: str) -> None:
    """Refuse a graph whose inputs/outputs are not the signature's names, dtypes and fixed dims."""
    initializers = {init.name for init in model.graph.initializer}
    graph_in = {v.name: v for v in model.graph.input if v.name not in initializers}
    graph_out = {v.name: v for v in model.graph.output}
    for side, specs, values in (
        ("input", signature.inputs, graph_in),
        ("output", signature.outputs, graph_out),
    ):
        if side == "input" and set(values) != {s.name for s in specs}:
            raise ExportError(
                f"{source} takes inputs {sorted(values)} but the signature names {[s.name for s in specs]}",
                fix="re-export the artifact",
            )
        for spec in specs:
            value = values.get(spec.name)
            if value is None:
                raise ExportError(f"{source} has no {side} {spec.name!r}", fix="re-export the artifact")
            tensor = value.type.tensor_type
            dtype = ONNX_DTYPES.get(tensor.elem_type, f"ONNX type {tensor.elem_type}")
            dims = [d.dim_value if d.HasField("dim_value") else None for d in tensor.shape.dim]
            fixed_ok = len(dims) == len(spec.shape) and all(
                isinstance(want, str) or got in (None, want)
                for want, got in zip(spec.shape, dims, strict=True)
            )
            if dtype != spec.dtype or not fixed_ok:
                raise ExportError(
                    f"{source} {side} {spec.name!r} is {dtype}{dims}; the signature says "
                    f"{spec.dtype}{spec.shape}",
                    fix="re-export the artifact",
                )


def add_softmax_output(model: Any, logits: str, name: str) -> None:
    """Append ``name = Softmax(logits, axis=-1)`` to the graph's outputs, in place."""
    onnx = require("onnx", "onnx")
    source = next(v for v in model.graph.output if v.name == logits)
    model.graph.node.append(onnx.helper.make_node("Softmax", [logits], [name], axis=-1, name=name))
    output = model.graph.output.add()
    output.CopyFrom(source)
    output.name = name


def external_data_files(model: Any) -> list[str]:
    """File names the graph's external tensors live in (``model.onnx.data`` over 2 GB)."""
    onnx = require("onnx", "onnx")
    names = set()
    for tensor in onnx.external_data_helper._get_all_tensors(model):
        if tensor.data_location == onnx.TensorProto.EXTERNAL:
            names.update(e.value for e in tensor.external_data if e.key == "location")
    return sorted(names)


def check_rewritten(source: Path, written: Path, signature: Signature, probabilities: bool) -> dict[str, Any]:
    """Run both graphs in ONNX Runtime on two input sets (two batch sizes, two sizes of every
    named dim): the written one must answer its source's outputs, and ``probabilities`` as the
    server's softmax of them.

    Raises:
        ExportError: If any output differs.
    """
    from torchship.export.signed import parity_feeds
    from torchship.runtime.base import RuntimeOptions
    from torchship.runtime.onnxruntime import OnnxRuntimePredictor
    from torchship.serve.v2.signature import softmax

    feeds = parity_feeds(signature)
    worst = 0.0
    pairs = [OnnxRuntimePredictor(p, RuntimeOptions(threads=1), None) for p in (source, written)]
    try:
        for feed in feeds:
            want, got = (p.run(feed) for p in pairs)
            for spec in signature.outputs:
                if not np.array_equal(want[spec.name], got[spec.name]):
                    raise ExportError(f"the Triton graph's output {spec.name} differs from {source.name}")
            if probabilities:
                server = softmax(np.asarray(want[signature.outputs[0].name], np.float32))
                worst = max(worst, float(np.max(np.abs(got[PROBABILITIES] - server))))
    finally:
        for p in pairs:
            p.close()
    if worst > PROBABILITIES_TOLERANCE:
        raise ExportError(f"the Triton graph's probabilities differ from the server's by {worst:.3g}")
    batches = [len(next(iter(f.values()))) for f in feeds]
    record: dict[str, Any] = {"batch_sizes": batches, "outputs_equal_source": True}
    if probabilities:
        record["probabilities_max_abs_diff"] = worst
    return record


def model_config(
    name: str, inputs: list[dict[str, Any]], outputs: list[dict[str, Any]], max_batch_size: int, kind: str
) -> str:
    """Triton's ``config.pbtxt`` (protobuf text format of ``inference.ModelConfig``)."""

    def tensor(spec: dict[str, Any]) -> str:
        lines = [
            "  {",
            f'    name: "{spec["name"]}"',
            f"    data_type: {spec['data_type']}",
            f"    dims: [ {', '.join(str(d) for d in spec['dims'])} ]",
        ]
        if spec.get("label_filename"):
            lines.append(f'    label_filename: "{spec["label_filename"]}"')
        return "\n".join([*lines, "  }"])

    batching = ["dynamic_batching {", "  max_queue_delay_microseconds: 2000", "}"] if max_batch_size else []
    return "\n".join(
        [
            "# Inputs are expected already preprocessed (normalized tensors, token ids): Triton applies",
            "# no preprocessing. README.md beside this file gives the exact normalization.",
            f'name: "{name}"',
            'platform: "onnxruntime_onnx"',
            'backend: "onnxruntime"',
            f"max_batch_size: {max_batch_size}",
            "input [",
            ",\n".join(tensor(spec) for spec in inputs),
            "]",
            "output [",
            ",\n".join(tensor(spec) for spec in outputs),
            "]",
            *batching,
            "instance_group [",
            "  {",
            "    count: 1",
            f"    kind: {kind}",
            "  }",
            "]",
            "",
        ]
    )


def readme(artifact: Artifact, source: str, version: str, probabilities: bool) -> str:
    """What to send: every input with its dtype, shape and exact normalization; every output."""
    m = artifact.manifest
    lines = [
        f"# {m.name} v{m.version} for Triton",
        "",
        f"`{version}/model.onnx` is the artifact's `{source}`"
        + (f" with a `Softmax` node answering `{PROBABILITIES}`" if probabilities else "")
        + ". Inputs are expected **already preprocessed** (the tensors the model consumes); "
        "Triton applies no normalization.",
        "",
        "| tensor | dtype | shape | note |",
        "| --- | --- | --- | --- |",
    ]
    outputs = [*m.signature.outputs, *([m.signature.outputs[0]] if probabilities else [])]
    names = [*m.signature.output_names, *([PROBABILITIES] if probabilities else [])]
    for s in m.signature.inputs:
        note = f"integers in [{s.range[0]}, {s.range[1]})" if s.range else ""
        if s.preprocessing is not None:
            p = s.preprocessing
            note = (
                f"send `(raw * scale - mean) / std` per channel ({p.kind} layout): scale {p.scale!r}, "
                f"mean {p.mean}, std {p.std}"
            )
        lines.append(f"| input `{s.name}` | {s.dtype} | [{', '.join(map(str, s.shape))}] | {note} |")
    for name, s in zip(names, outputs, strict=True):
        note = f"softmax of `{s.name}` over its last dim" if name == PROBABILITIES else ""
        lines.append(f"| output `{name}` | {s.dtype} | [{', '.join(map(str, s.shape))}] | {note} |")
    if m.labels:
        lines += ["", "`labels.txt` names the classes for Triton's classification extension."]
    return "\n".join(lines) + "\n"
