"""Re-extract the KServe schemas here from KServe's CRDs (run by hand when KServe's API moves).

    git -C kserve show HEAD:config/crd/full/serving.kserve.io_servingruntimes.yaml > sr.yaml
    git -C kserve show HEAD:config/crd/full/serving.kserve.io_inferenceservices.yaml > isvc.yaml
    python src/torchship/deploy/schemas/extract_kserve.py sr.yaml isvc.yaml COMMIT

Each file is the storage version's ``openAPIV3Schema``, as KServe generated it. The
InferenceService schema keeps only ``spec.predictor`` without the per-framework blocks
(sklearn, triton, ...) and ``workerSpec``: torchship's manifests use ``predictor.model``,
and the rest is 600 KB of pod specs.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import yaml

HERE = Path(__file__).parent
_UNUSED = (
    "huggingface",
    "lightgbm",
    "onnx",
    "paddle",
    "pmml",
    "pytorch",
    "sklearn",
    "tensorflow",
    "triton",
    "xgboost",
    "workerSpec",
)


def storage_schema(crd_file: str) -> tuple[dict, str, str]:
    crd = yaml.safe_load(Path(crd_file).read_text())
    version = next(v for v in crd["spec"]["versions"] if v.get("storage"))
    return version["schema"]["openAPIV3Schema"], crd["spec"]["names"]["kind"], version["name"]


def main(runtime_crd: str, isvc_crd: str, commit: str) -> None:
    for crd_file in (runtime_crd, isvc_crd):
        schema, kind, version = storage_schema(crd_file)
        schema.get("properties", {}).pop("status", None)
        if kind == "InferenceService":
            spec = schema["properties"]["spec"]
            spec["properties"] = {"predictor": spec["properties"]["predictor"]}
            for key in _UNUSED:
                spec["properties"]["predictor"]["properties"].pop(key)
        source = (
            f"kserve/kserve@{commit} config/crd/full/{Path(crd_file).name}: the {version} "
            "openAPIV3Schema (see extract_kserve.py)"
        )
        out = HERE / f"{kind.lower()}-{version}.json"
        text = json.dumps({"$comment": source, **schema}, sort_keys=True, separators=(",", ":"))
        out.write_text(text + "\n")
        print(out, out.stat().st_size)


if __name__ == "__main__":
    main(*sys.argv[1:])
