"""The v2 gRPC service on 127.0.0.1: tritonclient.grpc, typed contents, codes, tokens, shared state."""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import contextlib
import functools
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from serve_helpers import reference, serve_app, settings

from torchship.serve import Security, create_app

grpcclient = pytest.importorskip("tritonclient.grpc")
grpc = pytest.importorskip("grpc")
from tritonclient.grpc import service_pb2, service_pb2_grpc  # noqa: E402
from tritonclient.utils import InferenceServerException  # noqa: E402

TIMEOUT_S = 30  # every call carries a deadline: a broken server fails the test, never hangs it
X = np.random.default_rng(3).standard_normal((4, 1, 8, 8)).astype(np.float32)


class Deadline:
    """A tritonclient.grpc client whose every call passes ``client_timeout``."""

    def __init__(self, client):
        self.client = client

    def __getattr__(self, name):
        method = getattr(self.client, name)
        return method if name == "close" else functools.partial(method, client_timeout=TIMEOUT_S)


@contextlib.contextmanager
def grpc_server(repo, config=None, security=None):
    """HTTP and gRPC from one app on free 127.0.0.1 ports; yields (http url, grpc target)."""
    app = create_app(repo, config, security, grpc_address="127.0.0.1:0")
    with serve_app(app) as url:
        yield url, f"127.0.0.1:{app.state.serve.grpc_port}"


@contextlib.contextmanager
def triton(target):
    client = grpcclient.InferenceServerClient(target)
    try:
        yield Deadline(client)
    finally:
        client.close()


@contextlib.contextmanager
def stub(target):
    with grpc.insecure_channel(target) as channel:
        yield service_pb2_grpc.GRPCInferenceServiceStub(channel)


@pytest.fixture(scope="module")
def server(repo):
    with grpc_server(repo) as endpoints:
        yield endpoints


def infer_input(x: np.ndarray):
    inp = grpcclient.InferInput("input", list(x.shape), "FP32")
    inp.set_data_from_numpy(x)
    return inp


def code_of(call) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as info:
        call()
    return info.value.code()


def test_tritonclient_grpc_health_metadata_config(server):
    _, target = server
    with triton(target) as client:
        assert client.is_server_live()
        assert client.is_server_ready()
        assert client.is_model_ready("cnn")
        assert client.is_model_ready("cnn", "1")
        meta = client.get_server_metadata(as_json=True)
        assert meta["name"] == "torchship"
        assert "model_repository" in meta["extensions"]
        model = client.get_model_metadata("cnn", as_json=True)
        assert model["inputs"][0] == {"name": "input", "datatype": "FP32", "shape": ["-1", "1", "8", "8"]}
        assert [o["name"] for o in model["outputs"]] == ["logits", "probabilities"]
        config = client.get_model_config("cnn", as_json=True)["config"]
        assert config["max_batch_size"] == 32
        assert config["input"][0]["dims"] == ["1", "8", "8"]
        assert config["input"][0]["data_type"] == "TYPE_FP32"


def test_every_rpc_gets_an_access_log_line(server, caplog):
    import json
    import logging

    _, target = server
    caplog.set_level(logging.INFO, logger="torchship.serve.access")
    with triton(target) as client:
        client.is_server_live(headers={"x-request-id": "abc-1"})
        with pytest.raises(InferenceServerException):
            client.get_model_metadata("nope")
    for _ in range(500):  # the server writes the line after the client has its answer
        lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "torchship.serve.access"]
        if len(lines) >= 2:
            break
        time.sleep(0.01)
    assert [(x["method"], x["path"], x["status"]) for x in lines] == [
        ("GRPC", "/inference.GRPCInferenceService/ServerLive", 200),
        ("GRPC", "/inference.GRPCInferenceService/ModelMetadata", 404),
    ]
    assert lines[0]["request_id"] == "abc-1"


def test_tritonclient_grpc_infer_matches_in_process(repo, server):
    _, target = server
    with triton(target) as client:
        outputs = [
            grpcclient.InferRequestedOutput("logits"),
            grpcclient.InferRequestedOutput("probabilities", class_count=2),
        ]
        result = client.infer("cnn", [infer_input(X)], outputs=outputs, request_id="r1")
        want = reference(repo, "cnn", "2", X)
        np.testing.assert_allclose(result.as_numpy("logits"), want, atol=1e-5)
        assert result.get_response().id == "r1"
        assert result.get_response().model_version == "2"
        top = result.as_numpy("probabilities")
        assert top.shape == (4, 2)
        assert [int(row[0].decode().split(":")[1]) for row in top] == list(np.argmax(want, axis=1))
        old = client.infer("cnn", [infer_input(X)], model_version="1")
        np.testing.assert_allclose(old.as_numpy("logits"), reference(repo, "cnn", "1", X), atol=1e-5)
        np.testing.assert_allclose(old.as_numpy("probabilities").sum(axis=1), 1.0, atol=1e-5)


def test_typed_contents_round_trip_and_raw_outputs(repo, server):
    _, target = server
    x_int = np.arange(2 * 64, dtype=np.int32).reshape(2, 1, 8, 8) % 5 - 2
    with stub(target) as api:
        for datatype, field, x in (
            ("FP32", "fp32_contents", X),
            ("INT32", "int_contents", x_int),
            ("INT64", "int64_contents", x_int.astype(np.int64)),
        ):
            request = service_pb2.ModelInferRequest(model_name="cnn", model_version="1")
            tensor = request.inputs.add(name="input", datatype=datatype, shape=list(x.shape))
            getattr(tensor.contents, field).extend(x.ravel().tolist())
            response = api.ModelInfer(request, timeout=TIMEOUT_S)
            assert [o.name for o in response.outputs] == ["logits", "probabilities"]
            assert response.outputs[0].datatype == "FP32"
            assert list(response.outputs[0].shape) == [len(x), 10]
            logits = np.frombuffer(response.raw_output_contents[0], dtype="<f4").reshape(len(x), 10)
            np.testing.assert_allclose(logits, reference(repo, "cnn", "1", x.astype(np.float32)), atol=1e-5)


def test_statistics_and_metrics_are_shared_with_http(server):
    url, target = server

    def http_count() -> tuple[int, float]:
        stats = httpx.get(url + "/v2/models/mlp/versions/1/stats", timeout=TIMEOUT_S).json()["model_stats"][0]
        text = httpx.get(url + "/metrics", timeout=TIMEOUT_S).text
        match = re.search(r'torchship_requests_total\{model="mlp",status="200",version="1"\} (\S+)', text)
        return stats["inference_count"], float(match.group(1)) if match else 0.0

    x = np.ones((3, 16), np.float32)
    with triton(target) as client:
        rows_before, requests_before = http_count()
        before = client.get_inference_statistics("mlp", "1", as_json=True)["model_stats"][0]
        inp = grpcclient.InferInput("input", [3, 16], "FP32")
        inp.set_data_from_numpy(x)
        for _ in range(5):
            client.infer("mlp", [inp])
        after = client.get_inference_statistics("mlp", "1", as_json=True)["model_stats"][0]
        assert int(after.get("inference_count", 0)) - int(before.get("inference_count", 0)) == 15
        assert (
            int(after["inference_stats"]["success"]["count"])
            - int(before["inference_stats"]["success"].get("count", 0))
            == 5
        )
        rows_after, requests_after = http_count()
        assert (rows_after - rows_before, requests_after - requests_before) == (15, 5)
        assert int(after.get("inference_count", 0)) == rows_after


def test_errors_map_to_grpc_codes(server):
    _, target = server

    def infer(**fields):
        request = service_pb2.ModelInferRequest(model_name=fields.pop("model", "cnn"))
        shape = fields.pop("shape", [1, 1, 8, 8])
        tensor = request.inputs.add(name="input", datatype=fields.pop("datatype", "FP32"), shape=shape)
        tensor.contents.fp32_contents.extend(fields.pop("values", [0.0] * int(np.prod(shape))))
        request.raw_input_contents.extend(fields.pop("raw", []))
        return lambda: api.ModelInfer(request, timeout=TIMEOUT_S)

    with stub(target) as api:
        assert code_of(infer(model="nope")) == grpc.StatusCode.NOT_FOUND
        assert code_of(infer(shape=[1, 1, 4, 4])) == grpc.StatusCode.INVALID_ARGUMENT
        assert code_of(infer(values=[0.0] * 3)) == grpc.StatusCode.INVALID_ARGUMENT
        huge = service_pb2.ModelInferRequest(model_name="cnn")  # bounded by the message's size, before numpy
        huge.inputs.add(name="input", datatype="FP32", shape=[1, 10**12]).contents.fp32_contents.append(0.0)
        with pytest.raises(grpc.RpcError) as info:
            api.ModelInfer(huge, timeout=TIMEOUT_S)
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "larger than" in info.value.details()
        assert code_of(infer(datatype="INT32")) == grpc.StatusCode.INVALID_ARGUMENT  # int in fp32_contents
        assert code_of(infer(values=[], raw=[b"\0" * 256, b"\0" * 256])) == grpc.StatusCode.INVALID_ARGUMENT
        missing = service_pb2.ModelMetadataRequest(name="nope")
        assert code_of(lambda: api.ModelMetadata(missing, timeout=TIMEOUT_S)) == grpc.StatusCode.NOT_FOUND
        one = iter([service_pb2.ModelInferRequest(model_name="cnn")])
        streaming = api.ModelStreamInfer(one, timeout=TIMEOUT_S)
        assert code_of(lambda: list(streaming)) == grpc.StatusCode.UNIMPLEMENTED
    with triton(target) as client, pytest.raises(InferenceServerException) as info:
        client.infer("cnn", [infer_input(np.zeros((1, 1, 4, 4), np.float32))])
    assert info.value.status() == "StatusCode.INVALID_ARGUMENT"
    assert "expects [n, 1, 8, 8]" in info.value.message()


def test_an_unexpected_failure_is_internal_logged_and_counted(server, monkeypatch, caplog):
    from torchship.serve.v2 import V2Signature

    url, target = server

    def failures() -> int:
        stats = httpx.get(url + "/v2/models/mlp/versions/1/stats", timeout=TIMEOUT_S).json()["model_stats"][0]
        return stats["inference_stats"]["fail"]["count"]

    def broken(*args, **kwargs):
        raise RuntimeError("something nobody expected")

    request = service_pb2.ModelInferRequest(model_name="mlp")
    request.inputs.add(name="input", datatype="FP32", shape=[1, 16]).contents.fp32_contents.extend([0.0] * 16)
    before = failures()
    monkeypatch.setattr(V2Signature, "check_input", broken)
    with stub(target) as api, pytest.raises(grpc.RpcError) as info:
        api.ModelInfer(request, timeout=TIMEOUT_S)
    assert info.value.code() == grpc.StatusCode.INTERNAL
    assert info.value.details().startswith("internal server error (RuntimeError)")
    assert "nobody expected" not in info.value.details()  # details go to the log, not to the client
    assert "something nobody expected" in caplog.text
    assert failures() == before + 1


def test_message_over_the_body_limit_is_resource_exhausted(repo):
    config = settings().model_copy(update={"max_body_bytes": 64 * 1024})
    with grpc_server(repo, config) as (_, target), triton(target) as client:
        big = np.zeros((32, 1, 8, 8), np.float32)  # 8 KB: fits
        assert client.infer("cnn", [infer_input(big)]).as_numpy("logits").shape == (32, 10)
        request = service_pb2.ModelInferRequest(model_name="cnn")
        request.inputs.add(name="input", datatype="FP32", shape=[300, 1, 8, 8])
        request.raw_input_contents.append(b"\0" * (300 * 64 * 4))  # 75 KB
        with stub(target) as api:
            code = code_of(lambda: api.ModelInfer(request, timeout=TIMEOUT_S))
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED


def test_overload_is_unavailable_with_retry_info(repo):
    from google.rpc import error_details_pb2, status_pb2

    config = settings(runtime="test-slow", max_batch_size=1, queue_limit=2)
    request = service_pb2.ModelInferRequest(model_name="mlp")
    request.inputs.add(name="input", datatype="FP32", shape=[1, 16]).contents.fp32_contents.extend([0.0] * 16)
    with grpc_server(repo, config) as (_, target), stub(target) as api, cf.ThreadPoolExecutor(12) as pool:

        def call(_):
            try:
                api.ModelInfer(request, timeout=TIMEOUT_S)
            except grpc.RpcError as exc:
                return exc
            return None

        failures = [exc for exc in pool.map(call, range(12)) if exc is not None]
    assert failures
    assert {exc.code() for exc in failures} == {grpc.StatusCode.UNAVAILABLE}
    trailers = dict(failures[0].trailing_metadata())
    assert trailers["retry-after"] == "1"
    status = status_pb2.Status.FromString(trailers["grpc-status-details-bin"])
    info = error_details_pb2.RetryInfo()
    assert status.details[0].Unpack(info)
    assert info.retry_delay.seconds == 1


def test_tokens_guard_inference_and_management(repo):
    security = Security(inference_token="s3cret", management_token="admin")
    user, admin = {"authorization": "Bearer s3cret"}, {"authorization": "Bearer admin"}
    with grpc_server(repo, security=security) as (_, target), triton(target) as client:
        assert client.is_server_live()
        assert client.is_server_ready()
        for headers in (None, {"authorization": "Bearer wrong"}):
            with pytest.raises(InferenceServerException) as info:
                client.infer("cnn", [infer_input(X)], headers=headers)
            assert info.value.status() == "StatusCode.UNAUTHENTICATED"
        assert client.infer("cnn", [infer_input(X)], headers=user).as_numpy("logits").shape == (4, 10)
        with pytest.raises(InferenceServerException) as info:
            client.get_model_repository_index(headers=user)
        assert info.value.status() == "StatusCode.UNAUTHENTICATED"
        assert client.get_model_repository_index(headers=admin, as_json=True)["models"]
    with grpc_server(repo, security=Security(management=False)) as (_, target), triton(target) as client:
        with pytest.raises(InferenceServerException) as info:
            client.unload_model("mlp")
        assert info.value.status() == "StatusCode.PERMISSION_DENIED"


def test_repository_index_unload_load(repo):
    with grpc_server(repo) as (_, target), triton(target) as client:
        index = client.get_model_repository_index(as_json=True)["models"]
        assert {(m["name"], m.get("version"), m["state"]) for m in index} >= {
            ("cnn", "1", "READY"),
            ("mlp", "1", "READY"),
        }
        client.unload_model("mlp")
        assert not client.is_model_ready("mlp")
        mlp = [m for m in client.get_model_repository_index(as_json=True)["models"] if m["name"] == "mlp"]
        assert mlp == [{"name": "mlp", "state": "UNAVAILABLE", "reason": "unloaded"}]
        client.load_model("mlp")
        assert client.is_model_ready("mlp")
        with pytest.raises(InferenceServerException) as info:
            client.load_model("mlp", config='{"backend": "python"}')
        assert info.value.status() == "StatusCode.INVALID_ARGUMENT"
        with pytest.raises(InferenceServerException) as info:
            client.load_model("../etc")
        assert info.value.status() == "StatusCode.INVALID_ARGUMENT"


def test_cli_refuses_a_taken_grpc_port_in_one_line(run_cli, repo):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        # the gRPC port is checked before HTTP binds, so the HTTP port is never opened
        code, _, err = run_cli("serve", str(repo), "--port", "8000", "--grpc-port", str(port))
    last = err.strip().splitlines()[-1]
    assert code == 2
    assert "Traceback" not in err
    assert last.startswith(f"error: cannot listen for gRPC on 127.0.0.1:{port}")
    assert "--no-grpc" in last


def test_one_process_does_not_share_a_taken_grpc_port(repo):
    from torchship.errors import ConfigError

    with socket.socket() as taken:
        taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)  # it would share; this server must not
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        app = create_app(repo, grpc_address=f"127.0.0.1:{taken.getsockname()[1]}")

        async def start() -> None:
            async with app.router.lifespan_context(app):
                pass

        with pytest.raises(ConfigError, match="cannot listen for gRPC"):
            asyncio.run(start())


def test_cli_defaults_to_the_triton_port():
    import typer

    from torchship.cli.main import _register, app
    from torchship.serve.server import GRPC_PORT

    _register()
    serve = typer.main.get_command(app).commands["serve"]
    assert serve.make_context("serve", ["some/path"]).params["grpc_port"] == GRPC_PORT == 8001


DRAIN_SERVER = """
import sys
sys.path.insert(0, sys.argv[4])
from serve_helpers import settings  # registers the test-slow runtime (50 ms per batch)
from torchship.serve import serve
config = settings(runtime="test-slow", max_batch_size=1, warmup=0).model_copy(update={"access_log": False})
serve(sys.argv[1], port=int(sys.argv[2]), grpc_port=int(sys.argv[3]), config=config, log_level="warning")
"""


def test_sigterm_drains_accepted_grpc_requests(repo):
    ports = []
    for _ in range(2):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            ports.append(probe.getsockname()[1])
    url, target = f"http://127.0.0.1:{ports[0]}", f"127.0.0.1:{ports[1]}"
    here = str(Path(__file__).parent)
    argv = [sys.executable, "-c", DRAIN_SERVER, str(repo / "mlp" / "1"), *map(str, ports), here]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    request = service_pb2.ModelInferRequest(model_name="tiny-mlp")
    request.inputs.add(name="input", datatype="FP32", shape=[1, 16]).contents.fp32_contents.extend([1.0] * 16)
    try:
        deadline = time.monotonic() + 90
        while not _ready(url):
            assert proc.poll() is None, proc.stderr.read()
            assert time.monotonic() < deadline, "server never became ready"
            time.sleep(0.1)
        with stub(target) as api, cf.ThreadPoolExecutor(12) as pool:
            futures = [pool.submit(api.ModelInfer, request, timeout=TIMEOUT_S) for _ in range(12)]
            busy_by = time.monotonic() + 10
            while (in_flight := _in_flight(url)) < 5 and time.monotonic() < busy_by:
                time.sleep(0.005)
            os.kill(proc.pid, signal.SIGTERM)
            answers = [f.result() for f in futures]  # raises if any RPC failed
        assert in_flight >= 5  # counted on the HTTP server's /metrics: one gauge for both protocols
        assert [len(a.raw_output_contents) for a in answers] == [2] * 12
        assert proc.wait(timeout=60) in (0, -signal.SIGTERM)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def _ready(url: str) -> bool:
    try:
        return httpx.get(url + "/v2/health/ready", timeout=2).status_code == 200
    except httpx.TransportError:
        return False


def _in_flight(url: str) -> float:
    text = httpx.get(url + "/metrics", timeout=5).text
    return float(re.search(r"^torchship_inflight_requests (\S+)$", text, re.M).group(1))
