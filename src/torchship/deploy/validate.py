"""Validate manifests offline: Kubernetes objects with kubernetes-validate, KServe's with its CRD schemas.

Core objects are checked strictly (an unknown field is an error, as ``kubectl apply
--validate=strict`` does) against the oldest and the newest Kubernetes release the
installed kubernetes-validate knows from ``KUBERNETES_VERSIONS``. KServe objects are checked
with jsonschema against the openAPIV3Schema of KServe's CRDs kept in ``schemas/`` (see
``schemas/extract_kserve.py`` for the source). CRD schemas leave objects open; the API
server's strict field validation refuses unknown fields, so objects are closed here too.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from torchship.errors import ConfigError, require

SCHEMAS = Path(__file__).parent / "schemas"
KUBERNETES_VERSIONS = ("1.29", None)  # None: the newest the installed kubernetes-validate has
KSERVE_SCHEMAS = {
    ("serving.kserve.io/v1alpha1", "ServingRuntime"): "servingruntime-v1alpha1.json",
    ("serving.kserve.io/v1beta1", "InferenceService"): "inferenceservice-v1beta1.json",
}


def validate_manifest(doc: dict[str, Any]) -> list[str]:
    """Check one object; returns the versions or schemas it was checked against.

    Raises:
        ConfigError: The object does not validate (names the field and the schema).
    """
    key = (doc.get("apiVersion"), doc.get("kind"))
    if key in KSERVE_SCHEMAS:
        jsonschema = require("jsonschema", "deploy")
        try:
            jsonschema.Draft7Validator(_kserve_schema(KSERVE_SCHEMAS[key])).validate(doc)
        except jsonschema.ValidationError as exc:
            where = "/".join(map(str, exc.absolute_path))
            raise _invalid(doc, where, exc.message, KSERVE_SCHEMAS[key]) from None
        return [f"KServe {KSERVE_SCHEMAS[key]}"]
    kubernetes_validate = require("kubernetes_validate", "deploy")
    checked = []
    for version in KUBERNETES_VERSIONS:
        version = version or kubernetes_validate.latest_version()
        try:
            checked.append(f"Kubernetes {kubernetes_validate.validate(doc, version, strict=True)}")
        except kubernetes_validate.ValidationError as exc:  # a jsonschema.ValidationError
            raise _invalid(
                doc, "/".join(map(str, exc.absolute_path)), exc.message, f"Kubernetes {version}"
            ) from None
    return checked


def _invalid(doc: dict[str, Any], where: str, message: str, schema: str) -> ConfigError:
    return ConfigError(
        f"{doc.get('kind')} {doc.get('metadata', {}).get('name')!r} is invalid at "
        f"{where or '(root)'} against {schema}: {message}",
        fix="this is a torchship bug; please report it with the command line",
    )


@cache
def _kserve_schema(filename: str) -> dict[str, Any]:
    return _closed(json.loads((SCHEMAS / filename).read_text()))


def _closed(schema: Any) -> Any:
    """Refuse unknown fields wherever the CRD lists properties and does not keep unknown ones."""
    if isinstance(schema, list):
        return [_closed(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    closed = {k: _closed(v) for k, v in schema.items()}
    if "properties" in schema and not schema.get("x-kubernetes-preserve-unknown-fields"):
        closed.setdefault("additionalProperties", False)
    return closed
