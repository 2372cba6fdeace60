"""A real server on 127.0.0.1: tritonclient round trips, batching under concurrency, load shedding."""

from __future__ import annotations

import concurrent.futures as cf
import re
import time

import httpx
import numpy as np
import orjson
import pytest
from serve_helpers import AT_GATE, GATE, real_server, reference, settings, v2_body

X = np.random.default_rng(1).standard_normal((4, 1, 8, 8)).astype(np.float32)


@pytest.fixture(scope="module")
def server(repo):
    with real_server(repo) as url:
        yield url


def test_tritonclient_json_binary_and_async_match_in_process(repo, server):
    httpclient = pytest.importorskip("tritonclient.http")
    client = httpclient.InferenceServerClient(server.removeprefix("http://"), network_timeout=30)
    try:
        assert client.is_server_live()
        assert client.is_server_ready()
        assert client.is_model_ready("cnn")
        assert client.get_model_metadata("cnn")["inputs"][0]["shape"] == [-1, 1, 8, 8]
        assert client.get_model_config("cnn")["max_batch_size"] == 32
        want = reference(repo, "cnn", "2", X)
        for binary in (False, True):
            inp = httpclient.InferInput("input", list(X.shape), "FP32")
            inp.set_data_from_numpy(X, binary_data=binary)
            outputs = [
                httpclient.InferRequestedOutput("logits", binary_data=binary),
                httpclient.InferRequestedOutput("probabilities", binary_data=binary, class_count=2),
            ]
            result = client.infer("cnn", [inp], outputs=outputs, request_id=f"b{binary}")
            np.testing.assert_allclose(result.as_numpy("logits"), want, atol=1e-5)
            assert result.get_response()["id"] == f"b{binary}"
            top = result.as_numpy("probabilities")[0][0]
            top = top.decode() if isinstance(top, bytes) else top
            assert int(top.split(":")[1]) == int(np.argmax(want[0]))
        pending = [client.async_infer("cnn", [inp], model_version="1") for _ in range(4)]
        for p in pending:
            np.testing.assert_allclose(
                p.get_result(timeout=30).as_numpy("logits"), reference(repo, "cnn", "1", X), atol=1e-5
            )
        stats = client.get_inference_statistics("cnn", "1")["model_stats"][0]
        assert stats["inference_count"] >= 16
    finally:
        client.close()


def test_concurrent_requests_are_merged_and_never_mixed(repo, server):
    rng = np.random.default_rng(7)
    inputs = rng.standard_normal((64, 1, 1, 8, 8)).astype(np.float32)
    want = reference(repo, "mlp", "1", np.zeros((1, 16), np.float32))  # warm the import
    want = reference(repo, "cnn", "2", inputs[:, 0])

    def histogram_count() -> float:
        text = httpx.get(server + "/metrics", timeout=10).text
        m = re.search(r'torchship_batch_size_count\{model="cnn",version="2"\} (\S+)', text)
        return float(m.group(1)) if m else 0.0

    before = histogram_count()
    with httpx.Client(timeout=30) as http, cf.ThreadPoolExecutor(16) as pool:

        def one(i):
            r = http.post(server + "/v2/models/cnn/infer", json=v2_body(inputs[i], id=str(i)))
            return i, r.json()

        for i, body in pool.map(one, range(64)):
            assert body["id"] == str(i)
            np.testing.assert_allclose(
                np.array(body["outputs"][0]["data"]).reshape(1, 10), want[i : i + 1], atol=1e-5
            )
    batches = histogram_count() - before
    assert batches < 64  # some requests shared a batch


def test_overload_sheds_with_503_and_retry_after(repo):
    config = settings(runtime="test-slow", max_batch_size=1, queue_limit=2)
    with (
        real_server(repo, config) as url,
        httpx.Client(timeout=30) as http,
        cf.ThreadPoolExecutor(12) as pool,
    ):
        responses = list(
            pool.map(
                lambda _: http.post(url + "/v2/models/mlp/infer", json=v2_body(np.ones((1, 16), np.float32))),
                range(24),
            )
        )
        codes = [r.status_code for r in responses]
        assert set(codes) == {200, 503}
        assert codes.count(200) >= 3
        shed = next(r for r in responses if r.status_code == 503)
        assert shed.headers["retry-after"] == "1"
        assert "overloaded" in shed.json()["error"]


def test_a_full_queue_sheds_before_the_body_is_decoded(repo):
    """Shedding must be cheap: with the queue full, even a malformed body gets 503, not 400."""
    config = settings(runtime="test-gate", max_batch_size=1, queue_limit=1)
    url_infer = "/v2/models/mlp/infer"
    with real_server(repo, config) as url, httpx.Client(timeout=30) as http, cf.ThreadPoolExecutor(2) as pool:
        GATE.clear()
        AT_GATE.clear()
        try:
            good = v2_body(np.ones((1, 16), np.float32))
            fill = [pool.submit(http.post, url + url_infer, json=good)]
            assert AT_GATE.wait(30), "the first request never reached the model"
            fill.append(pool.submit(http.post, url + url_infer, json=good))  # waits in the queue
            for _ in range(3000):
                depth = re.search(
                    r'torchship_queue_depth\{model="mlp",version="1"\} (\S+)', http.get(url + "/metrics").text
                )
                if depth and float(depth.group(1)) >= 1:
                    break
                time.sleep(0.01)
            else:
                pytest.fail("the second request never queued")
            r = http.post(url + url_infer, content=b"{not json", headers={"content-type": "application/json"})
        finally:
            GATE.set()
        assert r.status_code == 503
        assert "overloaded" in r.json()["error"]
        assert [f.result().status_code for f in fill] == [200, 200]


def test_a_queued_request_whose_client_hangs_up_is_dropped_before_compute(repo):
    """The protocol tells the request its client left (no receive() watcher): never computed, counted 499."""
    import socket

    config = settings(runtime="test-gate", max_batch_size=1)
    infer = "/v2/models/mlp/infer"
    body = orjson.dumps(v2_body(np.ones((1, 16), np.float32)))
    with real_server(repo, config) as url, httpx.Client(timeout=30) as http, cf.ThreadPoolExecutor(1) as pool:
        GATE.clear()
        AT_GATE.clear()
        try:
            first = pool.submit(http.post, url + infer, content=body)
            assert AT_GATE.wait(30), "the first request never reached the model"
            host, port = url.removeprefix("http://").split(":")
            with socket.create_connection((host, int(port)), timeout=30) as sock:
                sock.sendall(
                    f"POST {infer} HTTP/1.1\r\nhost: t\r\ncontent-length: {len(body)}\r\n\r\n".encode() + body
                )
                for _ in range(3000):  # until it waits in the queue behind the first
                    if _metric(http, url, 'torchship_queue_depth{model="mlp",version="1"}') >= 1:
                        break
                    time.sleep(0.01)
                else:
                    pytest.fail("the second request never queued")
            for _ in range(3000):  # the hang-up is seen while the gate is still closed
                if _metric(http, url, 'torchship_requests_total{model="mlp",status="499",version="1"}') == 1:
                    break
                time.sleep(0.01)
            else:
                pytest.fail("the request of the client that hung up was not counted 499")
        finally:
            GATE.set()
        assert first.result().status_code == 200
        stats = http.get(url + "/v2/models/mlp/stats").json()["model_stats"][0]
        assert stats["inference_count"] == 1  # only the first request's row reached the model
        assert stats["inference_stats"]["fail"]["count"] == 1


def _metric(http: httpx.Client, url: str, series: str) -> float:
    """The value of one series (labels as prometheus-client writes them, sorted) in /metrics; 0 if absent."""
    found = re.search(re.escape(series) + r" (\S+)", http.get(url + "/metrics").text)
    return float(found.group(1)) if found else 0.0


def test_request_timeout_parameter_expires_queued_requests(repo):
    config = settings(runtime="test-slow", max_batch_size=1)
    with real_server(repo, config) as url, httpx.Client(timeout=30) as http, cf.ThreadPoolExecutor(8) as pool:
        body = v2_body(np.ones((1, 16), np.float32), parameters={"timeout": 20_000})  # 20 ms, in µs
        codes = [
            r.status_code
            for r in pool.map(lambda _: http.post(url + "/v2/models/mlp/infer", json=body), range(8))
        ]
        assert 503 in codes
        assert 200 in codes


@pytest.mark.parametrize("trusted", [[], ["127.0.0.1"]])
def test_forwarded_headers_name_the_client_only_from_a_trusted_proxy(repo, caplog, trusted):
    import logging

    from torchship.serve import ServeConfig

    caplog.set_level(logging.INFO, logger="torchship.serve.access")
    with real_server(repo, ServeConfig(trusted_proxies=trusted)) as url:
        r = httpx.get(url + "/v2/health/live", headers={"x-forwarded-for": "203.0.113.7"}, timeout=30)
    assert r.status_code == 200
    lines = [orjson.loads(r.getMessage()) for r in caplog.records if r.name == "torchship.serve.access"]
    live = [line for line in lines if line["path"] == "/v2/health/live"]
    assert live[-1]["client"] == ("203.0.113.7" if trusted else "127.0.0.1")
