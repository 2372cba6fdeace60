"""Serving imported models: named INT64 inputs over tritonclient, two outputs, no Python class."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from torchship.artifact import Artifact
from torchship.runtime import load_predictor


@pytest.fixture
def anyio_backend():
    return "asyncio"


def _tokens(n: int, seq: int, seed: int) -> dict[str, np.ndarray]:
    ids = np.random.default_rng(seed).integers(0, 1000, size=(n, seq)).astype(np.int64)
    mask = np.ones_like(ids)
    mask[0, seq // 2 :] = 0
    return {"input_ids": ids, "attention_mask": mask}


def test_bert_served_without_its_class_answers_int64_json_and_binary(bert_artifact, tmp_path):
    httpclient = pytest.importorskip("tritonclient.http")
    from serve_helpers import real_server

    shutil.copytree(bert_artifact, tmp_path / "repo" / "bert" / "1")
    reference = load_predictor(Artifact.load(bert_artifact), "exported", warmup=0)
    with real_server(tmp_path / "repo") as url:
        client = httpclient.InferenceServerClient(url.removeprefix("http://"), network_timeout=60)
        try:
            meta = client.get_model_metadata("bert")
            assert [(i["name"], i["datatype"], i["shape"]) for i in meta["inputs"]] == [
                ("input_ids", "INT64", [-1, -1]),
                ("attention_mask", "INT64", [-1, -1]),
            ]
            assert [o["name"] for o in meta["outputs"]] == ["logits", "probabilities"]
            assert (
                meta["platform"] == "torchship_exported"
            )  # auto: the class was not allowed, the program runs
            for seq in (7, 19):
                feeds = _tokens(2, seq, seq)
                want = reference.run(feeds)["logits"]
                for binary in (False, True):
                    inputs = []
                    for name, x in feeds.items():
                        inp = httpclient.InferInput(name, list(x.shape), "INT64")
                        inp.set_data_from_numpy(x, binary_data=binary)
                        inputs.append(inp)
                    out = [httpclient.InferRequestedOutput("logits", binary_data=binary)]
                    result = client.infer("bert", inputs, outputs=out)
                    np.testing.assert_allclose(result.as_numpy("logits"), want, atol=1e-5)
        finally:
            client.close()


@pytest.mark.anyio
async def test_bert_refuses_mismatched_seq_and_out_of_vocabulary_ids(bert_artifact, tmp_path):
    from serve_helpers import in_process

    shutil.copytree(bert_artifact, tmp_path / "repo" / "bert" / "1")

    def body(ids, mask):
        return {
            "inputs": [
                {
                    "name": "input_ids",
                    "shape": list(ids.shape),
                    "datatype": "INT64",
                    "data": ids.ravel().tolist(),
                },
                {
                    "name": "attention_mask",
                    "shape": list(mask.shape),
                    "datatype": "INT64",
                    "data": mask.ravel().tolist(),
                },
            ]
        }

    ids = np.zeros((1, 5), np.int64)
    async with in_process(tmp_path / "repo") as client:
        reply = await client.post("/v2/models/bert/infer", json=body(ids, np.ones((1, 6), np.int64)))
        assert reply.status_code == 400
        assert "dim 'seq' is 5 in input input_ids but 6" in reply.json()["error"]
        reply = await client.post("/v2/models/bert/infer", json=body(ids + 1000, np.ones((1, 5), np.int64)))
        assert reply.status_code == 400
        assert "outside [0, 1000)" in reply.json()["error"]


@pytest.mark.anyio
async def test_regression_serves_both_outputs_and_refuses_classification(tmp_path):
    import torch
    from byo_nets import regression_artifact
    from serve_helpers import in_process

    net, art = regression_artifact(tmp_path / "repo" / "reg" / "1")
    x = np.random.default_rng(0).standard_normal((3, 6)).astype(np.float32)
    body = {"inputs": [{"name": "input", "shape": [3, 6], "datatype": "FP32", "data": x.ravel().tolist()}]}
    async with in_process(tmp_path / "repo") as client:
        meta = (await client.get("/v2/models/reg")).json()
        assert [o["name"] for o in meta["outputs"]] == ["mean", "scale"]
        assert meta["parameters"]["task"] == "regression"
        reply = (await client.post("/v2/models/reg/infer", json=body)).json()
        got = {o["name"]: np.array(o["data"]).reshape(o["shape"]) for o in reply["outputs"]}
        with torch.no_grad():
            mean, scale = net(torch.from_numpy(x))
        np.testing.assert_allclose(got["mean"], mean.numpy(), atol=1e-5)
        np.testing.assert_allclose(got["scale"], scale.numpy(), atol=1e-5)
        asked = {**body, "outputs": [{"name": "mean", "parameters": {"classification": 1}}]}
        reply = await client.post("/v2/models/reg/infer", json=asked)
        assert reply.status_code == 400
        assert "takes no 'classification' parameter" in reply.json()["error"]


def test_pt2_import_is_served_by_a_fresh_process_without_the_class(tmp_path):
    import torch
    from byo_nets import TwoHeads

    from torchship.importer import import_source

    torch.manual_seed(0)
    program = torch.export.export(
        TwoHeads(), (torch.randn(4, 6),), dynamic_shapes=({0: torch.export.Dim("n", min=1)},), strict=False
    )
    torch.export.save(program, tmp_path / "reg.pt2")
    import_source(tmp_path / "reg.pt2", tmp_path / "repo" / "reg" / "1", task="regression")
    x = np.ones((2, 6), np.float32)
    with torch.no_grad():
        want = TwoHeads.__call__(program.module(), torch.from_numpy(x))[0].numpy()
    script = textwrap.dedent(f"""
        import asyncio, json, sys
        import httpx
        from torchship.serve import create_app
        assert "byo_nets" not in sys.modules
        async def main():
            app = create_app({str(tmp_path / "repo")!r})
            async with app.router.lifespan_context(app):
                transport = httpx.ASGITransport(app=app)
                async with httpx.AsyncClient(transport=transport, base_url="http://t", timeout=60) as c:
                    for _ in range(400):
                        if (await c.get("/v2/health/ready")).status_code == 200:
                            break
                        await asyncio.sleep(0.05)
                    r = await c.post("/v2/models/reg/infer", json={{"inputs": [{{"name": "x", "shape": [2, 6],
                                     "datatype": "FP32", "data": [1.0] * 12}}]}})
                    print(json.dumps(r.json()))
        asyncio.run(main())
    """)
    src = str(Path(__file__).parents[2] / "src")
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=240,
        env={"PYTHONPATH": src, "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"},
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    import json

    reply = json.loads(done.stdout.strip().splitlines()[-1])
    first = reply["outputs"][0]
    np.testing.assert_allclose(np.array(first["data"]).reshape(first["shape"]), want, atol=1e-5)


def test_monitoring_an_imported_model_is_skipped_visibly(tmp_path):
    from byo_nets import regression_artifact

    from torchship.artifact import Artifact
    from torchship.errors import ArtifactError
    from torchship.monitor.baseline import Baseline

    _, art = regression_artifact(tmp_path / "reg")
    with pytest.raises(
        ArtifactError, match=r"drift monitoring skipped for reg: it was imported \(input float32"
    ):
        Baseline.from_artifact(Artifact.load(art.path))
