"""Dynamic int8 (ONNX Runtime) for models described by a signature: transformers, imported
and ONNX-only models, which have no labelled validation split to judge accuracy on.

MatMul/Gemm weights become int8 and activations are quantized at run time, the standard
recipe for transformer encoders on CPU. The result is judged by output agreement with the
fp32 graph on inputs generated from the signature (two sizes of every dynamic dim): max |Δ|
per output and, for a classifier, top-1 agreement.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from torchship.artifact import Artifact
from torchship.compress.base import CompressError

ONNX_FP32 = "model.onnx"
ONNX_INT8 = "model.int8.onnx"
DYNAMIC_OPS = ("MatMul", "Gemm")


def quantize_signed(
    artifact: Artifact, mode: str, per_channel: bool, tmp: Path, target: Path, allow_import: tuple[str, ...]
) -> Artifact:
    """Write a child artifact holding the fp32 and the dynamic-int8 ONNX graphs.

    Raises:
        CompressError: A mode other than dynamic (static needs labelled calibration data), or
            a graph with no MatMul/Gemm.
    """
    if mode != "dynamic":
        raise CompressError(
            f"{artifact.manifest.name} takes {', '.join(artifact.manifest.signature.input_names)}; "
            f"--mode {mode} needs a labelled dataset of such inputs to calibrate on",
            fix="use --mode dynamic (int8 MatMul/Gemm, activations quantized at run time)",
        )
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from torchship.compress.measure import judge_feeds
    from torchship.compress.quantize import _nodes, _preprocess
    from torchship.export import export
    from torchship.export.signed import compare_outputs
    from torchship.runtime.base import RuntimeOptions
    from torchship.runtime.onnxruntime import INT8_EXPORT, OnnxRuntimePredictor

    if "onnx" in artifact.manifest.exports and artifact.path is not None:
        fp32_path, onnx_record = (
            artifact.file(artifact.manifest.exports["onnx"]["file"]),
            artifact.manifest.exports["onnx"],
        )
    else:
        exported = export(artifact, ["onnx"], out=tmp / "fp32", allow_import=allow_import)
        fp32_path, onnx_record = exported.file(ONNX_FP32), exported.manifest.exports["onnx"]
    graph = _preprocess(fp32_path, tmp / "pre.onnx")
    quantizable = _nodes(graph, DYNAMIC_OPS)
    if not quantizable:
        raise CompressError(
            f"{artifact.manifest.name} has no MatMul/Gemm node for dynamic int8",
            fix="dynamic int8 pays off for linear layers and attention only",
        )
    q_path = tmp / ONNX_INT8
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # ORT warns on the root logger when shape pre-processing could not run
    try:
        quantize_dynamic(
            str(tmp / "pre.onnx"),
            str(q_path),
            op_types_to_quantize=list(DYNAMIC_OPS),
            per_channel=per_channel,
            weight_type=QuantType.QInt8,
        )
    finally:
        root.setLevel(level)
    sig = artifact.manifest.signature
    feeds = judge_feeds(sig)
    fp32 = OnnxRuntimePredictor(fp32_path, RuntimeOptions(), None)
    int8 = OnnxRuntimePredictor(q_path, RuntimeOptions(), None)
    scores = compare_outputs(
        sig, artifact.manifest.task, [fp32.run(f) for f in feeds], [int8.run(f) for f in feeds]
    )
    record: dict[str, Any] = {
        "file": ONNX_INT8,
        "precision": "int8",
        "mode": "dynamic",
        "format": "QOperator",
        "activations": "uint8, quantized at run time",
        "weights": "int8 per-channel" if per_channel else "int8 per-tensor",
        "quantized_nodes": quantizable,
        **scores,
        "reference": "fp32 ONNX Runtime, generated inputs",
        "fp32_bytes": fp32_path.stat().st_size,
        "int8_bytes": q_path.stat().st_size,
    }
    params = {
        "mode": "dynamic",
        "per_channel": per_channel,
        "backend": "onnxruntime",
        "judged_by": "output agreement with fp32 (no labelled data)",
        "agreement": {k: scores[k] for k in ("max_abs_diff", "top1_agreement", "samples") if k in scores}
        | {k: record[k] for k in ("fp32_bytes", "int8_bytes")},
    }
    child = artifact.derive(op="quantize", params=params, exports={"onnx": onnx_record, INT8_EXPORT: record})
    return child.save(target, extra_files={ONNX_FP32: fp32_path, ONNX_INT8: q_path})
