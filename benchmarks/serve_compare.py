"""torchship's server against TorchServe, LitServe and a plain FastAPI app: same model, same load, one run.

The model is a CIFAR-shaped ``cnn`` (3x32x32 inputs, seeded) saved as TorchScript, which every
server loads; torchship also serves it with its ONNX Runtime runtime. Each server runs alone
(the others are stopped), with its own batching on, and gets the same single-sample requests
from the light asyncio keep-alive client of ``serve_load.py`` at each concurrency:

- torchship: Open Inference Protocol v2 JSON (3,072 floats, ~34 KB) and binary tensors;
- TorchServe 0.12: a TorchScript handler, 2 workers, batch_size 16, max_batch_delay 5 ms;
- LitServe: max_batch_size 32, batch_timeout 5 ms;
- FastAPI: one ``async def`` endpoint, no batching (what people write by hand).

The competitors need packages torchship does not depend on, so they run from a separate
virtual environment (nothing here is installed by the test suite)::

    python3 -m venv /tmp/bench-venv
    /tmp/bench-venv/bin/pip install torch==2.13.0
    /tmp/bench-venv/bin/pip install torch==2.13.0 torchserve==0.12.0 torch-model-archiver==0.12.0 \\
        litserve==0.2.19 fastapi uvicorn numpy
    .venv/bin/python benchmarks/serve_compare.py --other-python /tmp/bench-venv/bin/python

Needs Java for TorchServe. Prints a table and one JSON line for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.request
from pathlib import Path

import numpy as np
import orjson

sys.path.insert(0, str(Path(__file__).parent))
from serve_load import cpu_seconds, in_process_limit, request_bytes, run_load  # noqa: E402

SHAPE = (3, 32, 32)

TS_HANDLER = '''
import json
import torch
from ts.torch_handler.base_handler import BaseHandler


class Handler(BaseHandler):
    """TorchScript model.pt (loaded by BaseHandler); JSON {"data": [3072 floats]} per request."""

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

LITSERVE_APP = '''
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
'''

FASTAPI_APP = '''
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
'''

TORCHSHIP_APP = '''
import sys
from torchship.serve import ModelSettings, ServeConfig, serve
config = ServeConfig(access_log=False, default=ModelSettings(runtime=sys.argv[3], max_batch_size=32,
                     max_queue_delay_ms=2.0, queue_limit=1024))
serve(sys.argv[1], port=int(sys.argv[2]), config=config, log_level="warning", workers=int(sys.argv[4]))
'''


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, method: str = "GET", body: bytes | None = None, timeout_s: float = 240) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            req = urllib.request.Request(url, data=body, method=method, headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(req, timeout=5) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.3)
    raise SystemExit(f"{url} never answered 200")


def plain_request(path: str, port: int) -> bytes:
    x = np.random.default_rng(1).standard_normal((1, *SHAPE)).astype(np.float32)
    body = orjson.dumps({"data": x.ravel()}, option=orjson.OPT_SERIALIZE_NUMPY)
    return (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode() + body


class Server:
    """One server process: start, wait until it answers, measure, stop (its whole process group)."""

    def __init__(self, name: str, argv: list[str], ready: tuple, payloads: dict[str, bytes], port: int,
                 env: dict | None = None, cwd: Path | None = None, stop: list[str] | None = None):
        self.name, self.argv, self.ready, self.payloads, self.port = name, argv, ready, payloads, port
        self.env, self.cwd, self.stop_argv = env, cwd, stop

    def __enter__(self):
        self.log = open(Path(tempfile.gettempdir()) / f"serve-compare-{self.name}.log", "w")  # noqa: SIM115
        self.proc = subprocess.Popen(self.argv, stdout=self.log, stderr=subprocess.STDOUT, env=self.env,
                                     cwd=self.cwd, start_new_session=True)
        try:
            wait_http(*self.ready)
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc):
        if self.stop_argv:
            subprocess.run(self.stop_argv, env=self.env, cwd=self.cwd, capture_output=True, timeout=120)
        with _suppress():
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.log.close()


class _suppress:  # noqa: N801
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return exc[0] is not None and issubclass(exc[0], ProcessLookupError)


def group_cpu_seconds(pid: int) -> float:
    """CPU seconds of a process and all its descendants (TorchServe and LitServe run workers)."""
    total, todo = 0.0, [pid]
    while todo:
        p = todo.pop()
        try:
            total += cpu_seconds(p)
            children = Path(f"/proc/{p}/task/{p}/children").read_text().split()
        except OSError:
            continue
        todo.extend(int(c) for c in children)
    return total


def measure(server: Server, concurrency: list[int], duration_s: float) -> list[dict]:
    rows = []
    for mode, payload in server.payloads.items():
        asyncio.run(run_load(server.port, payload, 8, 2.0))  # warm-up: workers, JIT, allocator
        for c in concurrency:
            cpu0 = group_cpu_seconds(server.proc.pid)
            t0 = time.perf_counter()
            row = {"server": server.name, "mode": mode, "body_bytes": len(payload),
                   **asyncio.run(run_load(server.port, payload, c, duration_s))}
            served = row["req_per_s"] * (time.perf_counter() - t0)
            row["server_cpu_ms_per_req"] = (group_cpu_seconds(server.proc.pid) - cpu0) * 1e3 / max(served, 1)
            rows.append(row)
            print(f"{server.name:22} {mode:6} c={c:3}  {row['req_per_s']:8.0f} req/s  p50 {row['p50_ms']:7.2f} ms  "
                  f"p99 {row['p99_ms']:7.2f}  errors {row['errors']}  CPU {row['server_cpu_ms_per_req']:.2f} ms/req",
                  flush=True)
    return rows


def torchserve_server(root: Path, model_pt: Path, other: str, threads: int) -> Server:
    bindir = Path(other).parent
    store = root / "ts-store"
    store.mkdir()
    (root / "handler.py").write_text(TS_HANDLER)
    shutil.copy(model_pt, root / "model.pt")  # BaseHandler picks TorchScript by the .pt suffix
    model_pt = root / "model.pt"
    subprocess.run([str(bindir / "torch-model-archiver"), "--model-name", "cnn", "--version", "1.0",
                    "--serialized-file", str(model_pt), "--handler", str(root / "handler.py"),
                    "--export-path", str(store), "--force"], check=True)
    port, mport, metrics = free_port(), free_port(), free_port()
    models = {"cnn": {"1.0": {"defaultVersion": True, "marName": "cnn.mar", "minWorkers": 2, "maxWorkers": 2,
                              "batchSize": 16, "maxBatchDelay": 5, "responseTimeout": 120}}}
    (root / "config.properties").write_text(textwrap.dedent(f"""\
        inference_address=http://127.0.0.1:{port}
        management_address=http://127.0.0.1:{mport}
        metrics_address=http://127.0.0.1:{metrics}
        model_store={store}
        load_models=cnn.mar
        models={json.dumps(models)}
        disable_token_authorization=true
        install_py_dep_per_model=false
        disable_system_metrics=true
        vmargs=-Djava.io.tmpdir={root}/ts-tmp
        """))  # its own tmpdir: TorchServe caches unpacked archives there by model name
    (root / "ts-tmp").mkdir()
    env = {**os.environ, "PATH": f"{bindir}:{os.environ['PATH']}", "OMP_NUM_THREADS": str(threads),
           "TS_DISABLE_TOKEN_AUTHORIZATION": "true"}
    argv = [str(bindir / "torchserve"), "--start", "--foreground", "--ncs", "--disable-token-auth",
            "--ts-config", str(root / "config.properties"), "--model-store", str(store)]
    payload = plain_request("/predictions/cnn", port)
    body = payload.split(b"\r\n\r\n", 1)[1]
    return Server("torchserve-0.12", argv, (f"http://127.0.0.1:{port}/predictions/cnn", "POST", body),
                  {"json": payload}, port, env=env, cwd=root,
                  stop=[str(bindir / "torchserve"), "--stop"])


def script_server(name: str, code: str, root: Path, other: str, model_pt: Path, threads: int) -> Server:
    script = root / f"{name}_app.py"  # not fastapi.py: the script would shadow the package
    script.write_text(code)
    port = free_port()
    payload = plain_request("/predict", port)
    body = payload.split(b"\r\n\r\n", 1)[1]
    return Server(name, [other, str(script), str(model_pt), str(port), str(threads)],
                  (f"http://127.0.0.1:{port}/predict", "POST", body), {"json": payload}, port)


def torchship_server(art, runtime: str, root: Path, workers: int = 1) -> Server:
    port = free_port()
    payloads = {mode: request_bytes(art.manifest.name, list(SHAPE), mode == "binary", port) for mode in ("json", "binary")}
    argv = [sys.executable, "-c", TORCHSHIP_APP, str(art.path), str(port), runtime, str(workers)]
    return Server(f"torchship-{runtime}-w{workers}", argv,
                  (f"http://127.0.0.1:{port}/v2/health/ready",), payloads, port)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--other-python", required=True, help="python of the venv with torchserve/litserve/fastapi")
    parser.add_argument("--servers", default="torchship-onnxruntime,torchship-torchscript,torchserve,litserve,fastapi")
    parser.add_argument("--concurrency", default="1,32")
    parser.add_argument("--duration-s", type=float, default=5.0)
    parser.add_argument("--threads", type=int, default=1, help="torch threads per worker for the competitors")
    parser.add_argument("--workers", default="1", help="torchship serve --workers, one run each: e.g. 1,2")
    args = parser.parse_args()

    import torch

    from torchship.export import export
    from torchship.testing import tiny_artifact

    if shutil.which("java") is None and "torchserve" in args.servers:
        raise SystemExit("TorchServe needs Java (apt-get install default-jre-headless)")
    root = Path(tempfile.mkdtemp(prefix="serve-compare-"))
    art = export(tiny_artifact("cnn", shape=SHAPE, path=root / "cnn"), ["onnx", "torchscript"])
    model_pt = art.path / art.manifest.exports["torchscript"]["file"]
    concurrency = [int(c) for c in args.concurrency.split(",")]
    limit = in_process_limit(art, "onnxruntime", None)
    print(f"in-process onnxruntime: batch-1 p50 {limit['p50_ms_batch1']:.3f} ms, best "
          f"{limit['best_samples_per_s']:.0f} samples/s at batch {limit['best_batch']}", flush=True)
    rows = []
    for name in args.servers.split(","):
        if name.startswith("torchship-"):
            for workers in map(int, args.workers.split(",")):
                with torchship_server(art, name.removeprefix("torchship-"), root, workers) as server:
                    rows += measure(server, concurrency, args.duration_s)
            continue
        if name == "torchserve":
            server = torchserve_server(root, model_pt, args.other_python, args.threads)
        elif name == "litserve":
            server = script_server("litserve-0.2", LITSERVE_APP, root, args.other_python, model_pt, args.threads)
        elif name == "fastapi":
            server = script_server("fastapi", FASTAPI_APP, root, args.other_python, model_pt, args.threads)
        else:
            raise SystemExit(f"unknown server {name!r}")
        with server:
            rows += measure(server, concurrency, args.duration_s)
    base = {(r["mode"], r["concurrency"]): r["req_per_s"] for r in rows if r["server"] == "torchserve-0.12"}
    print(f"\n{'server':22} {'body':6} {'conc':>4} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'errors':>6} "
          f"{'× TorchServe JSON':>18}")
    for r in rows:
        ts = base.get(("json", r["concurrency"]))
        ratio = f"{r['req_per_s'] / ts:.2f}×" if ts else "–"
        print(f"{r['server']:22} {r['mode']:6} {r['concurrency']:4d} {r['req_per_s']:8.0f} {r['p50_ms']:8.2f} "
              f"{r['p99_ms']:8.2f} {r['errors']:6d} {ratio:>18}")
    print(json.dumps({"benchmark": "serve_compare", "in_process": limit, "rows": rows,
                      "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform(),
                                  "python": platform.python_version(), "torch": torch.__version__}}))


if __name__ == "__main__":
    main()
