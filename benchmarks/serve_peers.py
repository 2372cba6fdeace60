"""The servers ``serve_compare.py`` measures: how each one is started, made ready and stopped.

Every server starts cold in its own session (process group) with ``OMP_WAIT_POLICY=PASSIVE``
(idle OpenMP threads sleep instead of spinning on the cores the others need). ``Server`` waits
until it answers, and on exit stops its whole process tree: the group gets SIGTERM, then
SIGKILL, and any process of the tree that left the group is killed by its id.

TorchServe runs quiet: a log4j2 configuration at WARN with the access and metrics loggers off
(its default writes about ten log lines per request), and the handler lowers its Python
backend's logging to WARNING, which drops the per-batch "Backend received inference" and
``[METRICS]`` lines the frontend would otherwise read and re-log. ``quiet=False`` keeps
TorchServe's defaults, to reproduce a default-logging run.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import numpy as np
import orjson
from loadgen import free_port, process_tree, request_bytes

SHAPE = (3, 32, 32)

TS_HANDLER = '''
import json
import logging
import os
import sys
import torch
from ts.torch_handler.base_handler import BaseHandler


class Handler(BaseHandler):
    """TorchScript model.pt (loaded by BaseHandler); JSON {"data": [3072 floats]} per request."""

    def initialize(self, context):
        if os.environ.get("BENCH_TS_QUIET") == "1":  # no INFO lines per batch from the backend
            logging.getLogger().setLevel(logging.WARNING)
        super().initialize(context)
        print(f"bench handler: torch threads {torch.get_num_threads()}", file=sys.stderr, flush=True)

    def preprocess(self, data):
        rows = []
        for row in data:
            body = row.get("data") or row.get("body")
            if isinstance(body, (bytes, bytearray)):
                body = json.loads(body)
            rows.append(torch.tensor(body["data"], dtype=torch.float32).reshape(3, 32, 32))
        return torch.stack(rows)

    def inference(self, x):
        with torch.inference_mode():
            return self.model(x)

    def postprocess(self, out):
        return [{"logits": row} for row in out.tolist()]
'''

# TorchServe's own log4j2.xml (in model-server.jar) logs the access log, every backend line and
# every metric at INFO or below; this one keeps warnings and errors on stdout only.
TS_LOG4J2 = """<?xml version="1.0" encoding="UTF-8"?>
<Configuration>
  <Appenders>
    <Console name="STDOUT" target="SYSTEM_OUT">
      <PatternLayout pattern="%d{ISO8601} [%-5p] %t %c - %m%n"/>
    </Console>
  </Appenders>
  <Loggers>
    <Logger name="ACCESS_LOG" level="off"/>
    <Logger name="MODEL_METRICS" level="off"/>
    <Logger name="TS_METRICS" level="off"/>
    <Logger name="MODEL_LOG" level="warn"/>
    <Logger name="io.netty" level="error"/>
    <Logger name="org.apache" level="off"/>
    <Logger name="org.pytorch.serve" level="warn"/>
    <Root level="warn">
      <AppenderRef ref="STDOUT"/>
    </Root>
  </Loggers>
</Configuration>
"""

LITSERVE_APP = """
import sys
import litserve as ls
import torch

torch.set_num_threads(int(sys.argv[3]))


class API(ls.LitAPI):
    def setup(self, device):
        self.model = torch.jit.load(sys.argv[1]).eval()

    def decode_request(self, request):
        return torch.tensor(request["data"], dtype=torch.float32).reshape(3, 32, 32)

    def batch(self, inputs):
        return torch.stack(inputs)

    def predict(self, x):
        with torch.inference_mode():
            return self.model(x)

    def unbatch(self, output):
        return list(output)

    def encode_response(self, output):
        return {"logits": output.tolist()}


if __name__ == "__main__":  # LitServe starts its workers with multiprocessing spawn
    try:
        server = ls.LitServer(API(max_batch_size=32, batch_timeout=0.005), accelerator="cpu")
    except TypeError:  # LitServe before the batching options moved to LitAPI
        server = ls.LitServer(API(), accelerator="cpu", max_batch_size=32, batch_timeout=0.005)
    server.run(host="127.0.0.1", port=int(sys.argv[2]), generate_client_file=False)
"""

FASTAPI_APP = """
import sys
import torch
import uvicorn
from fastapi import FastAPI, Request

torch.set_num_threads(int(sys.argv[3]))
model = torch.jit.load(sys.argv[1]).eval()
app = FastAPI()


@app.post("/predict")
async def predict(request: Request):
    body = await request.json()
    x = torch.tensor(body["data"], dtype=torch.float32).reshape(1, 3, 32, 32)
    with torch.inference_mode():
        return {"logits": model(x)[0].tolist()}


uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[2]), log_level="warning", access_log=False)
"""

TORCHSHIP_APP = """
import sys
from torchship.serve import ModelSettings, ServeConfig, serve
config = ServeConfig(access_log=False, default=ModelSettings(runtime=sys.argv[3], max_batch_size=32,
                     max_queue_delay_ms=2.0, queue_limit=1024))
serve(sys.argv[1], port=int(sys.argv[2]), config=config, log_level="warning", workers=int(sys.argv[4]),
      grpc_port=int(sys.argv[5]) or None)
"""


def server_env(omp_wait_policy: str, **extra: str) -> dict[str, str]:
    return {**os.environ, "OMP_WAIT_POLICY": omp_wait_policy, **extra}


def answers(url: str, method: str = "GET", body: bytes | None = None) -> Callable[[], bool]:
    """A readiness check: ``url`` answers 200."""

    def check() -> bool:
        req = urllib.request.Request(
            url, data=body, method=method, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status == 200

    return check


class Server:
    """One server: start it cold, wait until ``ready()``, measure, stop its whole process tree."""

    def __init__(
        self,
        name: str,
        argv: list[str],
        ready: Callable[[], bool],
        payloads: dict[str, bytes],
        port: int,
        env: dict[str, str],
        cwd: Path | None = None,
        config: dict | None = None,
        grpc_port: int | None = None,
    ):
        self.name, self.argv, self.ready, self.payloads, self.port = name, argv, ready, payloads, port
        self.env, self.cwd, self.config, self.grpc_port = env, cwd, config or {}, grpc_port

    def __enter__(self) -> Server:
        self.log_path = Path(tempfile.gettempdir()) / f"serve-compare-{self.name}.log"
        self.log = self.log_path.open("w")
        self.start_s = time.monotonic()
        self.proc = subprocess.Popen(
            self.argv,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            env=self.env,
            cwd=self.cwd,
            start_new_session=True,
        )
        try:
            self._wait_ready(timeout_s=240)
        except BaseException:
            self.__exit__(None, None, None)
            raise
        self.startup_s = time.monotonic() - self.start_s
        return self

    def _wait_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(
                    f"{self.name} exited with status {self.proc.returncode}; see {self.log_path}"
                )
            try:
                if self.ready():
                    return
            except (OSError, ValueError):
                pass
            time.sleep(0.3)
        raise SystemExit(f"{self.name} was not ready after {timeout_s:.0f} s; see {self.log_path}")

    def __exit__(self, *exc) -> None:
        """SIGTERM to the group and every process of the tree (one that called setsid left the group),
        wait until all are gone, then SIGKILL whatever is left."""
        tree = process_tree(self.proc.pid)
        for sig, wait_s in ((signal.SIGTERM, 15.0), (signal.SIGKILL, 10.0)):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, sig)
            for p in tree:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(p, sig)
            deadline = time.monotonic() + wait_s
            while time.monotonic() < deadline:
                self.proc.poll()  # reap the direct child; the others are reaped by their parents
                alive = [p for p in tree if _state(p) not in ("Z", "gone")]
                if not alive:
                    break
                time.sleep(0.1)
            else:
                print(
                    f"  {self.name}: {len(alive)} process(es) still alive {wait_s:.0f} s after {sig.name}",
                    flush=True,
                )
                continue
            break
        self.proc.wait(10)
        self.log.close()


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "gone"


def plain_request(path: str, port: int) -> bytes:
    """The peers' request: {"data": [3,072 floats]} in float32 shortest form, like torchship's JSON."""
    x = np.random.default_rng(1).standard_normal((1, *SHAPE)).astype(np.float32)
    body = orjson.dumps({"data": x.ravel()}, option=orjson.OPT_SERIALIZE_NUMPY)
    return (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body


def torchserve_archive(root: Path, model_pt: Path, other: str) -> Path:
    """A model store with ``cnn.mar`` (the TorchScript file and the handler above)."""
    store = root / "ts-store"
    store.mkdir()
    (root / "handler.py").write_text(TS_HANDLER)
    pt = root / "model.pt"  # BaseHandler picks TorchScript by the .pt suffix
    pt.write_bytes(model_pt.read_bytes())
    archiver = Path(other).parent / "torch-model-archiver"
    subprocess.run(
        [
            str(archiver),
            "--model-name",
            "cnn",
            "--version",
            "1.0",
            "--serialized-file",
            str(pt),
            "--handler",
            str(root / "handler.py"),
            "--export-path",
            str(store),
            "--force",
        ],
        check=True,
    )
    return store


def torchserve_server(
    root: Path,
    store: Path,
    other: str,
    *,
    workers: int,
    batch_size: int,
    threads: int,
    quiet: bool,
    omp_wait_policy: str,
) -> Server:
    """TorchServe 0.12 with ``workers`` fixed workers, ``batch_size``, 5 ms max batch delay."""
    bindir = Path(other).parent
    home = root / f"ts-w{workers}-b{batch_size}"
    (home / "tmp").mkdir(parents=True)
    port, mport, metrics = free_port(), free_port(), free_port()
    models = {
        "cnn": {
            "1.0": {
                "defaultVersion": True,
                "marName": "cnn.mar",
                "minWorkers": workers,
                "maxWorkers": workers,
                "batchSize": batch_size,
                "maxBatchDelay": 5,
                "responseTimeout": 120,
            }
        }
    }
    vmargs = f"-Djava.io.tmpdir={home}/tmp"  # its own tmpdir: TorchServe caches unpacked archives there
    if quiet:
        (home / "log4j2.xml").write_text(TS_LOG4J2)
        vmargs += f" -Dlog4j.configurationFile=file://{home}/log4j2.xml"
    (home / "config.properties").write_text(
        textwrap.dedent(f"""\
        inference_address=http://127.0.0.1:{port}
        management_address=http://127.0.0.1:{mport}
        metrics_address=http://127.0.0.1:{metrics}
        model_store={store}
        load_models=cnn.mar
        models={json.dumps(models)}
        disable_token_authorization=true
        install_py_dep_per_model=false
        disable_system_metrics=true
        vmargs={vmargs}
        """)
    )
    env = server_env(
        omp_wait_policy,
        PATH=f"{bindir}:{os.environ['PATH']}",
        OMP_NUM_THREADS=str(threads),
        TS_DISABLE_TOKEN_AUTHORIZATION="true",
        BENCH_TS_QUIET="1" if quiet else "0",
        TMPDIR=str(home / "tmp"),
    )  # its pid file goes to TMPDIR: private to this run
    argv = [
        str(bindir / "torchserve"),
        "--start",
        "--foreground",
        "--ncs",
        "--disable-token-auth",
        "--ts-config",
        str(home / "config.properties"),
        "--model-store",
        str(store),
    ]

    def ready() -> bool:  # every worker READY, not just the first (a request could reach a loading one)
        with urllib.request.urlopen(f"http://127.0.0.1:{mport}/models/cnn", timeout=5) as r:
            described = json.loads(r.read())
        states = [w["status"] for w in described[0]["workers"]]
        return len(states) == workers and set(states) == {"READY"}

    return Server(
        f"torchserve-w{workers}-b{batch_size}",
        argv,
        ready,
        {"json": plain_request("/predictions/cnn", port)},
        port,
        env,
        cwd=home,
        config={
            "workers": workers,
            "batch_size": batch_size,
            "max_batch_delay_ms": 5,
            "threads_per_worker": threads,
            "quiet_logging": quiet,
        },
    )


def script_server(
    name: str, code: str, root: Path, other: str, model_pt: Path, threads: int, omp_wait_policy: str
) -> Server:
    """LitServe or FastAPI: a script (above) run by the peers' Python, answering POST /predict."""
    script = root / f"{name}_app.py"  # not fastapi.py: the script would shadow the package
    script.write_text(code)
    port = free_port()
    payload = plain_request("/predict", port)
    return Server(
        name,
        [other, str(script), str(model_pt), str(port), str(threads)],
        answers(f"http://127.0.0.1:{port}/predict", "POST", payload.split(b"\r\n\r\n", 1)[1]),
        {"json": payload},
        port,
        server_env(omp_wait_policy, OMP_NUM_THREADS=str(threads)),
        config={"threads": threads},
    )


def torchship_server(art, runtime: str, workers: int, modes: list[str], omp_wait_policy: str) -> Server:
    """torchship serve (max_batch_size 32, 2 ms queue delay), HTTP and, with ``grpc`` in modes, gRPC."""
    from loadgen import grpc_request_bytes

    port = free_port()
    grpc_port = free_port() if "grpc" in modes else 0
    shape = list(art.manifest.input.shape)
    payloads = {
        mode: grpc_request_bytes(art.manifest.name, shape)
        if mode == "grpc"
        else request_bytes(art.manifest.name, shape, mode == "binary", port)
        for mode in modes
    }
    argv = [
        sys.executable,
        "-c",
        TORCHSHIP_APP,
        str(art.path),
        str(port),
        runtime,
        str(workers),
        str(grpc_port),
    ]
    return Server(
        f"torchship-{runtime}-w{workers}",
        argv,
        answers(f"http://127.0.0.1:{port}/v2/health/ready"),
        payloads,
        port,
        server_env(omp_wait_policy),
        config={"runtime": runtime, "workers": workers, "max_batch_size": 32, "max_queue_delay_ms": 2.0},
        grpc_port=grpc_port or None,
    )
