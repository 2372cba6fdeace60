"""Dynamic int8 for imported models, judged by agreement with fp32; served by its int8 program."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from torchship.artifact import Artifact
from torchship.compress.quantize import QuantizeConfig, quantize
from torchship.runtime import load_predictor
from torchship.runtime.auto import candidates


@pytest.fixture(scope="module")
def bert_int8(bert_artifact, tmp_path_factory):
    out = tmp_path_factory.mktemp("bert-int8") / "artifact"
    return quantize(Artifact.load(bert_artifact), QuantizeConfig(mode="dynamic"), out=out)


def test_bert_dynamic_int8_agrees_with_fp32(bert_int8):
    record = bert_int8.manifest.exports["onnx-int8"]
    assert record["mode"] == "dynamic"
    assert record["max_abs_diff"] < 0.1  # random weights: logits close together, so top-1 flips easily
    assert 0.0 <= record["top1_agreement"] <= 1.0
    assert record["int8_bytes"] < record["fp32_bytes"]
    assert candidates(Artifact.load(bert_int8.path)) == ["onnxruntime"]


def test_bert_int8_exports_its_int8_graph_to_triton_under_its_own_version(bert_int8, tmp_path):
    from triton_checks import check_repository

    from torchship.export import ExportError, export

    copy = Artifact.load(shutil.copytree(bert_int8.path, tmp_path / "int8"))
    done = export(copy, "triton")
    assert done.manifest.exports["triton"]["verified_by"] == "onnx-int8"
    assert done.manifest.exports["triton"]["version"] == str(done.manifest.version) == "2"
    int8 = load_predictor(done, "onnxruntime", warmup=0)
    config = check_repository(done, int8, dims=[{"seq": 16}, {"seq": 5}], atol=1e-6)
    assert [t.name for t in config.output] == ["logits", "probabilities"]
    with pytest.raises(ExportError, match="int8 artifact; only its ONNX program runs it"):
        export(copy, "torchscript")


def test_static_int8_without_data_is_refused_in_one_line(bert_artifact, tmp_path):
    from torchship.compress.base import CompressError

    with pytest.raises(CompressError, match="--mode static needs a labelled dataset"):
        quantize(Artifact.load(bert_artifact), QuantizeConfig(mode="static"), out=tmp_path / "x")


@pytest.fixture
def anyio_backend():
    return "asyncio"


@pytest.mark.anyio
async def test_int8_artifact_is_served_by_its_int8_program_by_default(bert_int8, tmp_path):
    from serve_helpers import in_process

    shutil.copytree(bert_int8.path, tmp_path / "repo" / "bert" / "1")
    ids = np.random.default_rng(0).integers(0, 1000, size=(2, 9))
    want = load_predictor(Artifact.load(bert_int8.path), "onnxruntime", warmup=0).run(
        {"input_ids": ids, "attention_mask": np.ones_like(ids)}
    )["logits"]
    body = {
        "inputs": [
            {"name": n, "shape": [2, 9], "datatype": "INT64", "data": x.ravel().tolist()}
            for n, x in (("input_ids", ids), ("attention_mask", np.ones_like(ids)))
        ],
        "outputs": [{"name": "logits"}],
    }
    async with in_process(tmp_path / "repo") as client:
        meta = (await client.get("/v2/models/bert")).json()
        assert meta["platform"] == "torchship_onnxruntime"
        config = (await client.get("/v2/models/bert/config")).json()
        assert config["parameters"]["torchship_runtime"]["string_value"] == "onnxruntime"
        reply = (await client.post("/v2/models/bert/infer", json=body)).json()
    got = np.array(reply["outputs"][0]["data"]).reshape(2, 3)
    np.testing.assert_allclose(got, want, atol=1e-5)
