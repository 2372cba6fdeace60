"""``export``: make each requested format, verify it against eager PyTorch, then write them all.

Nothing is written into the artifact until every format has passed parity: a refused export
leaves the artifact as it was.
"""

from __future__ import annotations

import tempfile
import warnings
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from torchship.artifact import RUN_ARTIFACT, Artifact
from torchship.export.base import FORMAT_ORDER, ExportContext, ExportError, ExportOptions, exporters
from torchship.export.parity import DEFAULT_TOLERANCE, TOLERANCES, check, compare, parity_inputs, run_chunked
from torchship.output import make_dirs

PARITY_KEYS = ("max_abs_diff", "mean_abs_diff", "top1_agreement", "samples", "tolerance", "samples_source")


def resolve_formats(formats: str | Iterable[str]) -> list[str]:
    """Validate format names (``"onnx,triton"`` or a list) and put them in production order.

    ``triton`` packages the ONNX export, so asking for it exports ONNX too.

    Raises:
        ExportError: For an unknown format, listing the known ones.
    """
    names = (
        [f.strip() for f in formats.split(",")] if isinstance(formats, str) else [f.strip() for f in formats]
    )
    names = [n for n in names if n]
    if not names:
        raise ExportError("no export format given", fix=f"choose from: {', '.join(FORMAT_ORDER)}")
    for name in names:
        exporters.get(name)
    if "triton" in names and "onnx" not in names:
        names.append("onnx")
    order = {name: i for i, name in enumerate(FORMAT_ORDER)}
    return sorted(set(names), key=lambda n: (order.get(n, len(order)), n))


def export(
    artifact: Artifact,
    formats: str | Iterable[str] = ("onnx",),
    out: str | Path | None = None,
    *,
    tolerance: float | Mapping[str, float] | None = None,
    data: Any = None,
    slim: bool = True,
    opset: int = 18,
    max_batch_size: int = 64,
    max_samples: int = 256,
    device: str = "cpu",
    allow_import: Iterable[str] = (),
    progress: Callable[[str], None] | None = None,
) -> Artifact:
    """Export ``artifact`` to ``formats``, verify each against eager PyTorch, and save.

    Args:
        formats: Any of ``onnx``, ``torchscript``, ``exported``, ``aoti``, ``triton``.
        out: Run directory: the exported artifact goes to ``out/artifact``, as every command's
            ``-o`` puts it; ``None`` writes into the artifact's own directory.
        tolerance: Largest max |Δ| accepted (one number, or per format); default 1e-4 for fp32.
        data: Parity inputs: normalized inputs (array/tensor), ``NAME[:PATH]`` of a dataset
            (its validation split), a ``.npy`` file, ``"random"``, or ``None`` (the recorded
            dataset's validation split if the manifest names one, else seeded random inputs).
        slim: Simplify the ONNX graph with onnxslim.
        max_batch_size: The Triton configuration's ``max_batch_size``.
        max_samples: Parity runs on a seeded sample of at most this many inputs.
        allow_import: Bring-your-own model classes the user trusts (``pkg.mod:Class``).
        progress: Called with a short line as each step starts.

    Returns:
        The saved artifact, its manifest's ``exports`` holding each format's file and parity.

    Raises:
        ExportError: A format cannot be produced (the message names the failing op).
        ExportParityError: An export differs from eager by more than the tolerance.

    Example:
        >>> import tempfile
        >>> from torchship.testing import tiny_artifact
        >>> art = tiny_artifact("mlp", path=tempfile.mkdtemp())
        >>> art = export(art, ["torchscript"])
        >>> art.manifest.exports["torchscript"]["max_abs_diff"] <= 1e-4
        True
    """
    names = resolve_formats(formats)
    from torchship.export.signed import export_signed, uses_signature
    from torchship.runtime.auto import int8_programs

    int8 = next(iter(int8_programs(artifact)), None)
    int8_triton = int8 is not None and set(names) <= {"onnx", "triton"} and "triton" in names
    if uses_signature(artifact) or int8_triton:
        if out is None and artifact.path is None:
            raise ExportError(
                "the artifact has not been saved, so there is nowhere to write exports", fix="pass out=DIR"
            )
        dest = Path(out) / RUN_ARTIFACT if out is not None else Path(artifact.path)  # type: ignore[arg-type]
        return export_signed(
            artifact,
            names,
            dest,
            tolerance=tolerance,
            opset=opset,
            max_batch_size=max_batch_size,
            device=device,
            allow_import=allow_import,
        )
    if int8 is not None:
        raise ExportError(
            f"{artifact.manifest.name} is an int8 artifact ({int8}); exporting it would export the float "
            "weights it was quantized from, not the model it runs",
            fix="export the parent artifact, then quantize that export's artifact",
        )
    if out is None and artifact.path is None:
        raise ExportError(
            "the artifact has not been saved, so there is nowhere to write exports", fix="pass out=DIR"
        )
    dest = Path(out) / RUN_ARTIFACT if out is not None else Path(artifact.path)  # type: ignore[arg-type]
    from torchship.runtime import load_predictor

    report = progress or (lambda message: None)
    inputs = parity_inputs(artifact, data, max_samples=max_samples)
    report(f"eager reference on {len(inputs.x)} samples ({inputs.source})")
    eager = load_predictor(artifact, "eager", device=device, warmup=0, allow_import=allow_import)
    reference = run_chunked(eager, inputs.x)
    eager.close()
    model = artifact.build_model(allow_import).to(device).eval()
    # x: (2, *input.shape); two samples so torch.export does not specialise the batch to 1
    example = torch.from_numpy(np.resize(inputs.x[:2], (2, *inputs.x.shape[1:])).copy()).to(device)
    options = ExportOptions(opset=opset, slim=slim, max_batch_size=max_batch_size, device=device)
    make_dirs(dest)
    with tempfile.TemporaryDirectory(prefix=".export-", dir=dest) as staging, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ctx = ExportContext(artifact, model, example, Path(staging), options)
        records: dict[str, dict[str, Any]] = {}
        for name in names:
            report(f"{name}: exporting and verifying")
            records[name] = _produce_and_verify(ctx, name, reference, inputs, tolerance)
        extra_files = {file: path for staged in ctx.staged.values() for file, path in staged.files.items()}
        exports = {**artifact.manifest.exports, **records}
        return artifact.with_manifest(exports=exports).save(dest, extra_files=extra_files)


def _produce_and_verify(
    ctx: ExportContext,
    name: str,
    reference: np.ndarray,
    inputs: Any,
    tolerance: float | Mapping[str, float] | None,
) -> dict[str, Any]:
    staged = exporters.get(name)(ctx)
    ctx.staged[name] = staged
    if staged.predictor is None:
        verified_by = staged.record.get("verified_by")
        return {**staged.record, **{k: ctx.staged[verified_by].record[k] for k in PARITY_KEYS}}
    try:
        candidate = run_chunked(staged.predictor, inputs.x)
    finally:
        staged.predictor.close()
    parity = compare(reference, candidate)
    limit = _tolerance_for(name, tolerance)
    check(name, parity, limit)
    staged.record.update(parity.to_json(), tolerance=limit, samples_source=inputs.source)
    return staged.record


def _tolerance_for(name: str, tolerance: float | Mapping[str, float] | None) -> float:
    if tolerance is None:
        return TOLERANCES.get(name, DEFAULT_TOLERANCE)
    if isinstance(tolerance, Mapping):
        return float(tolerance.get(name, TOLERANCES.get(name, DEFAULT_TOLERANCE)))
    return float(tolerance)
