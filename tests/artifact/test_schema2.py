"""Schema 2: the model signature, and the named migration that keeps schema-1 artifacts working."""

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from torchship.artifact import Artifact
from torchship.artifact.manifest import _migrate_1_to_2, parse_manifest
from torchship.errors import ArtifactError

FIXTURES = Path(__file__).parent / "fixtures"
SCHEMA1 = FIXTURES / "schema1-cnn"
EXPECTED = json.loads((FIXTURES / "schema1-cnn.expected.json").read_text())


def _x() -> torch.Tensor:
    return torch.linspace(-1, 1, 128).reshape(2, 1, 8, 8)


def test_schema1_fixture_is_still_schema1_on_disk():
    assert json.loads((SCHEMA1 / "manifest.json").read_text())["schema"] == 1


def test_migration_moves_the_input_block_into_the_signature():
    raw = json.loads((SCHEMA1 / "manifest.json").read_text())
    upgraded = _migrate_1_to_2(raw)
    assert upgraded["schema"] == 2
    assert "input" not in upgraded
    (inp,) = upgraded["signature"]["inputs"]
    assert inp == {
        "name": "input",
        "dtype": "float32",
        "shape": ["batch", 1, 8, 8],
        "preprocessing": {"kind": "image", "scale": raw["input"]["scale"], "mean": [0.5], "std": [0.25]},
    }
    assert upgraded["signature"]["outputs"] == [
        {"name": "logits", "dtype": "float32", "shape": ["batch", 10]}
    ]


def test_schema1_artifact_loads_and_gives_the_same_logits():
    art = Artifact.load(SCHEMA1)
    m = art.manifest
    assert m.schema_version == 2
    assert m.task == "classification"
    assert m.input.shape == [1, 8, 8]
    assert m.input.layout == "image"
    assert m.input.std == [0.25]
    with torch.no_grad():
        logits = art.build_model()(_x())
    np.testing.assert_allclose(logits.numpy(), np.array(EXPECTED["logits"]), rtol=0, atol=1e-6)


def test_schema1_artifact_saved_again_is_schema2_and_reloads(tmp_path):
    saved = Artifact.load(SCHEMA1).save(tmp_path / "a")
    assert json.loads((tmp_path / "a" / "manifest.json").read_text())["schema"] == 2
    assert Artifact.load(tmp_path / "a").manifest == saved.manifest


def test_schema1_artifact_inspects_as_before(run_cli):
    code, out, _ = run_cli("inspect", SCHEMA1)
    assert code == 0
    assert "float32[1, 8, 8] image; x = (raw * 0.00392157 - mean) / std" in out
    assert "labels    10: 0, 1, 2" in out


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_schema1_artifact_serves_the_same_logits(tmp_path):
    sys.path.insert(0, str(Path(__file__).parents[1] / "serve"))
    from serve_helpers import in_process, v2_body

    shutil.copytree(SCHEMA1, tmp_path / "repo" / "tiny" / "1")
    x = _x().numpy()
    async with in_process(tmp_path / "repo") as client:
        reply = (await client.post("/v2/models/tiny/infer", json=v2_body(x))).json()
    logits = next(o for o in reply["outputs"] if o["name"] == "logits")
    np.testing.assert_allclose(
        np.array(logits["data"]).reshape(2, 10), np.array(EXPECTED["logits"]), atol=1e-5
    )


def test_signature_refuses_bad_preprocessing_and_duplicate_names():
    raw = _migrate_1_to_2(json.loads((SCHEMA1 / "manifest.json").read_text()))
    bad = json.loads(json.dumps(raw))
    bad["signature"]["inputs"][0]["preprocessing"]["std"] = [0.0]
    with pytest.raises(ArtifactError, match="must not be zero"):
        parse_manifest(bad, "m.json")
    bad["signature"]["inputs"][0]["preprocessing"]["std"] = [float("nan")]
    with pytest.raises(ArtifactError, match="finite"):
        parse_manifest(bad, "m.json")
    dup = json.loads(json.dumps(raw))
    dup["signature"]["outputs"].append(dict(dup["signature"]["outputs"][0]))
    with pytest.raises(ArtifactError, match="names repeat"):
        parse_manifest(dup, "m.json")
    ints = json.loads(json.dumps(raw))
    ints["signature"]["inputs"][0]["dtype"] = "int64"
    with pytest.raises(ArtifactError, match="only float inputs take normalization"):
        parse_manifest(ints, "m.json")


def test_legacy_input_view_refuses_a_token_model_in_one_line():
    raw = _migrate_1_to_2(json.loads((SCHEMA1 / "manifest.json").read_text()))
    raw["signature"]["inputs"] = [
        {"name": "input_ids", "dtype": "int64", "shape": ["batch", "seq"], "range": [0, 1000]}
    ]
    m = parse_manifest(raw, "m.json")
    assert m.signature.inputs[0].dynamic == {0: "batch", 1: "seq"}
    with pytest.raises(
        ArtifactError, match=r"input_ids int64\[batch, seq\]; this stage handles one float input"
    ):
        _ = m.input
