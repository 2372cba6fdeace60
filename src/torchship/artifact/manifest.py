"""The manifest: a typed, versioned description of an artifact.

``manifest.json`` says what the model is (architecture), how to feed it (input spec,
labels), how it was made (lineage), what it scored (metrics), what its inputs looked like
(reference statistics, for drift monitoring) and the sha256 of every file beside it.
Old schemas are upgraded by named functions (``_migrate_1_to_2``), never guessed from
missing keys.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, FiniteFloat, ValidationError, model_validator

from torchship.config import Frozen
from torchship.errors import ArtifactError

SCHEMA = 2


class Architecture(Frozen):
    """How to rebuild the model: a zoo name, or an import path the user must allow."""

    name: str | None = None
    import_path: str | None = Field(default=None, alias="import")
    kwargs: dict[str, Any] = Field(default_factory=dict)
    # how the module takes the signature's inputs: positionally, or by name (Hugging Face)
    call: Literal["positional", "keyword"] = "positional"

    model_config = ConfigDict(populate_by_name=True)

    @model_validator(mode="after")
    def _one_source(self) -> Architecture:
        if (self.name is None) == (self.import_path is None):
            raise ValueError("architecture needs exactly one of 'name' (zoo) or 'import' (pkg.module:Class)")
        return self

    def describe(self) -> str:
        return self.name if self.name else f"import {self.import_path}"


# preprocessing divides by scale's inverse and by std: zero or non-finite values make every input NaN
_Positive = Annotated[float, Field(gt=0, allow_inf_nan=False)]


class InputSpec(Frozen):
    """One sample's shape and preprocessing: model input = (raw * scale - mean) / std per channel.

    The schema-1 ``input`` block. Schema 2 keeps it only as a view of a signature input with
    image/feature normalization (``Manifest.input``), so stages written for it keep working.
    """

    shape: list[int]
    dtype: str = "float32"
    layout: Literal["image", "features"] = "image"
    scale: _Positive = 1.0 / 255.0
    mean: list[FiniteFloat]
    std: list[_Positive]

    @model_validator(mode="after")
    def _channels_match(self) -> InputSpec:
        if len(self.mean) != len(self.std):
            raise ValueError("input.mean and input.std must have the same length")
        return self


DType = Literal["float32", "float16", "bfloat16", "int64", "int32", "bool"]
FLOAT_DTYPES = ("float32", "float16", "bfloat16")
BATCH = "batch"


class Preprocessing(Frozen):
    """Normalization of one input: model input = (raw * scale - mean) / std per channel.

    ``kind`` says where the channels are: ``image`` (channels first after the batch) or
    ``features`` (one column per channel). It is what schema 1 called the input's layout.
    """

    kind: Literal["image", "features"]
    scale: float = 1.0 / 255.0
    mean: list[float]
    std: list[float]

    @model_validator(mode="after")
    def _usable(self) -> Preprocessing:
        if len(self.mean) != len(self.std):
            raise ValueError("preprocessing mean and std must have the same length")
        values = [self.scale, *self.mean, *self.std]
        if not all(math.isfinite(v) for v in values):
            raise ValueError("preprocessing scale, mean and std must be finite numbers (no NaN or inf)")
        if self.scale == 0 or any(v == 0 for v in self.std):
            raise ValueError("preprocessing scale and std must not be zero (it would divide by zero)")
        return self


class TensorSpec(Frozen):
    """One named tensor of the model's signature.

    ``shape`` is the whole shape, batch first; a string names a dynamic dimension
    (``["batch", "seq"]``), an integer is fixed. ``range`` is ``[low, high)`` for integer
    inputs (a vocabulary size), so tools can make valid example inputs.
    """

    name: str = Field(min_length=1)
    dtype: DType = "float32"
    shape: list[int | str]
    range: list[int] | None = None
    preprocessing: Preprocessing | None = None

    @model_validator(mode="after")
    def _consistent(self) -> TensorSpec:
        if not self.shape:
            raise ValueError(f"tensor {self.name!r} needs at least a batch dimension")
        if any(isinstance(d, int) and d < 1 for d in self.shape):
            raise ValueError(f"tensor {self.name!r} has a dimension below 1: {self.shape}")
        if self.range is not None and (len(self.range) != 2 or self.range[0] >= self.range[1]):
            raise ValueError(f"tensor {self.name!r} range must be [low, high) with low < high")
        if self.preprocessing is not None and self.dtype not in FLOAT_DTYPES:
            raise ValueError(f"tensor {self.name!r} is {self.dtype}; only float inputs take normalization")
        return self

    @property
    def dynamic(self) -> dict[int, str]:
        """Named dynamic dimensions by axis: ``{0: "batch", 1: "seq"}``."""
        return {i: d for i, d in enumerate(self.shape) if isinstance(d, str)}

    @property
    def is_float(self) -> bool:
        return self.dtype in FLOAT_DTYPES


class Signature(Frozen):
    """The model's named inputs and outputs, in the order the model takes and returns them."""

    inputs: list[TensorSpec] = Field(min_length=1)
    outputs: list[TensorSpec] = Field(min_length=1)
    # sizes of named dynamic dims used for example inputs (bench, export, warm-up): {"seq": 128}
    dims: dict[str, int] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _unique_names(self) -> Signature:
        for side in ("inputs", "outputs"):
            names = [t.name for t in getattr(self, side)]
            if len(set(names)) != len(names):
                raise ValueError(f"signature {side} names repeat: {names}")
        if any(t.preprocessing is not None or t.range is not None for t in self.outputs):
            raise ValueError("signature outputs take neither preprocessing nor range")
        return self

    def input(self, name: str) -> TensorSpec:
        return _named(self.inputs, name, "input")

    def output(self, name: str) -> TensorSpec:
        return _named(self.outputs, name, "output")

    @property
    def input_names(self) -> list[str]:
        return [t.name for t in self.inputs]

    @property
    def output_names(self) -> list[str]:
        return [t.name for t in self.outputs]


def _named(specs: list[TensorSpec], name: str, side: str) -> TensorSpec:
    for spec in specs:
        if spec.name == name:
            return spec
    raise KeyError(f"no {side} named {name!r}; the signature has {[s.name for s in specs]}")


def signature_from_input(spec: InputSpec | dict[str, Any], classes: int) -> dict[str, Any]:
    """The schema-2 signature of a one-input classifier described the schema-1 way."""
    spec = spec if isinstance(spec, InputSpec) else InputSpec.model_validate(spec)
    return {
        "inputs": [
            {
                "name": "input",
                "dtype": spec.dtype,
                "shape": [BATCH, *spec.shape],
                "preprocessing": {
                    "kind": spec.layout,
                    "scale": spec.scale,
                    "mean": spec.mean,
                    "std": spec.std,
                },
            }
        ],
        "outputs": [{"name": "logits", "dtype": "float32", "shape": [BATCH, classes]}],
    }


class Lineage(Frozen):
    """Which artifact and which operation produced this one."""

    parent: str | None = None
    # sha256 of the parent's signature file (model.sig) when the parent was signed, so a chain
    # of signed artifacts can be checked; the child itself is unsigned until signed again
    parent_signature: str | None = None
    op: str
    params: dict[str, Any] = Field(default_factory=dict)


class Bins(Frozen):
    """Interior bin edges at a tensor's reference deciles and the share of its values in each bin."""

    edges: list[float]
    freq: list[float]


class Reference(Frozen):
    """Statistics of the training inputs and predictions, for drift monitoring.

    A model described by its signature (imported, several inputs) gets ``named_inputs``
    (bins of every value of each float input), ``named_outputs`` (bins of each output's
    values, for tasks other than classification) and ``skipped_inputs`` (input -> why it is
    not watched, e.g. token ids); the per-channel fields then hold one entry per named input.
    """

    n: int
    input_mean: list[float]
    input_std: list[float]
    input_quantiles: dict[str, list[float]] = Field(default_factory=dict)
    # per channel (per feature for tables): interior bin edges at the training deciles and the
    # share of training values in each bin (one more than edges); the PSI baseline. Optional:
    # older artifacts lack them and drift falls back to the p01/p50/p99 quantiles.
    input_bin_edges: list[list[float]] | None = None
    input_bin_freq: list[list[float]] | None = None
    class_freq: list[float]
    prediction_freq: list[float] = Field(default_factory=list)
    # share of validation predictions whose top-1 probability falls in each of 10 equal bins of [0, 1]
    confidence_hist: list[float] = Field(default_factory=list)
    mean_confidence: float | None = None
    named_inputs: dict[str, Bins] | None = None
    named_outputs: dict[str, Bins] | None = None
    skipped_inputs: dict[str, str] | None = None


class Encryption(Frozen):
    """Which files are encrypted at rest, and how (never the key): see ``artifact/encryption.py``."""

    algorithm: Literal["AES-256-GCM"] = "AES-256-GCM"
    files: list[str]


Task = Literal["classification", "multilabel", "regression", "embedding", "generic"]


class Manifest(Frozen):
    """The manifest. ``architecture`` is ``None`` for a model brought in as a program only
    (``.onnx``, ``.pt2``): such an artifact runs, but cannot be retrained or restructured."""

    schema_version: int = Field(default=SCHEMA, alias="schema")
    name: str
    version: int = 1
    created: str
    task: Task = "classification"
    architecture: Architecture | None = None
    signature: Signature
    labels: list[str] = Field(default_factory=list)
    metrics: dict[str, dict[str, float]] = Field(default_factory=dict)
    lineage: Lineage
    reference: Reference | None = None
    data: dict[str, Any] = Field(default_factory=dict)
    curves: list[dict[str, Any]] = Field(default_factory=list)
    files: dict[str, str] = Field(default_factory=dict)
    exports: dict[str, dict[str, Any]] = Field(default_factory=dict)
    encryption: Encryption | None = None
    env: dict[str, str] = Field(default_factory=dict)

    model_config = ConfigDict(populate_by_name=True)

    def to_json_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)

    @property
    def input(self) -> InputSpec:
        """The schema-1 view: the one float input with its normalization, one sample's shape.

        Stages written for one normalized float input read this; a model it does not fit
        (several inputs, integer tokens, dynamic non-batch dims) is refused in one line.

        Raises:
            ArtifactError: If the signature is not one float input with fixed sample dims.
        """
        inputs = self.signature.inputs
        spec = inputs[0]
        sample = spec.shape[1:]
        if len(inputs) != 1 or not spec.is_float or any(isinstance(d, str) for d in sample):
            raise ArtifactError(
                f"{self.name} takes {describe_inputs(self.signature)}; this stage handles one float input "
                "with fixed sample dimensions only",
                fix="use a stage that reads the signature (export, bench, serve), or see docs/import.md",
            )
        pre = spec.preprocessing
        if pre is None:
            return InputSpec(
                shape=list(sample), dtype=spec.dtype, layout="features", scale=1.0, mean=[0.0], std=[1.0]
            )
        return InputSpec(
            shape=list(sample), dtype=spec.dtype, layout=pre.kind, scale=pre.scale, mean=pre.mean, std=pre.std
        )

    @property
    def answers_classes(self) -> bool:
        """A classifier whose first output is (batch, classes) logits: probabilities, top-k and
        class drift apply to it."""
        return self.task == "classification" and len(self.signature.outputs[0].shape) == 2

    @property
    def classes(self) -> int | None:
        """Classes of a classifier's first output (its last dim), when known."""
        if self.labels:
            return len(self.labels)
        last = self.signature.outputs[0].shape[-1]
        return last if isinstance(last, int) else None


def describe_inputs(signature: Signature) -> str:
    """``input_ids int64[batch, seq], attention_mask int64[batch, seq]``."""
    return ", ".join(f"{t.name} {t.dtype}[{', '.join(map(str, t.shape))}]" for t in signature.inputs)


def _migrate_1_to_2(raw: dict[str, Any]) -> dict[str, Any]:
    """Schema 2 describes the model by a signature: the one ``input`` block becomes input
    ``input`` with its normalization attached, and the classifier's output ``logits``."""
    upgraded = {k: v for k, v in raw.items() if k != "input"}
    if not isinstance(raw.get("input"), dict) or not isinstance(raw.get("labels"), list):
        raise ArtifactError("schema-1 manifest lacks its input or labels block", fix="re-create the artifact")
    upgraded["signature"] = signature_from_input(raw["input"], len(raw["labels"]))
    upgraded["schema"] = 2
    return upgraded


# Named migrations, keyed by the schema they upgrade from.
_MIGRATIONS: dict[int, Any] = {1: _migrate_1_to_2}


def parse_manifest(raw: Any, where: str) -> Manifest:
    """Validate a decoded manifest.json, upgrading older schemas by their named migration."""
    if not isinstance(raw, dict):
        raise ArtifactError(f"{where} is not a JSON object", fix="re-create the artifact")
    schema = raw.get("schema")
    if not isinstance(schema, int):
        raise ArtifactError(f"{where} has no integer 'schema' field", fix="this is not a torchship manifest")
    if schema > SCHEMA:
        raise ArtifactError(
            f"{where} has schema {schema}, newer than this torchship understands ({SCHEMA})",
            fix="upgrade torchship",
        )
    try:
        while schema < SCHEMA:
            migrate = _MIGRATIONS.get(schema)
            if migrate is None:
                raise ArtifactError(f"{where} has unknown schema {schema}", fix="re-create the artifact")
            raw = migrate(raw)
            schema = raw["schema"]
        return Manifest.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(root)'}: {e['msg']}" for e in exc.errors()
        )
        raise ArtifactError(f"{where} is invalid: {problems}", fix="re-create the artifact") from None
