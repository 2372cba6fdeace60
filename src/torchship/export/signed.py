"""Export a model described by its signature: several named inputs and outputs, any dtype,
named dynamic dims (``batch``, ``seq``). Used for imported models and ONNX-only artifacts.

The ONNX graph is translated from the stored ``model.pt2`` (or a fresh capture of the class),
each named dim becomes a dynamic axis carrying its name, and parity is checked output by
output at two sizes of every dynamic dim against the reference (the class when allowed,
else the stored program).
"""

from __future__ import annotations

import tempfile
import warnings
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from torchship.artifact import Artifact
from torchship.artifact.manifest import BATCH, Signature
from torchship.errors import require
from torchship.export.base import ExportError, ExportParityError
from torchship.export.capture import failure_summary
from torchship.export.onnx import FILE as ONNX_FILE
from torchship.export.onnx import MIN_OPSET, _quiet_exporter

SIGNED_FORMATS = ("onnx", "torchscript", "exported", "aoti", "triton")
# formats compiled from the PyTorch model: an int8 artifact would get its float parent's weights
FROM_PYTORCH = ("torchscript", "exported", "aoti")
DEFAULT_TOLERANCE = 1e-4


def parity_feeds(signature: Signature) -> list[dict[str, np.ndarray]]:
    """Two input sets: batch 1 at the example sizes, batch 5 with every other named dim changed."""
    other = {d: max(2, s // 2 + 1) for d, s in signature.dims.items()}
    from torchship.runtime.feeds import example_feeds

    return [example_feeds(signature, batch=1, seed=1), example_feeds(signature, batch=5, dims=other, seed=2)]


def compare_outputs(
    signature: Signature,
    task: str,
    reference: list[dict[str, np.ndarray]],
    candidate: list[dict[str, np.ndarray]],
) -> dict[str, Any]:
    """max |Δ| per output over every input set; top-1 agreement of a classifier's first output."""
    per_output: dict[str, dict[str, float]] = {}
    for spec in signature.outputs:
        diffs = []
        for ref, cand in zip(reference, candidate, strict=True):
            r, c = np.asarray(ref[spec.name], np.float64), np.asarray(cand[spec.name], np.float64)
            if r.shape != c.shape:
                raise ExportParityError(
                    f"output {spec.name} has shape {list(c.shape)} in the export but "
                    f"{list(r.shape)} in the reference",
                    fix="re-export",
                )
            diffs.append(
                float(np.max(np.abs(r - c), initial=0.0)) if np.all(np.isfinite(c)) else float("inf")
            )
        per_output[spec.name] = {"max_abs_diff": max(diffs)}
    record: dict[str, Any] = {
        "max_abs_diff": max(v["max_abs_diff"] for v in per_output.values()),
        "outputs": per_output,
        "samples": sum(len(next(iter(f.values()))) for f in reference),
        "samples_source": "generated from the signature (two sizes of every dynamic dim)",
    }
    if task in ("classification", "multilabel"):
        first = signature.outputs[0].name
        agree = [
            np.argmax(r[first], -1) == np.argmax(c[first], -1)
            for r, c in zip(reference, candidate, strict=True)
        ]
        record["top1_agreement"] = float(np.mean(np.concatenate([a.ravel() for a in agree])))
    return record


def reference_predictor(artifact: Artifact, allow_import: Iterable[str]) -> Any:
    """The class when the user allowed it, else the stored program, else the ONNX graph itself."""
    from torchship.runtime import load_predictor

    arch = artifact.manifest.architecture
    if arch is not None and (arch.name is not None or arch.import_path in set(allow_import)):
        return load_predictor(artifact, "eager", warmup=0, allow_import=allow_import)
    if "exported" in artifact.manifest.exports:
        return load_predictor(artifact, "exported", warmup=0)
    return None


def program_of(artifact: Artifact, allow_import: Iterable[str]) -> torch.export.ExportedProgram:
    """The stored ``model.pt2``, or a fresh capture of the class (dims as the signature names them)."""
    if "exported" in artifact.manifest.exports:
        from torchship.importer.sources import load_program
        from torchship.runtime.base import export_file

        return load_program(export_file(artifact, "exported"))
    from torchship.importer.program import capture

    if artifact.manifest.architecture is None:
        raise ExportError(
            f"{artifact.manifest.name} has neither a PyTorch program nor a class to export from",
            fix="it is ONNX-only: export --format triton packages its ONNX graph",
        )
    sig = artifact.manifest.signature
    specs = [s.model_dump() for s in sig.inputs]
    return capture(signature_module(artifact, allow_import), example_args(sig), specs)


def example_args(signature: Signature) -> tuple[torch.Tensor, ...]:
    """The signature's inputs in order, at batch 5 and the second size of every named dim."""
    feeds = parity_feeds(signature)[1]
    return tuple(torch.from_numpy(feeds[n]) for n in signature.input_names)


def signature_module(
    artifact: Artifact, allow_import: Iterable[str], fmt: str | None = None
) -> torch.nn.Module:
    """The model's class wrapped to take the signature's inputs in order and return a tuple.

    Raises:
        ExportError: If the artifact has no class here (a program-only import, or an import
            path the user did not allow), naming what ``fmt`` needs.
    """
    from torchship.models.calling import SignatureModule

    m = artifact.manifest
    arch = m.architecture
    needs = f"{fmt} export is traced from the model's PyTorch class" if fmt else "export needs the class"
    if arch is None:
        instead = "exported,aoti,triton" if "exported" in m.exports else "triton"
        raise ExportError(
            f"{needs}, and {m.name} was imported as a program only ({', '.join(m.exports) or 'no exports'})",
            fix=f"import it from its weights with --class pkg.mod:Class, or export --format {instead}",
        )
    if arch.name is None and arch.import_path not in set(allow_import):
        raise ExportError(
            f"{needs}, {arch.import_path}, which this command was not allowed to import",
            fix=f"pass --allow-import {arch.import_path}",
        )
    model = artifact.build_model(allow_import)
    return SignatureModule(model, m.signature.input_names, arch.call == "keyword").eval()


def export_onnx_signed(
    program: torch.export.ExportedProgram, signature: Signature, path: Path, opset: int
) -> None:
    """Translate ``program`` to ONNX at ``path``; dynamic axes named as the signature names them.

    Raises:
        ExportError: Naming the op without an ONNX translation, or the checker's complaint.
    """
    onnx = require("onnx", "onnx")
    require("onnxscript", "onnx")
    if opset < MIN_OPSET:
        raise ExportError(f"ONNX opset {opset} is too old", fix=f"use --opset {MIN_OPSET} or newer")
    args = example_args(signature)
    try:
        with _quiet_exporter():
            onnx_program = torch.onnx.export(
                program,
                args,
                input_names=signature.input_names,
                output_names=signature.output_names,
                opset_version=opset,
                dynamo=True,
                external_data=False,
                optimize=True,
                verbose=False,
            )
    except Exception as exc:  # the exporter raises OnnxExporterError, ConversionError, ...
        raise ExportError(
            f"cannot export {signature.input_names} -> {signature.output_names} to ONNX: "
            f"{failure_summary(exc)}",
            fix="replace that op in the model, or export --format exported",
        ) from exc
    model = onnx_program.model_proto
    name_dynamic_axes(model, signature)
    onnx.save_model(model, str(path))
    try:
        onnx.checker.check_model(str(path), full_check=True)
    except onnx.checker.ValidationError as exc:
        raise ExportError(f"onnx.checker rejects the exported model ({str(exc).splitlines()[0]})") from None


def name_dynamic_axes(model: Any, signature: Signature) -> None:
    """Give every symbolic axis the signature's dim name (``batch``, ``seq``) in place of ``s53``."""
    symbols: dict[str, str] = {}
    graph_io = {v.name: v for v in [*model.graph.input, *model.graph.output]}
    for spec in [*signature.inputs, *signature.outputs]:
        value = graph_io.get(spec.name)
        if value is None:
            continue
        for axis, dim in enumerate(value.type.tensor_type.shape.dim):
            want = spec.shape[axis] if axis < len(spec.shape) else None
            if isinstance(want, str) and dim.dim_param:
                symbols.setdefault(dim.dim_param, want)
    for value in [*model.graph.input, *model.graph.output, *model.graph.value_info]:
        for dim in value.type.tensor_type.shape.dim:
            if dim.dim_param in symbols:
                dim.dim_param = symbols[dim.dim_param]


def export_signed(
    artifact: Artifact,
    names: list[str],
    dest: Path,
    *,
    tolerance: float | Mapping[str, float] | None,
    opset: int,
    max_batch_size: int,
    device: str,
    allow_import: Iterable[str],
) -> Artifact:
    """Export a signature-described artifact to ``names`` (onnx, exported, triton), verified per output.

    Raises:
        ExportError: An unsupported format for such a model, or a failed translation.
        ExportParityError: An export whose outputs differ from the reference beyond the tolerance.
    """
    unsupported = [n for n in names if n not in SIGNED_FORMATS]
    if unsupported:
        raise ExportError(
            f"{', '.join(unsupported)} export is not available for {artifact.manifest.name} "
            f"(inputs {', '.join(artifact.manifest.signature.input_names)})",
            fix=f"export one of: {', '.join(SIGNED_FORMATS)}",
        )
    from torchship.runtime.auto import int8_programs

    int8 = int8_programs(artifact)
    has_onnx = "onnx" in artifact.manifest.exports or bool(int8)
    if "onnx" in names and (
        artifact.manifest.architecture is None and "exported" not in artifact.manifest.exports or int8
    ):
        if "triton" not in names:
            raise ExportError(
                f"{artifact.manifest.name} already holds its ONNX program and nothing to re-export it from",
                fix="export --format triton packages it",
            )
        names = [n for n in names if n != "onnx"]
    if int8 and set(FROM_PYTORCH) & set(names):
        raise ExportError(
            f"{artifact.manifest.name} is an int8 artifact; only its ONNX program runs it",
            fix="export --format triton",
        )
    sig = artifact.manifest.signature
    reference = reference_predictor(artifact, allow_import)
    feeds = parity_feeds(sig)
    ref_out = [reference.run(f) for f in feeds] if reference is not None else None
    dest.mkdir(parents=True, exist_ok=True)
    records: dict[str, dict[str, Any]] = {}
    extra: dict[str, Path] = {}
    with tempfile.TemporaryDirectory(prefix=".export-", dir=dest) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        staging = Path(tmp)
        program = program_of(artifact, allow_import) if ({"onnx", "exported", "aoti"} & set(names)) else None
        if "torchscript" in names:
            from torchship.export.torchscript import FILE as TS_FILE
            from torchship.export.torchscript import save_traced

            module = signature_module(artifact, allow_import, "torchscript")
            save_traced(module, example_args(sig), staging / TS_FILE, artifact.manifest.name)
            extra[TS_FILE] = staging / TS_FILE
            records["torchscript"] = {
                "file": TS_FILE,
                "method": "trace",
                "frozen": True,
                "optimize_for_inference": "on load",
            }
            records["torchscript"].update(
                _verify(staging / TS_FILE, "torchscript", artifact, feeds, ref_out, tolerance)
            )
        if "aoti" in names:
            from torchship.export.aoti import FILE as AOTI_FILE
            from torchship.export.aoti import compile_package

            compile_package(program, staging / AOTI_FILE, artifact.manifest.name, device)
            extra[AOTI_FILE] = staging / AOTI_FILE
            records["aoti"] = {
                "file": AOTI_FILE,
                "dynamic_batch": True,
                "device": device,
                "torch": torch.__version__,
            }
            records["aoti"].update(_verify(staging / AOTI_FILE, "aoti", artifact, feeds, ref_out, tolerance))
        if "exported" in names:
            torch.export.save(program, str(staging / "model.pt2"))
            extra["model.pt2"] = staging / "model.pt2"
            records["exported"] = {"file": "model.pt2", "dynamic_batch": True, "torch": torch.__version__}
            records["exported"].update(
                _verify(staging / "model.pt2", "exported", artifact, feeds, ref_out, tolerance)
            )
        if "onnx" in names:
            export_onnx_signed(program, sig, staging / ONNX_FILE, opset)
            extra[ONNX_FILE] = staging / ONNX_FILE
            records["onnx"] = {
                "file": ONNX_FILE,
                "opset": opset,
                "inputs": sig.input_names,
                "outputs": sig.output_names,
                "dynamic_axes": _dynamic_axes(sig),
            }
            records["onnx"].update(_verify(staging / ONNX_FILE, "onnx", artifact, feeds, ref_out, tolerance))
        if "triton" in names:
            from torchship.export.triton import write_repository

            if ONNX_FILE in extra:
                onnx_path, fmt = extra[ONNX_FILE], "onnx"
            elif has_onnx:
                from torchship.runtime.onnxruntime import onnx_file

                onnx_path, fmt = onnx_file(artifact), ("onnx-int8" if int8 else "onnx")
            else:
                raise ExportError(
                    "the triton format packages an ONNX program", fix="export --format onnx,triton"
                )
            files, record = write_repository(artifact, onnx_path, staging, max_batch_size, device)
            record["verified_by"] = fmt
            extra.update(files)
            records["triton"] = record
        exports = {**artifact.manifest.exports, **records}
        return artifact.with_manifest(exports=exports).save(dest, extra_files=extra)


def _dynamic_axes(sig: Signature) -> dict[str, dict[str, str]]:
    return {
        t.name: {str(i): d for i, d in t.dynamic.items()} for t in [*sig.inputs, *sig.outputs] if t.dynamic
    }


def _verify(
    path: Path,
    fmt: str,
    artifact: Artifact,
    feeds: list[dict[str, np.ndarray]],
    reference: list[dict[str, np.ndarray]] | None,
    tolerance: float | Mapping[str, float] | None,
) -> dict[str, Any]:
    from torchship.runtime.base import RuntimeOptions

    sig = artifact.manifest.signature
    if fmt == "onnx":
        from torchship.runtime.onnxruntime import OnnxRuntimePredictor

        predictor: Any = OnnxRuntimePredictor(path, RuntimeOptions(), None)
    elif fmt == "torchscript":
        from torchship.runtime.torchscript import TorchScriptPredictor

        predictor = TorchScriptPredictor(path, RuntimeOptions(), None, signature=sig)
    elif fmt == "aoti":
        from torchship.runtime.aoti import AotiPredictor

        predictor = AotiPredictor(path, RuntimeOptions(), None, sig)
    else:
        from torchship.runtime.exported import ExportedPredictor

        predictor = ExportedPredictor(path, RuntimeOptions(), None, sig)
    candidate = [predictor.run(f) for f in feeds]
    predictor.close()
    if reference is None:
        return {"verified": False}
    record = compare_outputs(artifact.manifest.signature, artifact.manifest.task, reference, candidate)
    limit = (
        tolerance.get(fmt, DEFAULT_TOLERANCE)
        if isinstance(tolerance, Mapping)
        else (tolerance or DEFAULT_TOLERANCE)
    )
    if not record["max_abs_diff"] <= limit:
        worst = max(record["outputs"], key=lambda k: record["outputs"][k]["max_abs_diff"])
        raise ExportParityError(
            f"{fmt} export differs from the reference: output {worst} max |Δ| "
            f"{record['max_abs_diff']:.3g} > tolerance {limit:.3g}; nothing was written",
            fix="pass --tolerance if this difference is acceptable",
        )
    return {**record, "tolerance": limit}


def uses_signature(artifact: Artifact) -> bool:
    """Whether ``artifact`` needs this path: not one float input to one output of a zoo/class model."""
    from torchship.runtime.base import legacy_shape

    m = artifact.manifest
    return (
        m.architecture is None
        or m.architecture.call == "keyword"
        or len(m.signature.outputs) != 1
        or legacy_shape(artifact) is None
        or BATCH not in m.signature.inputs[0].shape[:1]
        or m.lineage.op == "import"
    )
