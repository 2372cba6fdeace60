"""``serve --workers 2``: real processes behind one port on 127.0.0.1, each with a hard timeout.

Each worker also answers on its private Unix socket (``w<i>.sock`` in the supervisor's temporary
directory, under the test's TMPDIR), through which these tests reach one worker on purpose.
"""

from __future__ import annotations

import concurrent.futures as cf
import importlib.util
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
from serve_helpers import reference, v2_body

# A file, not `python -c`: spawned workers re-import the main module, which registers the runtime there too.
SERVER = """
import os, sys, time
from torchship.runtime import runtimes
from torchship.runtime.eager import EagerPredictor
from torchship.serve import ModelSettings, ServeConfig, serve

class Slow(EagerPredictor):
    def predict(self, batch):
        time.sleep(float(os.environ["SLOW_S"]))
        return super().predict(batch)

if "workers-slow" not in runtimes:
    runtimes.register("workers-slow")(lambda art, opts: Slow(art, opts))

if __name__ == "__main__":
    rows = int(os.environ["MAX_ROWS"])
    config = ServeConfig(default=ModelSettings(runtime="workers-slow", max_batch_size=rows, warmup=0))
    grpc_port = int(sys.argv[3]) if len(sys.argv) > 3 else None
    serve(sys.argv[1], port=int(sys.argv[2]), config=config, workers=2, log_level="warning",
          grpc_port=grpc_port)
"""
TIMEOUT_S = 90


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, path: Path, tmp: Path, slow_s: float, max_rows: int, grpc: bool = False):
        port = _free_port()
        self.grpc_port = _free_port() if grpc else None
        self.url = f"http://127.0.0.1:{port}"
        self.tmp = tmp
        script = tmp / "server.py"
        script.write_text(SERVER)
        self.log = tmp / "stderr.txt"
        env = {
            **os.environ,
            "TMPDIR": str(tmp),
            "SLOW_S": str(slow_s),
            "MAX_ROWS": str(max_rows),
            "OMP_NUM_THREADS": "1",
        }
        with self.log.open("w") as err:
            argv = [sys.executable, str(script), str(path), str(port)]
            argv += [str(self.grpc_port)] if grpc else []
            self.proc = subprocess.Popen(argv, stderr=err, env=env)
        self.wait_ready()

    def wait_ready(self) -> None:
        deadline = time.monotonic() + TIMEOUT_S
        while not self.ready():
            assert self.proc.poll() is None, self.log.read_text()[-3000:]
            assert time.monotonic() < deadline, "server never became ready"
            time.sleep(0.1)

    def ready(self) -> bool:
        try:
            return httpx.get(self.url + "/v2/health/ready", timeout=5).status_code == 200
        except httpx.TransportError:
            return False

    def worker(self, index: int) -> httpx.Client:
        """A client for one worker alone, through its private socket."""
        (directory,) = self.tmp.glob("torchship-serve-*")
        transport = httpx.HTTPTransport(uds=str(directory / f"w{index}.sock"))
        return httpx.Client(transport=transport, base_url="http://worker", timeout=30)

    def worker_pids(self) -> list[int]:
        out = subprocess.run(
            ["ps", "-ww", "-o", "pid=,args=", "--ppid", str(self.proc.pid)], capture_output=True, text=True
        )
        # the other child is multiprocessing's resource tracker
        return sorted(int(line.split()[0]) for line in out.stdout.splitlines() if "spawn_main" in line)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        for pid in self.worker_pids():
            os.kill(pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def server(repo, tmp_path_factory):
    grpc = all(importlib.util.find_spec(name) is not None for name in ("tritonclient", "grpc"))
    server = Server(repo, tmp_path_factory.mktemp("workers"), slow_s=0.0, max_rows=32, grpc=grpc)
    yield server
    server.stop()


def _infer(url: str, model: str, x: np.ndarray) -> httpx.Response:
    with httpx.Client(timeout=30) as http:  # a new connection each time: the kernel may give it to any worker
        return http.post(f"{url}/v2/models/{model}/infer", json=v2_body(x))


def _counts(server: Server, model: str) -> tuple[int, int, float]:
    stats = httpx.get(f"{server.url}/v2/models/{model}/stats", timeout=10).json()["model_stats"][0]
    text = httpx.get(server.url + "/metrics", timeout=10).text
    found = re.search(
        rf'^torchship_requests_total{{model="{model}",status="200",version="1"}} (\S+)$', text, re.M
    )
    return (
        stats["inference_count"],
        stats["inference_stats"]["success"]["count"],
        float(found.group(1) if found else 0),
    )


def test_workers_answer_distinct_concurrent_inputs_correctly(server, repo):
    xs = np.random.default_rng(0).normal(size=(24, 1, 1, 8, 8)).astype(np.float32)
    with cf.ThreadPoolExecutor(12) as pool:
        responses = list(pool.map(lambda x: _infer(server.url, "cnn", x), xs))
    assert [r.status_code for r in responses] == [200] * len(xs)
    for x, response in zip(xs, responses, strict=True):
        logits = np.array(response.json()["outputs"][0]["data"], np.float32)
        np.testing.assert_allclose(logits, reference(repo, "cnn", "2", x)[0], atol=1e-5)


def test_metrics_and_stats_are_summed_over_workers(server):
    before = _counts(server, "mlp")
    x = np.ones((1, 16), np.float32)
    with server.worker(0) as w0, server.worker(1) as w1:  # 3 on worker 0, 5 on worker 1, on purpose
        for client, k in ((w0, 3), (w1, 5)):
            for _ in range(k):
                assert client.post("/v2/models/mlp/infer", json=v2_body(x)).status_code == 200
        own = [c.get("/v2/models/mlp/stats").json()["model_stats"][0]["inference_count"] for c in (w0, w1)]
    for _ in range(4):
        assert _infer(server.url, "mlp", x).status_code == 200
    after = _counts(server, "mlp")
    assert [b - a for a, b in zip(before, after, strict=True)] == [12, 12, 12.0]
    assert min(own) >= 3  # each worker counts only its own; the port sums them
    assert sum(own) <= after[0]
    text = server.log.read_text()
    assert '{"worker":0,' in text  # access lines say which worker answered
    assert '{"worker":1,' in text


def test_unload_and_load_reach_every_worker_and_a_killed_worker_is_replaced(server):
    headers = {"content-type": "application/json"}
    assert (
        httpx.post(f"{server.url}/v2/repository/models/mlp/unload", timeout=30, headers=headers).status_code
        == 200
    )
    with server.worker(0) as w0, server.worker(1) as w1:
        assert [c.get("/v2/models/mlp/ready").status_code for c in (w0, w1)] == [404, 404]
    old = server.worker_pids()
    os.kill(old[1], signal.SIGKILL)
    deadline = time.monotonic() + TIMEOUT_S
    while server.ready():  # a missing worker makes the whole server unready...
        assert time.monotonic() < deadline
        time.sleep(0.02)
    server.wait_ready()  # ...until its replacement is up
    assert len(server.worker_pids()) == 2
    assert old[1] not in server.worker_pids()
    text = httpx.get(server.url + "/metrics", timeout=10).text
    assert re.search(r'^torchship_worker_restarts_total{worker="\d"} 1.0$', text, re.M), text
    assert "restarted as pid" in server.log.read_text()
    with server.worker(0) as w0, server.worker(1) as w1:  # the replacement remembers the unload
        assert [c.get("/v2/models/mlp/ready").status_code for c in (w0, w1)] == [404, 404]
        assert httpx.post(f"{server.url}/v2/repository/models/mlp/load", timeout=60).status_code == 200
        assert [c.get("/v2/models/mlp/ready").status_code for c in (w0, w1)] == [200, 200]
    assert _infer(server.url, "mlp", np.ones((1, 16), np.float32)).status_code == 200


def _grpc_client(server: Server):
    """A tritonclient.grpc client on a connection of its own, so the kernel may give it to either worker.

    grpcio shares one connection between channels with the same target and arguments unless
    each channel keeps its own subchannel pool.
    """
    grpcclient = pytest.importorskip("tritonclient.grpc")
    return grpcclient.InferenceServerClient(
        f"127.0.0.1:{server.grpc_port}", channel_args=[("grpc.use_local_subchannel_pool", 1)]
    )


def _own_counts(server: Server, model: str) -> list[int]:
    """Each worker's own inference count (its private socket answers for itself alone)."""
    with server.worker(0) as w0, server.worker(1) as w1:
        return [
            c.get(f"/v2/models/{model}/stats").json()["model_stats"][0]["inference_count"] for c in (w0, w1)
        ]


def test_grpc_is_served_by_every_worker_and_counted_over_all(server, repo):
    grpcclient = pytest.importorskip("tritonclient.grpc")
    k = 24  # connections: all on one worker by chance with probability 2 * 2**-24
    xs = np.random.default_rng(1).normal(size=(k, 1, 16)).astype(np.float32)
    clients = [_grpc_client(server) for _ in range(k)]
    by_worker: dict[int, list] = {0: [], 1: []}
    try:
        before, own = _counts(server, "mlp"), _own_counts(server, "mlp")
        for client, x in zip(clients, xs, strict=True):
            inp = grpcclient.InferInput("input", list(x.shape), "FP32")
            inp.set_data_from_numpy(x)
            logits = client.infer("mlp", [inp], client_timeout=30).as_numpy("logits")
            np.testing.assert_allclose(logits, reference(repo, "mlp", "1", x), atol=1e-5)
            now = _own_counts(server, "mlp")
            (served,) = [i for i in (0, 1) if now[i] == own[i] + 1]  # the one worker that answered
            by_worker[served].append(client)
            own = now
        after = _counts(server, "mlp")
        assert [b - a for a, b in zip(before, after, strict=True)] == [k, k, float(k)]
        assert [len(by_worker[0]) > 0, len(by_worker[1]) > 0] == [True, True]  # both workers answered gRPC
        on_0, on_1 = by_worker[0][0], by_worker[1][0]
        for client in (on_0, on_1):  # each worker's gRPC service sees the whole server
            assert client.is_server_ready(client_timeout=30)
            stats = client.get_inference_statistics("mlp", as_json=True, client_timeout=30)["model_stats"]
            assert int(stats[0]["inference_count"]) == after[0]
        on_1.unload_model("mlp", client_timeout=60)  # from worker 1: reaches worker 0 too
        assert [c.is_model_ready("mlp", client_timeout=30) for c in (on_0, on_1)] == [False, False]
        on_0.load_model("mlp", client_timeout=60)
        assert [c.is_model_ready("mlp", client_timeout=30) for c in (on_0, on_1)] == [True, True]
    finally:
        for client in clients:
            client.close()


def test_sigterm_drains_every_worker(repo, tmp_path):
    grpc = importlib.util.find_spec("tritonclient") is not None
    server = Server(repo / "mlp" / "1", tmp_path, slow_s=0.25, max_rows=1, grpc=grpc)
    clients = [_grpc_client(server) for _ in range(8 if grpc else 0)]  # on either worker
    try:
        x = np.ones((1, 16), np.float32)
        for client in clients:
            assert client.is_server_live(client_timeout=30)  # connected before the signal
        with cf.ThreadPoolExecutor(20) as pool:
            futures = [pool.submit(lambda: _infer(server.url, "tiny-mlp", x).status_code) for _ in range(12)]
            futures += [pool.submit(_grpc_infer, client, "tiny-mlp", x) for client in clients]
            busy_by = time.monotonic() + 20
            while (in_flight := _in_flight(server.url)) < 5 and time.monotonic() < busy_by:
                time.sleep(0.01)
            server.proc.send_signal(signal.SIGTERM)
            statuses = [f.result() for f in futures]
        assert in_flight >= 5  # 0.25 s per request, one at a time per worker: most still queued
        assert statuses == [200] * len(futures)  # HTTP and gRPC, in every worker
        assert server.proc.wait(timeout=TIMEOUT_S) == 0
        assert not list(tmp_path.glob("torchship-serve-*"))  # metrics files and sockets removed
        with pytest.raises(httpx.TransportError):
            httpx.get(server.url + "/v2/health/live", timeout=2)
    finally:
        for client in clients:
            client.close()
        server.stop()


def _grpc_infer(client, model: str, x: np.ndarray) -> int:
    """200 once ``client`` got its answer (a failure raises)."""
    from tritonclient.grpc import InferInput

    inp = InferInput("input", list(x.shape), "FP32")
    inp.set_data_from_numpy(x)
    client.infer(model, [inp], client_timeout=30)
    return 200


def _in_flight(url: str) -> float:
    text = httpx.get(url + "/metrics", timeout=5).text
    return float(re.search(r"^torchship_inflight_requests (\S+)$", text, re.M).group(1))


def test_a_bad_artifact_is_one_line_and_exit_2_with_workers(run_cli, tmp_path):
    # a path with no model passes the CLI (it is not one artifact) and fails in every worker's
    # create_app: the supervisor must say it once, in one line, and not restart them forever
    code, _, err = run_cli("serve", str(tmp_path), "--workers", "2", "--no-grpc", "--port", str(_free_port()))
    assert code == 2
    assert err.strip().splitlines()[-1].startswith("error: ")
    assert err.count("holds no model") == 1


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_a_taken_port_is_one_line_with_workers(run_cli, repo, protocol):
    if protocol == "grpc":
        pytest.importorskip("tritonclient.grpc")
    with socket.socket() as taken:
        # a listener that allows sharing: the workers' own SO_REUSEPORT binds would join it silently
        taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        ports = ["--port", str(port), "--no-grpc"]
        if protocol == "grpc":
            ports = ["--port", str(_free_port()), "--grpc-port", str(port)]
        code, _, err = run_cli("serve", str(repo), "--workers", "2", *ports)
    assert code == 2
    where = "for gRPC on" if protocol == "grpc" else "on"
    assert err.strip().splitlines()[-1].startswith(f"error: cannot listen {where} 127.0.0.1:{port}")
