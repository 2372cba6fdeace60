"""Every route through httpx.ASGITransport, with the app's real lifespan."""

from __future__ import annotations

import io

import anyio
import numpy as np
import orjson
import pytest
from serve_helpers import CRASH_VALUE, in_process, reference, settings, v2_body

from torchship.serve import Security, ServeConfig

pytestmark = pytest.mark.anyio
X = np.random.default_rng(0).standard_normal((3, 1, 8, 8)).astype(np.float32)


async def test_health_metadata_config_and_index(repo):
    async with in_process(repo) as c:
        assert (await c.get("/v2/health/live")).json() == {"live": True}
        assert (await c.get("/v2/health/ready")).json() == {"ready": True}
        meta = (await c.get("/v2")).json()
        assert meta["name"] == "torchship"
        assert "binary_tensor_data" in meta["extensions"]
        model = (await c.get("/v2/models/cnn")).json()
        assert model["versions"] == ["2"]  # the default version is the highest
        assert model["inputs"] == [{"name": "input", "datatype": "FP32", "shape": [-1, 1, 8, 8]}]
        assert (await c.get("/v2/models/cnn/versions/1")).json()["versions"] == ["1"]
        assert (await c.get("/v2/models/cnn/versions/1/ready")).json()["ready"] is True
        assert (await c.get("/v2/models/mlp/ready")).json()["ready"] is True
        config = (await c.get("/v2/models/cnn/config")).json()
        assert config["max_batch_size"] == 32
        assert config["input"][0]["dims"] == [1, 8, 8]
        index = (await c.post("/v2/repository/index")).json()
        assert {(e["name"], e["version"], e["state"]) for e in index} == {
            ("cnn", "1", "READY"),
            ("cnn", "2", "READY"),
            ("mlp", "1", "READY"),
        }


async def test_infer_json_per_version_with_id_outputs_and_classification(repo):
    async with in_process(repo) as c:
        for version in ("1", "2"):
            r = await c.post(f"/v2/models/cnn/versions/{version}/infer", json=v2_body(X, id="req-7"))
            assert r.status_code == 200, r.text
            body = r.json()
            assert body["id"] == "req-7"
            assert body["model_version"] == version
            logits = np.array(body["outputs"][0]["data"], np.float32).reshape(3, 10)
            np.testing.assert_allclose(logits, reference(repo, "cnn", version, X), atol=1e-5)
        r = await c.post(
            "/v2/models/cnn/infer",
            json=v2_body(X[:1], outputs=[{"name": "probabilities", "parameters": {"classification": 3}}]),
        )
        out = r.json()["outputs"]
        assert len(out) == 1
        assert out[0]["datatype"] == "BYTES"
        assert out[0]["shape"] == [1, 3]
        score, index, label = out[0]["data"][0].split(":")
        assert int(index) == int(np.argmax(reference(repo, "cnn", "2", X[:1])))
        assert label == index


async def test_infer_binary_both_ways(repo):
    async with in_process(repo) as c:
        head = orjson.dumps(
            {
                "inputs": [
                    {
                        "name": "input",
                        "shape": [3, 1, 8, 8],
                        "datatype": "FP32",
                        "parameters": {"binary_data_size": X.nbytes},
                    }
                ],
                "outputs": [{"name": "logits", "parameters": {"binary_data": True}}],
            }
        )
        r = await c.post(
            "/v2/models/cnn/infer",
            content=head + X.tobytes(),
            headers={"Inference-Header-Content-Length": str(len(head))},
        )
        assert r.status_code == 200, r.text
        n = int(r.headers["inference-header-content-length"])
        logits = np.frombuffer(r.content[n:], np.float32).reshape(3, 10)
        np.testing.assert_allclose(logits, reference(repo, "cnn", "2", X), atol=1e-5)


@pytest.mark.parametrize(
    ("path", "body", "status", "message"),
    [
        ("/v2/models/nope/infer", v2_body(X), 404, "unknown model 'nope'"),
        ("/v2/models/cnn/versions/9/infer", v2_body(X), 404, "no loaded version '9'"),
        ("/v2/models/cnn/infer", v2_body(X.reshape(3, 1, 4, 16)), 400, "expects [n, 1, 8, 8]"),
        (
            "/v2/models/cnn/infer",
            {"inputs": [{"name": "input", "shape": [1, 1, 8, 8], "datatype": "BYTES", "data": ["a"] * 64}]},
            400,
            "not supported",
        ),
        (
            "/v2/models/cnn/infer",
            {"inputs": [{"name": "x", "shape": [1, 1, 8, 8], "datatype": "FP32", "data": [0.0] * 64}]},
            400,
            "one input named 'input'",
        ),
        ("/v2/models/cnn/infer", v2_body(X, outputs=[{"name": "feature"}]), 400, "no output 'feature'"),
        ("/v2/models/cnn/infer", v2_body(np.zeros((33, 1, 8, 8), np.float32)), 400, "1 to 32 per request"),
        ("/v2/models/../infer", v2_body(X), 404, "no route"),
    ],
)
async def test_bad_requests_get_status_and_message(repo, path, body, status, message):
    async with in_process(repo) as c:
        r = await c.post(path, json=body)
        assert r.status_code == status
        assert message in r.json()["error"]


async def test_nan_malformed_truncated_and_huge_bodies(repo):
    config = ServeConfig(max_body_bytes=64 * 1024)
    async with in_process(repo, config) as c:
        bad = X.copy()
        bad[1, 0, 2, 3] = np.nan
        head = orjson.dumps(
            {
                "inputs": [
                    {
                        "name": "input",
                        "shape": [3, 1, 8, 8],
                        "datatype": "FP32",
                        "parameters": {"binary_data_size": X.nbytes},
                    }
                ]
            }
        )
        hdr = {"Inference-Header-Content-Length": str(len(head))}
        r = await c.post("/v2/models/cnn/infer", content=head + bad.tobytes(), headers=hdr)
        assert r.status_code == 400
        assert "NaN or infinite values (first at flat index 83)" in r.json()["error"]
        r = await c.post("/v2/models/cnn/infer", content=head + X.tobytes()[:100], headers=hdr)
        assert r.status_code == 400
        assert "truncated" in r.json()["error"]
        r = await c.post("/v2/models/cnn/infer", content=b'{"inputs": [')
        assert r.status_code == 400
        assert "not valid JSON" in r.json()["error"]
        r = await c.post("/v2/models/cnn/infer", content=b"0" * (65 * 1024))
        assert r.status_code == 413
        assert "exceeds the 65536-byte limit" in r.json()["error"]


async def test_tokens_guard_inference_and_management_separately(repo):
    security = Security(inference_token="infer-secret", management_token="admin-secret")
    async with in_process(repo, security=security) as c:
        assert (await c.get("/v2/health/ready")).status_code == 200  # probes stay open
        r = await c.post("/v2/models/cnn/infer", json=v2_body(X))
        assert r.status_code == 401
        assert r.headers["www-authenticate"] == "Bearer"
        ok = {"Authorization": "Bearer infer-secret"}
        assert (await c.post("/v2/models/cnn/infer", json=v2_body(X), headers=ok)).status_code == 200
        assert (await c.post("/v2/repository/index", headers=ok)).status_code == 401
        admin = {"Authorization": "Bearer admin-secret"}
        assert (await c.post("/v2/repository/index", headers=admin)).status_code == 200
    async with in_process(repo, security=Security(management=False)) as c:
        r = await c.post("/v2/repository/models/cnn/unload")
        assert r.status_code == 403
        assert "disabled" in r.json()["error"]


async def test_load_unload_while_serving(repo):
    async with in_process(repo) as c:

        async def infer_many(results):
            for _ in range(20):
                results.append(
                    (
                        await c.post("/v2/models/mlp/infer", json=v2_body(np.ones((1, 16), np.float32)))
                    ).status_code
                )

        results: list[int] = []
        async with anyio.create_task_group() as tg:
            tg.start_soon(infer_many, results)
            await anyio.sleep(0.01)
            assert (await c.post("/v2/repository/models/mlp/unload")).status_code == 200
        assert set(results) <= {200, 404}  # before: served; after: 404, never 500
        assert results[0] == 200
        r = await c.post("/v2/models/mlp/infer", json=v2_body(np.ones((1, 16), np.float32)))
        assert r.status_code == 404
        assert "not loaded" in r.json()["error"]
        index = (await c.post("/v2/repository/index")).json()
        assert {"name": "mlp", "state": "UNAVAILABLE", "reason": "unloaded"} in index
        assert (await c.post("/v2/repository/models/mlp/load")).status_code == 200
        assert (
            await c.post("/v2/models/mlp/infer", json=v2_body(np.ones((1, 16), np.float32)))
        ).status_code == 200
        assert (await c.post("/v2/repository/models/cnn/load")).status_code == 200  # reload in place
        r = await c.post("/v2/repository/models/cnn/load", json={"parameters": {"file:1/model.pt": "AAAA"}})
        assert r.status_code == 400
        assert "only from its repository" in r.json()["error"]
        assert (await c.post("/v2/repository/models/..%2Fetc/load")).status_code in (400, 404)


async def test_stats_and_metrics_count_requests_and_batches(repo):
    async with in_process(repo) as c:
        for _ in range(3):
            await c.post("/v2/models/cnn/infer", json=v2_body(X))
        await c.post("/v2/models/cnn/infer", json=v2_body(X[:, :, :4]))
        stats = (await c.get("/v2/models/cnn/versions/2/stats")).json()["model_stats"][0]
        assert stats["inference_count"] == 9
        assert stats["execution_count"] == 3
        assert stats["inference_stats"]["success"]["count"] == 3
        assert stats["inference_stats"]["fail"]["count"] == 1
        assert stats["batch_stats"][0]["batch_size"] == 3
        assert len((await c.get("/v2/models/stats")).json()["model_stats"]) == 3
        text = (await c.get("/metrics")).text
        assert 'torchship_requests_total{model="cnn",status="200",version="2"} 3.0' in text
        assert 'torchship_requests_total{model="cnn",status="400",version="2"} 1.0' in text
        assert 'torchship_batch_size_count{model="cnn",version="2"} 3.0' in text
        assert "torchship_model_load_seconds" in text
        assert "torchship_inflight_requests" in text


async def test_crashing_instance_is_restarted_and_fails_only_the_bad_request(repo):
    async with in_process(repo, settings(runtime="test-crash")) as c:
        good = X[:1].copy()
        bad = X[:1].copy()
        bad.flat[0] = CRASH_VALUE
        bodies = [v2_body(good)] * 4 + [v2_body(bad)] + [v2_body(good)] * 4
        async with anyio.create_task_group() as tg:
            statuses: list[int] = []

            async def send(body):
                statuses.append((await c.post("/v2/models/cnn/infer", json=body)).status_code)

            for body in bodies:
                tg.start_soon(send, body)
        assert sorted(statuses) == [200] * 8 + [500]
        stats = (await c.get("/v2/models/cnn/versions/2/stats")).json()["model_stats"][0]
        assert stats["instance_restarts"] >= 1
        assert (await c.post("/v2/models/cnn/infer", json=v2_body(good))).status_code == 200
        assert 'torchship_instance_restarts_total{model="cnn",version="2"}' in (await c.get("/metrics")).text


async def test_tf_serving_predict_and_image_upload(repo):
    from PIL import Image

    async with in_process(repo) as c:
        r = await c.post("/v1/models/cnn:predict", json={"instances": X[:2].tolist()})
        assert r.status_code == 200, r.text
        predictions = r.json()["predictions"]
        assert len(predictions) == 2
        assert abs(sum(predictions[0]["probabilities"]) - 1) < 1e-5
        buf = io.BytesIO()
        Image.fromarray(np.arange(256, dtype=np.uint8).reshape(16, 16)).save(buf, format="PNG")
        raw = await c.post(
            "/v1/models/cnn/versions/1:classify?top_k=3",
            content=buf.getvalue(),
            headers={"content-type": "image/png"},
        )
        assert raw.status_code == 200, raw.text
        top = raw.json()["top"]
        assert len(top) == 3
        assert top[0]["probability"] >= top[1]["probability"]
        form = await c.post(
            "/v1/models/cnn/versions/1:classify?top_k=3",
            files={"file": ("x.png", buf.getvalue(), "image/png")},
        )
        assert form.json()["top"] == top
        r = await c.post("/v1/models/cnn:classify", content=b"GIF89a not an image")
        assert r.status_code == 400
        assert "PNG or JPEG" in r.json()["error"]


def _stats(text: str, model: str, version: str, status: str) -> float:
    line = f'torchship_requests_total{{model="{model}",status="{status}",version="{version}"}} '
    return next((float(row[len(line) :]) for row in text.splitlines() if row.startswith(line)), 0.0)


async def test_predict_and_classify_are_counted_like_infer(repo):
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.arange(256, dtype=np.uint8).reshape(16, 16)).save(buf, format="PNG")
    async with in_process(repo) as c:

        async def counts() -> tuple[int, int, float, float]:
            stats = (await c.get("/v2/models/cnn/versions/2/stats")).json()["model_stats"][0]
            text = (await c.get("/metrics")).text
            return (
                stats["inference_stats"]["success"]["count"],
                stats["inference_stats"]["fail"]["count"],
                _stats(text, "cnn", "2", "200"),
                _stats(text, "cnn", "2", "400"),
            )

        before = await counts()
        k = 3
        for _ in range(k):
            assert (
                await c.post("/v1/models/cnn:predict", json={"instances": X[:2].tolist()})
            ).status_code == 200
            r = await c.post("/v1/models/cnn:classify", content=buf.getvalue())
            assert r.status_code == 200, r.text
        r = await c.post("/v1/models/cnn:predict", json={"instances": X[:, :, :4].tolist()})  # wrong shape
        assert r.status_code == 400
        after = await counts()
        assert [a - b for a, b in zip(after, before, strict=True)] == [2 * k, 1, 2 * k, 1]


async def test_wrong_method_on_infer_is_a_json_405(repo):
    async with in_process(repo) as c:
        for path in ("/v2/models/cnn/infer", "/v2/models/cnn/versions/1/infer"):
            r = await c.get(path)
            assert r.status_code == 405
            assert r.headers["allow"] == "POST"
            assert r.headers["content-type"] == "application/json"
            assert "error" in r.json()
        r = await c.get("/v2/models/cnn/versions/1/infer/more")
        assert r.status_code == 404
        assert r.json() == {"error": "no route GET /v2/models/cnn/versions/1/infer/more"}
