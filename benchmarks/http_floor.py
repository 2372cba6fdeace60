"""The HTTP floor: what the same uvicorn protocol serves with an ASGI app that does no work.

The app reads the request body and answers a fixed ~100-byte v2-shaped JSON; it runs under
uvicorn with torchship's guarded httptools protocol (``serve/protocol.py``), the same loop
and the same pre-built binary-tensor request under wrk as ``serve_load.py --client wrk``. The
gap between this and ``torchship serve`` on the same request is the per-request cost of
torchship's own path (routing, decoding, checks, batching hand-off, encoding, statistics),
which is what limits small models against their in-process throughput.

    PYTHONPATH=src .venv/bin/python benchmarks/http_floor.py --concurrency 32 --duration-s 8

Prints one line per concurrency, then one JSON line for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--concurrency", default="32")
    parser.add_argument("--duration-s", type=float, default=8.0)
    args = parser.parse_args()
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-c", APP, str(port)])
    rows = []
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise SystemExit("the floor server did not start") from None
                time.sleep(0.1)
        payload = request_bytes("x", [3, 32, 32], True, port)  # the cnn's 12 KB binary-tensor request
        workdir = Path(tempfile.mkdtemp(prefix="floor-"))
        run_wrk(port, payload, 8, 1, workdir)  # warm-up
        for c in map(int, args.concurrency.split(",")):
            cpu0, t0 = group_cpu_seconds(proc.pid), time.perf_counter()
            load = run_wrk(port, payload, c, args.duration_s, workdir)
            cpu_s, wall_s = group_cpu_seconds(proc.pid) - cpu0, time.perf_counter() - t0
            row = {**load, "server_cpu_percent": 100 * cpu_s / wall_s}
            row["server_cpu_us_per_req"] = cpu_s * 1e6 / max(row["req_per_s"] * wall_s, 1)
            rows.append(row)
            print(
                f"floor c={c:3}  {row['req_per_s']:8.0f} req/s  p50 {row['p50_ms']:.2f} ms  "
                f"server CPU {row['server_cpu_us_per_req']:.0f} us/req ({row['server_cpu_percent']:.0f} %)",
                flush=True,
            )
    finally:
        proc.terminate()
        proc.wait(30)
    print(
        json.dumps(
            {
                "benchmark": "http_floor",
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
