"""Load-test torchship's v2 server: req/s and latency percentiles vs the in-process limit.

Single-sample requests at several concurrencies, JSON and binary bodies, against a tiny
seeded ``cnn`` (or a CIFAR-shaped ``resnet``) served by ``torchship.serve`` in a subprocess.
The load generator is a small asyncio HTTP/1.1 keep-alive client with pre-built request
bytes (tens of microseconds per request), because it shares the two cores with the server.
In the same run it measures the in-process Predictor: p50 latency at batch 1 and the best
samples/s over batch sizes, the ceiling the server is compared against.

    .venv/bin/python benchmarks/serve_load.py --model cnn --concurrency 1,8,32 --duration-s 5
    OMP_WAIT_POLICY=PASSIVE .venv/bin/python benchmarks/serve_load.py --model resnet
    .venv/bin/python benchmarks/serve_load.py --monitor off,on --concurrency 32 --modes binary

``--workers 1,2`` serves it once per worker count (``torchship serve --workers N``) and reports
rows per executed batch beside req/s, so the cost of N separate batch queues shows.
``--monitor off,on`` serves the same artifact (it carries reference statistics either way)
once without and once with drift monitoring, and reports the throughput ratio.

Prints a table, then one JSON line for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import orjson

SERVER = """
import sys
from torchship.monitor import MonitorConfig
from torchship.serve import ModelSettings, ServeConfig, serve
settings = dict(runtime=sys.argv[3], max_batch_size=int(sys.argv[4]), max_queue_delay_ms=float(sys.argv[5]))
if sys.argv[6] != "0":
    settings["threads"] = int(sys.argv[6])
settings["instances"] = int(sys.argv[8])
config = ServeConfig(access_log=False, default=ModelSettings(**settings, queue_limit=int(sys.argv[9])),
                     monitor=MonitorConfig(enabled=sys.argv[7] == "on"))
serve(sys.argv[1], port=int(sys.argv[2]), config=config, log_level="warning", workers=int(sys.argv[10]))
"""


def make_artifact(kind: str, root: Path, runtime: str = "eager"):
    """A seeded toy with reference statistics (from random inputs), so drift monitoring has work to do,
    exported (and verified) for the runtime that serves it."""
    from torchship.export import export
    from torchship.monitor.baseline import reference_from_inputs
    from torchship.testing import tiny_artifact

    art = tiny_artifact(kind, shape=(3, 32, 32))
    x = np.random.default_rng(2).standard_normal((256, 3, 32, 32)).astype(np.float32)
    art = art.with_manifest(reference=reference_from_inputs(art, x)).save(root / kind)
    formats = {"onnxruntime": ["onnx"], "torchscript": ["torchscript"], "exported": ["exported"]}
    return export(art, formats[runtime]) if runtime in formats else art


def in_process_limit(art, runtime: str, threads: int | None, batch_sizes=(1, 8, 16, 32, 64), seconds=1.5) -> dict:
    from torchship.runtime import load_predictor

    predictor = load_predictor(art, runtime, threads=threads, warmup=10)
    shape = art.manifest.input.shape
    x1 = np.random.default_rng(0).standard_normal((1, *shape)).astype(np.float32)
    lat = []
    end = time.perf_counter() + seconds
    cpu0 = time.process_time()
    while time.perf_counter() < end:
        t0 = time.perf_counter()
        predictor.predict(x1)
        lat.append(time.perf_counter() - t0)
    cpu_ms_batch1 = (time.process_time() - cpu0) * 1e3 / len(lat)
    best = {}
    for n in batch_sizes:
        xb = np.repeat(x1, n, axis=0)
        predictor.predict(xb)
        count, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds / 2:
            predictor.predict(xb)
            count += n
        best[n] = count / (time.perf_counter() - t0)
    predictor.close()
    top = max(best, key=best.get)
    return {"p50_ms_batch1": float(np.median(lat) * 1e3), "cpu_ms_batch1": cpu_ms_batch1, "best_samples_per_s": best[top], "best_batch": top,
            "samples_per_s_by_batch": {str(k): round(v) for k, v in best.items()}}


def request_bytes(model: str, shape: list[int], binary: bool, port: int) -> bytes:
    x = np.random.default_rng(1).standard_normal((1, *shape)).astype(np.float32)
    if binary:
        head = orjson.dumps({"inputs": [{"name": "input", "shape": [1, *shape], "datatype": "FP32",
                                         "parameters": {"binary_data_size": x.nbytes}}],
                             "outputs": [{"name": "logits", "parameters": {"binary_data": True}}]})
        body, extra = head + x.tobytes(), f"Inference-Header-Content-Length: {len(head)}\r\n"
    else:
        body = orjson.dumps({"inputs": [{"name": "input", "shape": [1, *shape], "datatype": "FP32",
                                         "data": x.ravel()}], "outputs": [{"name": "logits"}]},
                           option=orjson.OPT_SERIALIZE_NUMPY)  # float32 shortest repr: ~11 bytes a value
        extra = ""
    return (f"POST /v2/models/{model}/infer HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"Content-Type: application/json\r\n{extra}Content-Length: {len(body)}\r\n\r\n").encode() + body


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """Status and lower-cased head of one HTTP/1.1 response; its body (sized or chunked) is consumed."""
    head = (await reader.readuntil(b"\r\n\r\n")).lower()
    if b"\r\ncontent-length:" in head:
        await reader.readexactly(int(head.split(b"\r\ncontent-length:")[1].split(b"\r\n")[0]))
    elif b"chunked" in head:  # Netty (TorchServe) may answer chunked
        while True:
            size = int((await reader.readuntil(b"\r\n")).strip(), 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    return int(head[9:12]), head


async def _worker(port: int, payload: bytes, stop_at: float, lat: list, statuses: dict) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while time.perf_counter() < stop_at:
            t0 = time.perf_counter()
            writer.write(payload)
            status, head = await read_response(reader)
            lat.append((time.perf_counter() - t0, status))
            statuses[status] = statuses.get(status, 0) + 1
            if b"connection: close" in head:
                break
    except (ConnectionError, asyncio.IncompleteReadError, ValueError):
        statuses["conn_error"] = statuses.get("conn_error", 0) + 1
    finally:
        writer.close()


async def run_load(port: int, payload: bytes, concurrency: int, duration_s: float) -> dict:
    """Keep ``concurrency`` connections busy for ``duration_s``; latencies over every answer, and
    separately over the 503s (load shedding: they should be fast) when there are any."""
    lat: list[tuple[float, int]] = []
    statuses: dict = {}
    stop_at = time.perf_counter() + duration_s
    t0 = time.perf_counter()
    await asyncio.gather(*(_worker(port, payload, stop_at, lat, statuses) for _ in range(concurrency)))
    elapsed = time.perf_counter() - t0
    ok = statuses.get(200, 0)
    ms = np.array([t for t, _ in lat]) * 1e3 if lat else np.array([np.nan])
    row = {"concurrency": concurrency, "req_per_s": ok / elapsed, "p50_ms": float(np.percentile(ms, 50)),
           "p90_ms": float(np.percentile(ms, 90)), "p99_ms": float(np.percentile(ms, 99)),
           "errors": sum(v for k, v in statuses.items() if k != 200)}
    shed = np.array([t for t, status in lat if status == 503]) * 1e3
    ok_ms = np.array([t for t, status in lat if status == 200]) * 1e3
    if shed.size:
        row |= {"shed_503": int(shed.size), "p99_503_ms": float(np.percentile(shed, 99)),
                "p99_ok_ms": float(np.percentile(ok_ms, 99)) if ok_ms.size else None}
    return row


WRK_SCRIPT = """
wrk.method = "POST"
local f = assert(io.open("{body}", "rb"))
wrk.body = f:read("*a")
f:close()
{headers}
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("WRKRESULT %d %d %d %d %f %f %f\\n", summary.requests, summary.duration,
    e.status, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99)))
end
"""


def run_wrk(port: int, payload: bytes, concurrency: int, duration_s: float, workdir: Path) -> dict:
    """The same pre-built request under wrk (C, one thread): a lighter load generator than asyncio."""
    head, body = payload.split(b"\r\n\r\n", 1)
    lines = head.decode().split("\r\n")
    path = lines[0].split(" ")[1]
    headers = [line.split(": ", 1) for line in lines[1:]
               if not line.lower().startswith(("host:", "content-length:"))]
    (workdir / "body.bin").write_bytes(body)
    lua = WRK_SCRIPT.format(body=workdir / "body.bin",
                            headers="\n".join(f'wrk.headers["{k}"] = "{v}"' for k, v in headers))
    (workdir / "load.lua").write_text(lua)
    out = subprocess.run(["wrk", "-t1", f"-c{concurrency}", f"-d{max(1, round(duration_s))}s", "--timeout", "10s",
                          "-s", str(workdir / "load.lua"), f"http://127.0.0.1:{port}{path}"],
                         capture_output=True, text=True, check=True).stdout
    fields = next(line for line in out.splitlines() if line.startswith("WRKRESULT")).split()[1:]
    requests, duration_us, status_errors, socket_errors = map(int, fields[:4])
    p50, p90, p99 = (float(v) / 1e3 for v in fields[4:])
    return {"concurrency": concurrency, "req_per_s": (requests - status_errors) / (duration_us / 1e6),
            "p50_ms": p50, "p90_ms": p90, "p99_ms": p99, "errors": status_errors + socket_errors}


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (robust to the descheduling that skews wall-clock figures)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def group_cpu_seconds(pid: int) -> float:
    """CPU seconds of a process and all its descendants (worker processes of any server)."""
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


def batch_counts(port: int, model: str) -> tuple[int, int]:
    """(rows inferred, batches run) so far, from the server's (worker-summed) statistics."""
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/models/{model}/stats", timeout=10) as r:
        stats = json.loads(r.read())["model_stats"]
    return sum(s["inference_count"] for s in stats), sum(s["execution_count"] for s in stats)


def start_server(art_path: Path, args, port: int, monitor: str = "off", workers: int = 1) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", SERVER, str(art_path), str(port), args.runtime,
                             str(args.max_batch_size), str(args.max_queue_delay_ms), str(args.threads or 0),
                             monitor, str(args.instances), str(args.queue_limit), str(workers)])
    import urllib.request

    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/health/ready", timeout=2) as r:
                if r.status == 200:
                    return proc
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit("server did not become ready")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", choices=["cnn", "resnet"], default="cnn")
    parser.add_argument("--runtime", default="eager")
    parser.add_argument("--concurrency", default="1,8,32")
    parser.add_argument("--modes", default="json,binary")
    parser.add_argument("--duration-s", type=float, default=5.0)
    parser.add_argument("--max-batch-size", type=int, default=32)
    parser.add_argument("--max-queue-delay-ms", type=float, default=2.0)
    parser.add_argument("--threads", type=int, default=None, help="intra-op threads for the model")
    parser.add_argument("--instances", type=int, default=1, help="model instances (each its own thread)")
    parser.add_argument("--queue-limit", type=int, default=1024,
                        help="requests queued per model before the server sheds load with 503")
    parser.add_argument("--client", choices=["asyncio", "wrk"], default="asyncio",
                        help="load generator: this script's asyncio client, or wrk (apt-get install wrk)")
    parser.add_argument("--monitor", default="off", help="drift monitoring in the server: off, on, or off,on")
    parser.add_argument("--workers", default="1", help="server processes (serve --workers), e.g. 1,2")
    args = parser.parse_args()
    monitors = args.monitor.split(",")
    if not set(monitors) <= {"on", "off"}:
        parser.error("--monitor takes off, on or off,on")

    import torch

    tmp = Path(tempfile.mkdtemp(prefix="serve-load-"))
    art = make_artifact(args.model, tmp, args.runtime)
    limit = in_process_limit(art, args.runtime, args.threads)
    rows = []
    for workers in map(int, args.workers.split(",")):
        for monitor in monitors:
            rows += serve_and_load(art, args, monitor, workers)
    print(f"in-process {args.runtime}: batch-1 p50 {limit['p50_ms_batch1']:.3f} ms "
          f"(CPU {limit['cpu_ms_batch1']:.3f} ms), best "
          f"{limit['best_samples_per_s']:.0f} samples/s at batch {limit['best_batch']}")
    print(json.dumps({
        "benchmark": "serve_load", "model": args.model, "runtime": args.runtime,
        "settings": {"max_batch_size": args.max_batch_size, "max_queue_delay_ms": args.max_queue_delay_ms,
                     "workers": args.workers,
                     "threads": args.threads, "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY")},
        "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                    "torch": torch.__version__},
        "in_process": limit, "server": rows, **monitor_overhead(rows),
    }))


def serve_and_load(art, args, monitor: str, workers: int = 1) -> list[dict]:
    """Serve with drift monitoring ``on`` or ``off``, load it, stop it; a row per mode and concurrency."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = start_server(art.path, args, port, monitor, workers)
    rows = []
    try:
        for mode in args.modes.split(","):
            payload = request_bytes(art.manifest.name, art.manifest.input.shape, mode == "binary", port)
            asyncio.run(run_load(port, payload, 4, 1.0))  # warm-up
            for c in map(int, args.concurrency.split(",")):
                cpu0, t0 = group_cpu_seconds(proc.pid), time.perf_counter()
                rows0, batches0 = batch_counts(port, art.manifest.name)
                if args.client == "wrk":
                    load = run_wrk(port, payload, c, args.duration_s, Path(tempfile.mkdtemp(prefix="wrk-")))
                else:
                    load = asyncio.run(run_load(port, payload, c, args.duration_s))
                wall_s = time.perf_counter() - t0
                row = {"mode": mode, "monitor": monitor, "workers": workers, "client": args.client,
                       "body_bytes": len(payload), **load}
                cpu_s = group_cpu_seconds(proc.pid) - cpu0
                row["server_cpu_ms_per_req"] = cpu_s * 1e3 / max(row["req_per_s"] * wall_s, 1)
                row["server_cpu_percent"] = 100 * cpu_s / wall_s
                rows1, batches1 = batch_counts(port, art.manifest.name)
                row["rows_per_batch"] = (rows1 - rows0) / max(batches1 - batches0, 1)
                row["monitor_cpu_s"] = _monitor_cpu_s(port, art.manifest.name)
                rows.append(row)
                shed = (f"(503: {row['shed_503']}, p99 of 503s {row['p99_503_ms']:.2f} ms, p99 of 200s "
                        f"{row['p99_ok_ms'] or float('nan'):.2f} ms)  " if "shed_503" in row else "")
                print(f"workers {workers} {mode:6} monitor {monitor:3} c={c:3}  "
                      f"{row['req_per_s']:8.0f} req/s  "
                      f"p50 {row['p50_ms']:6.2f} ms  "
                      f"p90 {row['p90_ms']:6.2f}  p99 {row['p99_ms']:6.2f}  errors {row['errors']}  {shed}"
                      f"server CPU {row['server_cpu_ms_per_req']:.2f} ms/req "
                      f"({row['server_cpu_percent']:.0f} %)  "
                      f"rows/batch {row['rows_per_batch']:.1f}  "
                      f"monitor thread CPU so far {row['monitor_cpu_s']:.3f} s", flush=True)
    finally:
        proc.terminate()
        proc.wait(60)
    return rows


def _monitor_cpu_s(port: int, model: str) -> float:
    """CPU seconds the server's drift-monitor thread has used so far (0 with monitoring off)."""
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models/{model}/drift", timeout=10) as r:
        return float(json.loads(r.read()).get("monitor_cpu_s", 0.0))


def monitor_overhead(rows: list[dict]) -> dict:
    """req/s with monitoring on over off, per mode and concurrency (empty unless both ran)."""
    off = {(r["mode"], r["concurrency"], r["workers"]): r["req_per_s"] for r in rows if r["monitor"] == "off"}
    ratios = {f"{r['mode']}_c{r['concurrency']}_w{r['workers']}": r["req_per_s"] / off[key]
              for r in rows if r["monitor"] == "on" and off.get(key := (r["mode"], r["concurrency"], r["workers"]))}
    for key, ratio in ratios.items():
        print(f"monitoring on/off {key}: {ratio:.3f} ({(1 - ratio) * 100:+.1f} % overhead)")
    return {"monitor_on_over_off": ratios} if ratios else {}


if __name__ == "__main__":
    main()
