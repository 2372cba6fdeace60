"""The manifest: a typed, versioned description of an artifact.

``manifest.json`` says what the model is (architecture), how to feed it (input spec,
labels), how it was made (lineage), what it scored (metrics), what its inputs looked like
(reference statistics, for drift monitoring) and the sha256 of every file beside it.
Old schemas are upgraded by named functions (``_migrate_1_to_2``), never guessed from
missing keys.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, FiniteFloat, ValidationError, model_validator

from torchship.errors import ArtifactError

SCHEMA = 1


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Architecture(_Strict):
    """How to rebuild the model: a zoo name, or an import path the user must allow."""

    name: str | None = None
    import_path: str | None = Field(default=None, alias="import")
    kwargs: dict[str, Any] = Field(default_factory=dict)

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @model_validator(mode="after")
    def _one_source(self) -> Architecture:
        if (self.name is None) == (self.import_path is None):
            raise ValueError("architecture needs exactly one of 'name' (zoo) or 'import' (pkg.module:Class)")
        return self

    def describe(self) -> str:
        return self.name if self.name else f"import {self.import_path}"


# preprocessing divides by scale's inverse and by std: zero or non-finite values make every input NaN
_Positive = Annotated[float, Field(gt=0, allow_inf_nan=False)]


class InputSpec(_Strict):
    """One sample's shape and preprocessing: model input = (raw * scale - mean) / std per channel."""

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


class Lineage(_Strict):
    """Which artifact and which operation produced this one."""

    parent: str | None = None
    # sha256 of the parent's signature file (model.sig) when the parent was signed, so a chain
    # of signed artifacts can be checked; the child itself is unsigned until signed again
    parent_signature: str | None = None
    op: str
    params: dict[str, Any] = Field(default_factory=dict)


class Reference(_Strict):
    """Statistics of the training inputs and predictions, for drift monitoring."""

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


class Encryption(_Strict):
    """Which files are encrypted at rest, and how (never the key): see ``artifact/encryption.py``."""

    algorithm: Literal["AES-256-GCM"] = "AES-256-GCM"
    files: list[str]


class Manifest(_Strict):
    schema_version: int = Field(default=SCHEMA, alias="schema")
    name: str
    version: int = 1
    created: str
    task: Literal["classification"] = "classification"
    architecture: Architecture
    input: InputSpec
    labels: list[str]
    metrics: dict[str, dict[str, float]] = Field(default_factory=dict)
    lineage: Lineage
    reference: Reference | None = None
    data: dict[str, Any] = Field(default_factory=dict)
    curves: list[dict[str, Any]] = Field(default_factory=list)
    files: dict[str, str] = Field(default_factory=dict)
    exports: dict[str, dict[str, Any]] = Field(default_factory=dict)
    encryption: Encryption | None = None
    env: dict[str, str] = Field(default_factory=dict)

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    def to_json_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


# Named migrations, keyed by the schema they upgrade from. Schema 1 is the first.
_MIGRATIONS: dict[int, Any] = {}


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
    while schema < SCHEMA:
        migrate = _MIGRATIONS.get(schema)
        if migrate is None:
            raise ArtifactError(f"{where} has unknown schema {schema}", fix="re-create the artifact")
        raw = migrate(raw)
        schema = raw["schema"]
    try:
        return Manifest.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(root)'}: {e['msg']}" for e in exc.errors()
        )
        raise ArtifactError(f"{where} is invalid: {problems}", fix="re-create the artifact") from None
