"""The HTTP floor: what the same uvicorn protocol serves with an ASGI app that does no work.

The app reads the request body and answers a fixed ~100-byte v2-shaped JSON; it runs under
uvicorn with torchship's guarded httptools protocol (``serve/protocol.py``), the same loop
and the same pre-built binary-tensor request under wrk as ``serve_load.py --client wrk``. The
gap between this and ``torchship serve`` on the same request is the per-request cost of
torchship's own path (routing, decoding, checks, batching hand-off, encoding, statistics),
which is what limits small models against their in-process throughput.

Two more measurements split that gap, on the seeded CIFAR ``cnn`` exported to ONNX:

- ``--app``: torchship's ASGI app alone, called on a uvloop event loop by 32 concurrent
  in-process requests (the same body, no HTTP, no sockets): the event-loop thread's CPU per
  request is the cost of torchship's own path without any HTTP server.
- ``--fronts uvicorn,granian``: the same app behind two HTTP servers, with ``--workers``
  processes each: ``torchship serve`` (uvicorn with the guarded protocol) and granian (a Rust
  HTTP server, ASGI interface; installed separately, skipped when absent), under the same wrk
  load, started cold one after the other.

    PYTHONPATH=src .venv/bin/python benchmarks/http_floor.py --concurrency 32 --duration-s 8
    OMP_WAIT_POLICY=PASSIVE PYTHONPATH=src .venv/bin/python benchmarks/http_floor.py \
        --concurrency 32 --duration-s 8 --app --fronts uvicorn,granian --workers 2

Prints one line per concurrency, then one JSON line for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from loadgen import free_port, group_cpu_seconds, request_bytes, run_wrk  # noqa: E402

APP = """
import sys, uvicorn
from torchship.serve.protocol import guarded_http_protocol

BODY = b'{"model_name":"x","outputs":[{"name":"logits","datatype":"FP32","shape":[1,10],"data":[1]}]}'

async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            else:
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["path"] != "/v2/models/x/infer":
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"0")]})
        await send({"type": "http.response.body", "body": b""})
        return
    more = True
    while more:
        more = (await receive()).get("more_body", False)
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-length", str(len(BODY)).encode())]})
    await send({"type": "http.response.body", "body": BODY})

uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", access_log=False,
            http=guarded_http_protocol(16384, 10.0), loop="auto")
"""


# torchship's app as `torchship serve` runs it (--fronts uvicorn) and as granian imports it (the
# artifact comes in TORCHSHIP_ARTIFACT), with the same settings
SETTINGS = """
from torchship.serve import ModelSettings, ServeConfig
config = ServeConfig(access_log=False, default=ModelSettings(runtime="onnxruntime", max_batch_size=32,
                                                             max_queue_delay_ms=2.0))
"""
GRANIAN_TARGET = f"""{SETTINGS}import os
from torchship.serve.app import create_app
app = create_app(os.environ["TORCHSHIP_ARTIFACT"], config)
"""
SERVE = f"""{SETTINGS}import sys
from torchship.serve import serve
serve(sys.argv[1], port=int(sys.argv[2]), config=config, log_level="warning", workers=int(sys.argv[3]))
"""


def wait_ready(port: int, path: str, what: str, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + 180
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                raise SystemExit(f"{what} did not start") from None
            time.sleep(0.2)


def load_rows(name: str, proc: subprocess.Popen, port: int, payload: bytes, args) -> list[dict]:
    """wrk at each concurrency against a started server: req/s, latency, server CPU per request."""
    workdir = Path(tempfile.mkdtemp(prefix="floor-"))
    run_wrk(port, payload, 8, 1, workdir)  # warm-up
    rows = []
    for c in map(int, args.concurrency.split(",")):
        cpu0, t0 = group_cpu_seconds(proc.pid), time.perf_counter()
        load = run_wrk(port, payload, c, args.duration_s, workdir)
        cpu_s, wall_s = group_cpu_seconds(proc.pid) - cpu0, time.perf_counter() - t0
        row = {"server": name, **load, "server_cpu_percent": 100 * cpu_s / wall_s}
        row["server_cpu_us_per_req"] = cpu_s * 1e6 / max(row["req_per_s"] * wall_s, 1)
        rows.append(row)
        print(
            f"{name:<22} c={c:3}  {row['req_per_s']:8.0f} req/s  p50 {row['p50_ms']:.2f} ms  "
            f"server CPU {row['server_cpu_us_per_req']:.0f} us/req ({row['server_cpu_percent']:.0f} %)",
            flush=True,
        )
    return rows


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def floor_rows(args) -> list[dict]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-c", APP, str(port)])
    try:
        wait_ready(port, "/", "the floor server", proc)
        payload = request_bytes("x", [3, 32, 32], True, port)  # the cnn's 12 KB binary-tensor request
        return load_rows("floor (no work)", proc, port, payload, args)
    finally:
        stop(proc)


def front_rows(front: str, art_path: Path, args) -> list[dict]:
    """torchship's app for the cnn behind ``front`` (uvicorn: ``torchship serve``; or granian)."""
    port = free_port()
    env = {**os.environ, "TORCHSHIP_ARTIFACT": str(art_path)}
    if front == "granian":
        if importlib.util.find_spec("granian") is None:
            print("granian is not installed: skipped (pip install granian)")
            return []
        target = Path(tempfile.mkdtemp(prefix="granian-"))
        (target / "torchship_granian_app.py").write_text(GRANIAN_TARGET)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(target), env.get("PYTHONPATH")]))
        cmd = [sys.executable, "-m", "granian", "--interface", "asgi", "--http", "1", "--no-ws"]
        cmd += ["--loop", "uvloop", "--workers", str(args.workers), "--port", str(port)]
        cmd += ["--log-level", "warning", "torchship_granian_app:app"]
    else:
        cmd = [sys.executable, "-c", SERVE, str(art_path), str(port), str(args.workers)]
    proc = subprocess.Popen(cmd, env=env)
    try:
        wait_ready(port, "/v2/health/ready", front, proc)
        url = f"http://127.0.0.1:{port}"
        with urllib.request.urlopen(urllib.request.Request(f"{url}/v2/repository/index", b"{}")) as r:
            name = json.loads(r.read())[0]["name"]
        payload = request_bytes(name, [3, 32, 32], True, port)
        return load_rows(f"torchship app, {front}", proc, port, payload, args)
    finally:
        stop(proc)


async def app_alone(art_path: Path, duration_s: float, concurrency: int = 32) -> dict:
    """The event loop's CPU per request of torchship's app alone: ``concurrency`` in-process clients
    call the ASGI app with the 12 KB binary-tensor body, no HTTP server, no sockets."""
    from torchship.serve import ModelSettings, ServeConfig
    from torchship.serve.app import create_app
    from torchship.serve.protocol import GONE

    config = ServeConfig(
        access_log=False,
        default=ModelSettings(runtime="onnxruntime", max_batch_size=32, max_queue_delay_ms=2.0),
    )
    app = create_app(art_path, config)
    inbox: asyncio.Queue = asyncio.Queue()
    outbox: asyncio.Queue = asyncio.Queue()
    await inbox.put({"type": "lifespan.startup"})
    lifespan = asyncio.create_task(
        app({"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}, inbox.get, outbox.put)
    )
    await outbox.get()
    state = app.state.serve
    while not state.repository.index(ready_only=True):
        await asyncio.sleep(0.05)
    name = state.repository.index()[0]["name"]
    head, body = request_bytes(name, [3, 32, 32], True, 0).split(b"\r\n\r\n", 1)
    headers = [
        tuple(part.strip().lower().encode() for part in line.split(":", 1))
        for line in head.decode().split("\r\n")[1:]
    ]
    loop = asyncio.get_running_loop()
    message = {"type": "http.request", "body": body, "more_body": False}

    async def receive() -> dict:
        return message

    async def one() -> None:
        status = []

        async def send(m: dict) -> None:
            if m["type"] == "http.response.start":
                status.append(m["status"])

        scope = {
            "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
            "scheme": "http", "path": f"/v2/models/{name}/infer", "raw_path": b"", "query_string": b"",
            "root_path": "", "headers": headers, "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 1),
            "state": {}, GONE: loop.create_future(),
        }  # fmt: skip
        await app(scope, receive, send)
        if status != [200]:
            raise SystemExit(f"the app answered {status}")

    async def client(until: float, count: list[int]) -> None:
        while time.perf_counter() < until:
            await one()
            count[0] += 1

    await asyncio.gather(*[client(time.perf_counter() + 1.0, [0]) for _ in range(concurrency)])  # warm-up
    count = [0]
    cpu0, t0 = time.thread_time(), time.perf_counter()
    await asyncio.gather(*[client(t0 + duration_s, count) for _ in range(concurrency)])
    cpu_s, wall_s = time.thread_time() - cpu0, time.perf_counter() - t0
    await inbox.put({"type": "lifespan.shutdown"})
    await outbox.get()
    await lifespan
    row = {"server": "torchship app alone", "concurrency": concurrency, "req_per_s": count[0] / wall_s}
    row["loop_cpu_us_per_req"] = cpu_s * 1e6 / count[0]
    print(
        f"{row['server']:<22} c={concurrency:3}  {row['req_per_s']:8.0f} req/s  "
        f"event-loop CPU {row['loop_cpu_us_per_req']:.0f} us/req (no HTTP)",
        flush=True,
    )
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--concurrency", default="32")
    parser.add_argument("--duration-s", type=float, default=8.0)
    parser.add_argument("--app", action="store_true", help="also measure torchship's app alone (no HTTP)")
    parser.add_argument(
        "--fronts", default="", help="comma list of uvicorn, granian: torchship's app behind each"
    )
    parser.add_argument("--workers", type=int, default=1, help="processes of each --fronts server")
    args = parser.parse_args()
    rows = floor_rows(args)
    if args.app or args.fronts:
        from serve_load import make_artifact  # the benchmarks' directory is on sys.path (above)

        art_path = Path(make_artifact("cnn", Path(tempfile.mkdtemp(prefix="floor-art-")), "onnxruntime").path)
        if args.app:
            import uvloop

            rows.append(uvloop.run(app_alone(art_path, args.duration_s)))
        for front in filter(None, args.fronts.split(",")):
            rows += front_rows(front, art_path, args)
    print(
        json.dumps(
            {
                "benchmark": "http_floor",
                "workers": args.workers,
                "machine": {
                    "cpu_count": os.cpu_count(),
                    "platform": platform.platform(),
                    "python": platform.python_version(),
                },
                "rows": rows,
            }
        )
    )


if __name__ == "__main__":
    main()
