"""Artifacts: self-describing model directories that every stage reads and writes."""

from torchship.artifact.manifest import (
    SCHEMA,
    Architecture,
    InputSpec,
    Lineage,
    Manifest,
    Preprocessing,
    Reference,
    Signature,
    TensorSpec,
)
from torchship.artifact.store import MANIFEST, RUN_ARTIFACT, WEIGHTS, Artifact, load, sha256_file

__all__ = [
    "MANIFEST",
    "RUN_ARTIFACT",
    "SCHEMA",
    "WEIGHTS",
    "Architecture",
    "Artifact",
    "InputSpec",
    "Lineage",
    "Manifest",
    "Preprocessing",
    "Reference",
    "Signature",
    "TensorSpec",
    "load",
    "sha256_file",
]
