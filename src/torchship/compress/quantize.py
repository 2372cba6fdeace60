"""int8 quantization: ONNX Runtime static/dynamic, or PyTorch 2 export (torchao pt2e, with optional QAT).

``static`` exports the fp32 ONNX graph (through :mod:`torchship.export`, parity-checked),
runs onnxruntime's pre-processing (shape inference + graph optimization), calibrates on a
seeded sample of the **training** split (``calibration_size`` inputs, minmax / entropy /
percentile) and writes a QDQ graph: uint8 activations, int8 per-channel weights (the x86
u8s8 kernels). ``dynamic`` quantizes MatMul/Gemm weights only; ONNX Runtime has no CPU
kernel for a dynamically quantized Conv, so convolutions always stay float there.

With ``max_accuracy_drop`` the result is judged on the validation split against the fp32
graph; when it loses more, each quantized node is measured alone (accuracy drop and logit
MSE when only it is int8) and the most sensitive nodes are kept float, one at a time, until
the drop fits. ``params.float_nodes`` names every node left in float and why.

``pt2e`` captures the model with torch.export, quantizes it with torchao's
``X86InductorQuantizer`` (static, per-channel, histogram observers), optionally after
``qat_epochs`` of quantization-aware training through the training engine, and saves the
converted program as ``model.int8.pt2`` (JSON + raw tensors, no pickle). It runs in the
``exported`` runtime; wrapped in ``torch.compile`` Inductor lowers it to int8 kernels.
"""

from __future__ import annotations

import contextlib
import io
import logging
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from pydantic import Field, NonNegativeInt, PositiveInt, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError
from rich.console import Console

from torchship.artifact import Artifact
from torchship.compress.base import CompressError, Finetune, Strict, check_out, register
from torchship.compress.finetune import finetune, work_dir
from torchship.compress.measure import ValData, load_val, model_stats, val_metrics
from torchship.errors import require
from torchship.runtime.onnxruntime import INT8_EXPORT  # the int8 graph's key, preferred by the runtime
from torchship.train.metrics import evaluate_logits

ONNX_FP32 = "model.onnx"
ONNX_INT8 = "model.int8.onnx"
PT2_INT8 = "model.int8.pt2"
DYNAMIC_OPS = ("MatMul", "Gemm")
STATIC_OPS = ("Conv", "ConvTranspose", "MatMul", "Gemm")
_CALIBRATION_BATCH = 32


class QuantizeConfig(Strict):
    """Which int8 flavour, how to calibrate it, and how much accuracy it may cost."""

    mode: Literal["static", "dynamic", "pt2e"] = "static"
    calibration: Literal["minmax", "entropy", "percentile"] | None = Field(
        default=None, description="static only; default minmax"
    )
    calibration_size: PositiveInt = Field(default=256, description="training-split inputs to calibrate on")
    per_channel: bool = True
    max_accuracy_drop: float | None = Field(
        default=None,
        ge=0.0,
        le=1.0,
        description="keep sensitive layers float until val accuracy drops at most this",
    )
    qat_epochs: NonNegativeInt = Field(default=0, description="pt2e only: quantization-aware training epochs")
    finetune: Finetune = Field(default_factory=lambda: Finetune(lr=1e-4), description="QAT settings")
    data: str | dict[str, Any] | None = None

    @field_validator("calibration")
    @classmethod
    def _static_only(cls, value: str | None, info: ValidationInfo) -> str | None:
        mode = info.data.get("mode")
        if value is not None and mode != "static":
            how = "calibrates at run time" if mode == "dynamic" else "uses histogram observers"
            raise PydanticCustomError(
                "mode", "applies to --mode static only ({mode} {how})", {"mode": mode, "how": how}
            )
        return value

    @field_validator("qat_epochs")
    @classmethod
    def _pt2e_only(cls, value: int, info: ValidationInfo) -> int:
        if value and info.data.get("mode") != "pt2e":
            raise PydanticCustomError("mode", "quantization-aware training runs on --mode pt2e only", {})
        return value


@register("quantize", QuantizeConfig)
def quantize(
    artifact: Artifact,
    cfg: QuantizeConfig | None = None,
    *,
    out: str | Path,
    allow_import: Iterable[str] = (),
    console: Console | None = None,
) -> Artifact:
    """Quantize to int8, re-measure on the validation split, and save a child artifact of ``artifact``.

    Raises:
        CompressError: The model has nothing this mode can quantize, or the accuracy budget
            cannot be met even with layers kept float.
        DependencyError: onnxruntime (``onnx`` extra) or torchao (``compress`` extra) is missing.

    Example:
        >>> child = quantize(parent, QuantizeConfig(mode="static"), out=tmp / "int8")  # doctest: +SKIP
    """
    cfg = cfg or QuantizeConfig()
    target = check_out(out, artifact)
    if artifact.manifest.lineage.op == "quantize":
        mode = artifact.manifest.lineage.params.get("mode")
        raise CompressError(
            f"{artifact.manifest.name} is already int8 ({mode})",
            fix="quantize its float parent instead (lineage.parent)",
        )
    if artifact.manifest.encryption is not None:
        # ONNX Runtime's quantizer reads and writes graphs as files: it would put the model on disk in clear
        raise CompressError(
            f"{artifact.manifest.name} is encrypted and quantization works on files on disk",
            fix="quantize the clear artifact, then torchship encrypt the result",
        )
    allowed = tuple(allow_import)
    from torchship.export.signed import uses_signature

    if uses_signature(artifact) and cfg.data is None:
        target.parent.mkdir(parents=True, exist_ok=True)
        from torchship.compress.quantize_signed import quantize_signed

        with tempfile.TemporaryDirectory(prefix=".quantize-", dir=target.parent) as tmp:
            return quantize_signed(artifact, cfg.mode, cfg.per_channel, Path(tmp), target, allowed)
    val = load_val(artifact, cfg.data)
    calib = calibration_inputs(artifact, val, cfg.calibration_size)
    # scratch beside the run directory (OUT/..), so a refused quantization leaves no OUT behind
    scratch = target.parent.parent
    scratch.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".quantize-", dir=scratch) as tmp:
        if cfg.mode == "pt2e":
            return _quantize_pt2e(artifact, cfg, Path(tmp), target, val, calib, allowed, console)
        return _quantize_onnx(artifact, cfg, Path(tmp), target, val, calib, allowed)


def calibration_inputs(artifact: Artifact, val: ValData, size: int, seed: int = 0) -> np.ndarray:
    """A seeded sample of ``size`` training-split inputs (all when fewer), normalized for ``artifact``."""
    x = val.dataset.train.x  # preprocessed for ``artifact`` by load_val
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))[:size]
    return np.ascontiguousarray(x[order].numpy(), dtype=np.float32)


# ------------------------------------------------------------------------------ ONNX Runtime
def _quantize_onnx(
    artifact: Artifact,
    cfg: QuantizeConfig,
    tmp: Path,
    target: Path,
    val: ValData,
    calib: np.ndarray,
    allowed: tuple[str, ...],
) -> Artifact:
    require("onnxruntime", "onnx")
    from torchship.export import export

    exported = export(artifact, ["onnx"], out=tmp / "fp32", allow_import=allowed)
    fp32_path = exported.file(ONNX_FP32)
    graph = _preprocess(fp32_path, tmp / "pre.onnx")
    quantizable = _nodes(graph, DYNAMIC_OPS if cfg.mode == "dynamic" else STATIC_OPS)
    float_nodes = _unquantizable(graph, cfg.mode)
    if not quantizable:
        raise CompressError(
            f"{artifact.manifest.name} has no {'/'.join(DYNAMIC_OPS)} node for dynamic int8"
            if cfg.mode == "dynamic"
            else f"{artifact.manifest.name} has no Conv/MatMul/Gemm node to quantize",
            fix="use --mode static for convolutional models (ONNX Runtime has no dynamic int8 Conv on CPU)"
            if cfg.mode == "dynamic"
            else "quantization only pays off for conv and linear layers",
        )
    judge = _Judge(fp32_path, val)
    job = _OnnxJob(cfg, graph, calib, tmp)
    q_path = job.run(excluded=[])
    scores = judge.score(q_path)
    fallback: dict[str, Any] = {}
    if cfg.max_accuracy_drop is not None and scores["drop"] > cfg.max_accuracy_drop + 1e-6:
        q_path, scores, fallback = _fall_back(
            job, judge, quantizable, scores, cfg.max_accuracy_drop, artifact.manifest.name
        )
        float_nodes.update({n: "accuracy budget (most sensitive)" for n in fallback["kept_float"]})
    shape = artifact.manifest.input.shape
    model = artifact.build_model(allowed)
    stats = model_stats(model, shape, {"accuracy": judge.fp32_accuracy})
    record = {
        "file": ONNX_INT8,
        "precision": "int8",
        "mode": cfg.mode,
        "format": "QDQ" if cfg.mode == "static" else "QOperator",
        "activations": "uint8" if cfg.mode == "static" else "uint8, quantized at run time",
        "weights": "int8 per-channel" if cfg.per_channel else "int8 per-tensor",
        "quantized_nodes": [n for n in quantizable if n not in float_nodes],
        "float_nodes": float_nodes,
        "max_abs_diff": scores["max_abs_diff"],
        "top1_agreement": scores["top1_agreement"],
        "samples": len(val.x),
        "reference": "fp32 ONNX Runtime, validation split",
    }
    params = cfg.model_dump(mode="json") | {
        "backend": "onnxruntime",
        "calibration": _calibration_name(cfg),
        "calibration_size": len(calib) if cfg.mode == "static" else 0,
        "calibration_split": "train" if cfg.mode == "static" else None,
        "float_nodes": float_nodes,
        "fallback": fallback,
        "accuracy_drop": scores["drop"],
        "report": {
            "fp32 onnx": stats | {"weights_bytes": fp32_path.stat().st_size},
            "int8 onnx": stats
            | {"weights_bytes": q_path.stat().st_size, "val_accuracy": scores["metrics"]["accuracy"]},
        },
    }
    exports = {"onnx": exported.manifest.exports["onnx"], INT8_EXPORT: record}
    metrics = {**artifact.manifest.metrics, "val": scores["metrics"]}
    child = artifact.derive(op="quantize", params=params, metrics=metrics, exports=exports)
    return child.save(target, extra_files={ONNX_FP32: fp32_path, ONNX_INT8: q_path})


def _calibration_name(cfg: QuantizeConfig) -> str | None:
    if cfg.mode == "static":
        return cfg.calibration or "minmax"
    return "histogram observers" if cfg.mode == "pt2e" else None


def _preprocess(src: Path, dst: Path) -> Any:
    """onnxruntime's quantization pre-processing (symbolic shape inference, graph optimization)."""
    import onnx
    from onnxruntime.quantization.shape_inference import quant_pre_process

    src, dst = src.resolve(), dst.resolve()
    try:
        # when symbolic shape inference is incomplete, ORT dumps the graph (and its external data)
        # into the working directory before raising: keep that litter in our scratch folder
        with _quiet(), contextlib.chdir(dst.parent):
            quant_pre_process(str(src), str(dst))
        return onnx.load(str(dst))
    except Exception:  # noqa: BLE001 - pre-processing is an optimization; quantize the export as it is
        logging.getLogger(__name__).info("quant_pre_process failed; quantizing the export unprocessed")
        onnx.save(onnx.load(str(src)), str(dst))
        return onnx.load(str(dst))


def _nodes(graph: Any, op_types: tuple[str, ...]) -> list[str]:
    return [n.name for n in graph.graph.node if n.op_type in op_types]


def _unquantizable(graph: Any, mode: str) -> dict[str, str]:
    """Weighted nodes this mode leaves float by design (dynamic int8 Conv has no ORT CPU kernel)."""
    if mode != "dynamic":
        return {}
    return {
        n.name: "dynamic int8 Conv has no ONNX Runtime CPU kernel"
        for n in graph.graph.node
        if n.op_type in ("Conv", "ConvTranspose")
    }


class _OnnxJob:
    """One quantization setting; ``run(excluded)`` writes the graph with those nodes kept float."""

    def __init__(self, cfg: QuantizeConfig, graph: Any, calib: np.ndarray, tmp: Path):
        self.cfg, self.calib, self.tmp = cfg, calib, tmp
        self.source = tmp / "pre.onnx"
        self.count = 0

    def run(self, excluded: list[str], only: list[str] | None = None) -> Path:
        from onnxruntime.quantization import (
            CalibrationMethod,
            QuantFormat,
            QuantType,
            quantize_dynamic,
            quantize_static,
        )

        self.count += 1
        dst = self.tmp / f"int8-{self.count}.onnx"
        if self.cfg.mode == "dynamic":
            quantize_dynamic(
                str(self.source),
                str(dst),
                op_types_to_quantize=list(DYNAMIC_OPS),
                per_channel=self.cfg.per_channel,
                weight_type=QuantType.QInt8,
                nodes_to_quantize=only,
                nodes_to_exclude=excluded,
            )
            return dst
        method = {
            "minmax": CalibrationMethod.MinMax,
            "entropy": CalibrationMethod.Entropy,
            "percentile": CalibrationMethod.Percentile,
        }[self.cfg.calibration or "minmax"]
        with _quiet():  # the entropy/percentile calibrators print progress
            quantize_static(
                str(self.source),
                str(dst),
                _reader(self.calib),
                quant_format=QuantFormat.QDQ,
                op_types_to_quantize=list(STATIC_OPS),
                per_channel=self.cfg.per_channel,
                activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8,
                calibrate_method=method,
                nodes_to_quantize=only,
                nodes_to_exclude=excluded,
                calibration_providers=["CPUExecutionProvider"],
            )
        return dst


def _reader(x: np.ndarray) -> Any:
    """A ``CalibrationDataReader`` feeding ``x`` in batches of 32."""
    from onnxruntime.quantization import CalibrationDataReader

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            step = _CALIBRATION_BATCH
            self.batches = iter([{"input": x[i : i + step]} for i in range(0, len(x), step)])

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self.batches, None)

    return Reader()


class _Judge:
    """Scores an int8 graph against the fp32 one on the validation split."""

    def __init__(self, fp32: Path, val: ValData):
        self.val = val
        self.fp32_logits = self.logits(fp32)
        self.fp32_accuracy = float((self.fp32_logits.argmax(1) == val.y.numpy()).mean())

    def logits(self, path: Path) -> np.ndarray:
        from torchship.runtime.base import RuntimeOptions
        from torchship.runtime.onnxruntime import OnnxRuntimePredictor

        predictor = OnnxRuntimePredictor(path, RuntimeOptions(), list(self.val.x.shape[1:]))
        try:
            return np.concatenate(
                [predictor.predict(self.val.x[i : i + 512].numpy()) for i in range(0, len(self.val.x), 512)]
            )
        finally:
            predictor.close()

    def score(self, path: Path) -> dict[str, Any]:
        logits = self.logits(path)
        metrics, _ = evaluate_logits(
            lambda t: t, torch.from_numpy(logits), self.val.y, self.val.dataset.num_classes
        )
        accuracy = float((logits.argmax(1) == self.val.y.numpy()).mean())
        return {
            "metrics": metrics,
            "drop": self.fp32_accuracy - accuracy,
            "mse": float(((logits - self.fp32_logits) ** 2).mean()),
            "max_abs_diff": float(np.abs(logits - self.fp32_logits).max()),
            "top1_agreement": float((logits.argmax(1) == self.fp32_logits.argmax(1)).mean()),
        }


def _fall_back(
    job: _OnnxJob, judge: _Judge, nodes: list[str], scores: dict[str, Any], budget: float, name: str
) -> tuple[Path, dict[str, Any], dict[str, Any]]:
    """Keep the most sensitive nodes float, greedily, until the accuracy drop fits ``budget``."""
    sensitivity = {}
    for node in nodes:
        alone = judge.score(job.run(excluded=[], only=[node]))
        sensitivity[node] = {"accuracy_drop": round(alone["drop"], 6), "mse": alone["mse"]}
    order = sorted(
        nodes, key=lambda n: (sensitivity[n]["accuracy_drop"], sensitivity[n]["mse"]), reverse=True
    )
    steps = [{"kept_float": [], "accuracy_drop": scores["drop"]}]
    for count in range(1, len(order)):
        kept = order[:count]
        path = job.run(excluded=kept)
        scores = judge.score(path)
        steps.append({"kept_float": kept, "accuracy_drop": scores["drop"]})
        if scores["drop"] <= budget + 1e-6:
            return path, scores, {"kept_float": kept, "sensitivity": sensitivity, "steps": steps}
    raise CompressError(
        f"int8 {name} loses {steps[-1]['accuracy_drop']:.2%} accuracy even with {len(order) - 1} of "
        f"{len(order)} layers kept float (budget {budget:.2%})",
        fix="raise --max-accuracy-drop, try another --calibration, or quantization-aware training "
        "(--mode pt2e --qat-epochs N)",
    )


@contextlib.contextmanager
def _quiet():
    with contextlib.redirect_stdout(io.StringIO()):
        yield


# ------------------------------------------------------------------------------ torchao pt2e
def _torchao() -> dict[str, Any]:
    """torchao's pt2e entry points, imported with its optional-kernel load warnings silenced."""
    loggers = [logging.getLogger(n) for n in ("torchao", "torch.utils._pytree")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        require("torchao", "compress")
        from torchao.quantization.pt2e import move_exported_model_to_eval, move_exported_model_to_train
        from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e, prepare_qat_pt2e
        from torchao.quantization.pt2e.quantizer import x86_inductor_quantizer as x86
    finally:
        for lg, level in zip(loggers, levels, strict=False):
            lg.setLevel(level)
    return {
        "prepare": prepare_pt2e,
        "prepare_qat": prepare_qat_pt2e,
        "convert": convert_pt2e,
        "x86": x86,
        "to_train": move_exported_model_to_train,
        "to_eval": move_exported_model_to_eval,
    }


def _quantize_pt2e(
    artifact: Artifact,
    cfg: QuantizeConfig,
    tmp: Path,
    target: Path,
    val: ValData,
    calib: np.ndarray,
    allowed: tuple[str, ...],
    console: Console | None,
) -> Artifact:
    from torchship.export.capture import batch_dim, capture_program
    from torchship.runtime.base import RuntimeOptions
    from torchship.runtime.exported import ExportedPredictor, check_pt2_without_pickles

    ao = _torchao()
    model = artifact.build_model(allowed)
    shape = artifact.manifest.input.shape
    before = model_stats(model, shape, val_metrics(model, val))
    # two samples at least, so torch.export does not specialise the batch dimension to 1
    example = torch.from_numpy(np.resize(calib[:2], (2, *calib.shape[1:])).copy())
    qat = cfg.qat_epochs > 0
    quantizer = ao["x86"].X86InductorQuantizer()
    quantizer.set_global(ao["x86"].get_default_x86_inductor_quantization_config(is_qat=qat))
    # QAT captures batch norm and dropout in training form; prepare_qat_pt2e folds conv + bn for training
    graph = _capture(model.train(qat), example, capture_program, batch_dim).module()
    model.eval()
    params = cfg.model_dump(mode="json") | {
        "backend": "torchao pt2e (X86InductorQuantizer)",
        "calibration": _calibration_name(cfg),
    }
    curves: list[dict[str, Any]] = []
    if qat:
        prepared = ao["prepare_qat"](graph, quantizer)
        arch = artifact.manifest.architecture.model_dump(by_alias=True, exclude_none=True)
        with work_dir(cfg.finetune) as root:
            tuned = finetune(
                _Trainable(prepared, ao),
                arch,
                parent=artifact,
                data=val.config,
                settings=cfg.finetune,
                epochs=cfg.qat_epochs,
                out=root / "qat",
                op="quantize",
                params=params,
                console=console,
            )
        curves = tuned.manifest.curves
        ao["to_eval"](prepared)
        model = _float_weights(model, prepared)
    else:
        prepared = ao["prepare"](graph, quantizer)
        with torch.no_grad():
            for start in range(0, len(calib), _CALIBRATION_BATCH):
                prepared(torch.from_numpy(calib[start : start + _CALIBRATION_BATCH]))
    converted = _drop_unused_(ao["convert"](prepared))
    program = torch.export.export(converted, (example,), dynamic_shapes=({0: batch_dim()},), strict=False)
    path = tmp / PT2_INT8
    torch.export.save(program, str(path))
    check_pt2_without_pickles(path)
    predictor = ExportedPredictor(path, RuntimeOptions(), shape)
    try:
        metrics, _ = evaluate_logits(
            lambda xb: torch.from_numpy(predictor.predict(xb.numpy())), val.x, val.y, val.dataset.num_classes
        )
        fp32_logits = model(val.x).detach().numpy() if not qat else None
        int8_logits = predictor.predict(val.x.numpy())
    finally:
        predictor.close()
    drop = before["val_accuracy"] - metrics["accuracy"]
    if cfg.max_accuracy_drop is not None and drop > cfg.max_accuracy_drop + 1e-6:
        raise CompressError(
            f"pt2e int8 {artifact.manifest.name} loses {drop:.2%} accuracy "
            f"(budget {cfg.max_accuracy_drop:.2%})",
            fix="add --qat-epochs N, or use --mode static, which keeps the most sensitive layers float",
        )
    record = {
        "file": PT2_INT8,
        "precision": "int8",
        "mode": "pt2e",
        "dynamic_batch": True,
        "quantizer": "X86InductorQuantizer",
        "torch": torch.__version__,
    }
    if fp32_logits is not None:
        record.update(
            max_abs_diff=float(np.abs(int8_logits - fp32_logits).max()),
            top1_agreement=float((int8_logits.argmax(1) == fp32_logits.argmax(1)).mean()),
        )
    params |= {
        "calibration_size": 0 if qat else len(calib),
        "calibration_split": None if qat else "train",
        "float_nodes": {},
        "accuracy_drop": drop,
        "report": {
            "parent": before,
            "int8 pt2e": before | {"weights_bytes": path.stat().st_size, "val_accuracy": metrics["accuracy"]},
        },
    }
    child = artifact.derive(
        op="quantize",
        params=params,
        model=model,
        exports={"exported": record},
        metrics={**artifact.manifest.metrics, "val": metrics},
        **({"curves": curves} if curves else {}),
    )
    return child.save(target, extra_files={PT2_INT8: path})


def _capture(model: torch.nn.Module, example: torch.Tensor, capture_program: Any, batch_dim: Any) -> Any:
    """torch.export in strict mode, else torchship's non-strict capture.

    The x86 quantizer matches conv + add + relu by the module each op came from; a strict
    trace gives every call of a reused module (a residual block's one ``self.relu``) its
    own partition, a non-strict one merges them and the quantizer refuses the graph.
    """
    try:
        return torch.export.export(model, (example,), dynamic_shapes=({0: batch_dim()},), strict=True)
    except Exception:  # noqa: BLE001 - dynamo cannot trace everything; the non-strict path reports failures
        return capture_program(model, example)


def _drop_unused_(graph: torch.fx.GraphModule) -> torch.fx.GraphModule:
    """Delete the float weights the converted graph no longer reads (it reads their int8 copies)."""
    used = {node.target for node in graph.graph.nodes if node.op == "get_attr"}
    for name in [n for n, _ in [*graph.named_parameters(), *graph.named_buffers()] if n not in used]:
        owner, _, leaf = name.rpartition(".")
        delattr(graph.get_submodule(owner) if owner else graph, leaf)
    return graph


def _float_weights(model: torch.nn.Module, prepared: torch.nn.Module) -> torch.nn.Module:
    """Copy the QAT-trained float weights back into the zoo model (weights.safetensors stays rebuildable)."""
    trained = prepared.state_dict()
    own = model.state_dict()
    matching = {k: v for k, v in trained.items() if k in own and v.shape == own[k].shape}
    model.load_state_dict(matching, strict=False)
    return model.eval()


class _Trainable(torch.nn.Module):
    """An exported QAT graph that the training engine can switch with ``train()``/``eval()``.

    An exported graph ignores ``Module.train``; torchao swaps its batch-norm and dropout ops instead.
    """

    def __init__(self, graph: torch.nn.Module, ao: dict[str, Any]):
        super().__init__()
        self.graph = graph
        self._ao = ao

    def train(self, mode: bool = True) -> _Trainable:
        self._ao["to_train" if mode else "to_eval"](self.graph)
        self.training = mode
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.graph(x)
