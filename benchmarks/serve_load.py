"""Load-test torchship's v2 server: req/s and latency percentiles vs the in-process limit.

Single-sample requests at several concurrencies, JSON and binary bodies, against a tiny
seeded ``cnn`` (or a CIFAR-shaped ``resnet``, depth 20, or ``resnet18``, 11.2 M params) served
by ``torchship.serve`` in a subprocess.
The load generator (``loadgen.py``) is a small asyncio HTTP/1.1 keep-alive client with pre-built
request bytes (tens of microseconds per request), because it shares the two cores with the server;
``--client wrk`` is lighter still.
In the same run it measures the in-process Predictor: p50 latency at batch 1 and the best
samples/s over batch sizes, the ceiling the server is compared against.

    .venv/bin/python benchmarks/serve_load.py --model cnn --concurrency 1,8,32 --duration-s 5
    OMP_WAIT_POLICY=PASSIVE .venv/bin/python benchmarks/serve_load.py --model resnet
    .venv/bin/python benchmarks/serve_load.py --monitor off,on --concurrency 32 --modes binary

``--modes json,binary,grpc`` adds the v2 gRPC service (``--grpc-port``), loaded by a grpc.aio
client at the same concurrency over up to 4 connections (wrk speaks HTTP only; every worker serves gRPC).
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
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from loadgen import (  # noqa: E402
    drive,
    free_port,
    group_cpu_seconds,
    grpc_request_bytes,
    request_bytes,
    run_grpc,
    run_load,
)

SERVER = """
import sys
from torchship.monitor import MonitorConfig
from torchship.serve import ModelSettings, ServeConfig, serve
settings = dict(runtime=sys.argv[3], max_batch_size=int(sys.argv[4]), max_queue_delay_ms=float(sys.argv[5]))
if sys.argv[6] != "0":
    settings["threads"] = int(sys.argv[6])
settings["instances"] = int(sys.argv[8])
config = ServeConfig(access_log=False, default=ModelSettings(**settings, queue_limit=int(sys.argv[9])),
                     monitor=MonitorConfig(enabled=sys.argv[7] == "on"),
                     max_connections=int(sys.argv[12]) or None)
serve(sys.argv[1], port=int(sys.argv[2]), config=config, log_level="warning", workers=int(sys.argv[10]),
      grpc_port=int(sys.argv[11]) or None)
"""


def make_artifact(kind: str, root: Path, runtime: str = "eager"):
    """A seeded toy with reference statistics (from random inputs), so drift monitoring has work to do,
    exported (and verified) for the runtime that serves it."""
    from torchship.export import export
    from torchship.export.base import format_runtimes
    from torchship.monitor.baseline import reference_from_inputs
    from torchship.testing import tiny_artifact

    art = tiny_artifact(kind, shape=(3, 32, 32))
    x = np.random.default_rng(2).standard_normal((256, 3, 32, 32)).astype(np.float32)
    art = art.with_manifest(reference=reference_from_inputs(art, x)).save(root / kind)
    formats = {runs.runtime: [fmt] for fmt, runs in format_runtimes().items()}
    return export(art, formats[runtime]) if runtime in formats else art


def in_process_limit(
    art, runtime: str, threads: int | None, batch_sizes=(1, 8, 16, 32, 64), seconds=1.5
) -> dict:
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
    return {
        "p50_ms_batch1": float(np.median(lat) * 1e3),
        "cpu_ms_batch1": cpu_ms_batch1,
        "best_samples_per_s": best[top],
        "best_batch": top,
        "samples_per_s_by_batch": {str(k): round(v) for k, v in best.items()},
    }


def batch_counts(port: int, model: str) -> tuple[int, int]:
    """(rows inferred, batches run) so far, from the server's (worker-summed) statistics."""
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/models/{model}/stats", timeout=10) as r:
        stats = json.loads(r.read())["model_stats"]
    return sum(s["inference_count"] for s in stats), sum(s["execution_count"] for s in stats)


def start_server(
    art_path: Path, args, port: int, monitor: str = "off", workers: int = 1, grpc_port: int | None = None
) -> subprocess.Popen:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            SERVER,
            str(art_path),
            str(port),
            args.runtime,
            str(args.max_batch_size),
            str(args.max_queue_delay_ms),
            str(args.threads or 0),
            monitor,
            str(args.instances),
            str(args.queue_limit),
            str(workers),
            str(grpc_port or 0),
            str(args.max_connections or 0),
        ]
    )
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
    parser.add_argument(
        "--model",
        choices=["cnn", "resnet", "resnet18"],
        default="cnn",
        help="cnn: tiny; resnet: the CIFAR resnet20 (0.27 M params); resnet18: 11.2 M params",
    )
    parser.add_argument("--runtime", default="eager")
    parser.add_argument("--concurrency", default="1,8,32")
    parser.add_argument("--modes", default="json,binary", help="json, binary, grpc, comma-separated")
    parser.add_argument("--duration-s", type=float, default=5.0)
    parser.add_argument("--max-batch-size", type=int, default=32)
    parser.add_argument("--max-queue-delay-ms", type=float, default=2.0)
    parser.add_argument("--threads", type=int, default=None, help="intra-op threads for the model")
    parser.add_argument("--instances", type=int, default=1, help="model instances (each its own thread)")
    parser.add_argument(
        "--queue-limit",
        type=int,
        default=1024,
        help="requests queued per model before the server sheds load with 503",
    )
    parser.add_argument(
        "--max-connections",
        type=int,
        default=None,
        help="the server's connection limit per worker (serve config max_connections); default none",
    )
    parser.add_argument(
        "--client",
        choices=["asyncio", "wrk"],
        default="asyncio",
        help="HTTP load generator: this script's asyncio client, or wrk "
        "(apt-get install wrk); "
        "gRPC rows always use a grpc.aio client",
    )
    parser.add_argument("--monitor", default="off", help="drift monitoring in the server: off, on, or off,on")
    parser.add_argument("--workers", default="1", help="server processes (serve --workers), e.g. 1,2")
    args = parser.parse_args()
    monitors = args.monitor.split(",")
    if not set(monitors) <= {"on", "off"}:
        parser.error("--monitor takes off, on or off,on")
    if not set(args.modes.split(",")) <= {"json", "binary", "grpc"}:
        parser.error("--modes takes json, binary and grpc, comma-separated")

    import torch

    tmp = Path(tempfile.mkdtemp(prefix="serve-load-"))
    art = make_artifact(args.model, tmp, args.runtime)
    limit = in_process_limit(art, args.runtime, args.threads)
    rows = []
    for workers in map(int, args.workers.split(",")):
        for monitor in monitors:
            rows += serve_and_load(art, args, monitor, workers)
    print(
        f"in-process {args.runtime}: batch-1 p50 {limit['p50_ms_batch1']:.3f} ms "
        f"(CPU {limit['cpu_ms_batch1']:.3f} ms), best "
        f"{limit['best_samples_per_s']:.0f} samples/s at batch {limit['best_batch']}"
    )
    print(
        json.dumps(
            {
                "benchmark": "serve_load",
                "model": args.model,
                "runtime": args.runtime,
                "settings": {
                    "max_batch_size": args.max_batch_size,
                    "max_queue_delay_ms": args.max_queue_delay_ms,
                    "workers": args.workers,
                    "threads": args.threads,
                    "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY"),
                },
                "machine": {
                    "cpu_count": os.cpu_count(),
                    "platform": platform.platform(),
                    "python": platform.python_version(),
                    "torch": torch.__version__,
                },
                "in_process": limit,
                "server": rows,
                **monitor_overhead(rows),
            }
        )
    )


def serve_and_load(art, args, monitor: str, workers: int = 1) -> list[dict]:
    """Serve with drift monitoring ``on`` or ``off``, load it, stop it; a row per mode and concurrency."""
    port = free_port()
    modes = args.modes.split(",")
    grpc_port = free_port() if "grpc" in modes else None
    proc = start_server(art.path, args, port, monitor, workers, grpc_port)
    rows = []
    try:
        for mode in modes:
            if mode == "grpc":
                payload = grpc_request_bytes(art.manifest.name, art.manifest.input.shape)
                asyncio.run(run_grpc(grpc_port, payload, 4, 1.0))  # warm-up
            else:
                payload = request_bytes(art.manifest.name, art.manifest.input.shape, mode == "binary", port)
                asyncio.run(run_load(port, payload, 4, 1.0))  # warm-up
            for c in map(int, args.concurrency.split(",")):
                cpu0, t0 = group_cpu_seconds(proc.pid), time.perf_counter()
                rows0, batches0 = batch_counts(port, art.manifest.name)
                client = "grpc" if mode == "grpc" else args.client
                load = drive(port, payload, c, args.duration_s, client, grpc_port)
                wall_s = time.perf_counter() - t0
                row = {
                    "mode": mode,
                    "monitor": monitor,
                    "workers": workers,
                    "body_bytes": len(payload),
                    **load,
                }
                cpu_s = group_cpu_seconds(proc.pid) - cpu0
                row["server_cpu_ms_per_req"] = cpu_s * 1e3 / max(row["req_per_s"] * wall_s, 1)
                row["server_cpu_percent"] = 100 * cpu_s / wall_s
                rows1, batches1 = batch_counts(port, art.manifest.name)
                row["rows_per_batch"] = (rows1 - rows0) / max(batches1 - batches0, 1)
                row["monitor_cpu_s"] = _monitor_cpu_s(port, art.manifest.name)
                rows.append(row)
                shed = (
                    (
                        f"(503: {row['shed_503']}, p99 of 503s {row['p99_503_ms']:.2f} ms, p99 of 200s "
                        f"{row['p99_ok_ms'] or float('nan'):.2f} ms)  "
                        if "shed_503" in row
                        else ""
                    )
                    + (f"(unanswered: {row['unanswered']})  " if "unanswered" in row else "")
                    + (
                        f"(first requests {row['first_requests']}: "
                        f"p99 {row['p99_first_ms'] or float('nan'):.1f} ms; "
                        f"later p99 {row['p99_later_ms'] or float('nan'):.1f} ms)  "
                        if "first_requests" in row
                        else ""
                    )
                )
                print(
                    f"workers {workers} {mode:6} monitor {monitor:3} c={c:3}  "
                    f"{row['req_per_s']:8.0f} req/s  "
                    f"p50 {row['p50_ms']:6.2f} ms  "
                    f"p90 {row['p90_ms']:6.2f}  p99 {row['p99_ms']:6.2f}  errors {row['errors']}  {shed}"
                    f"server CPU {row['server_cpu_ms_per_req']:.2f} ms/req "
                    f"({row['server_cpu_percent']:.0f} %, client {row['client_cpu_percent']:.0f} %)  "
                    f"rows/batch {row['rows_per_batch']:.1f}  "
                    f"monitor thread CPU so far {row['monitor_cpu_s']:.3f} s",
                    flush=True,
                )
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
    ratios = {
        f"{r['mode']}_c{r['concurrency']}_w{r['workers']}": r["req_per_s"] / off[key]
        for r in rows
        if r["monitor"] == "on" and off.get(key := (r["mode"], r["concurrency"], r["workers"]))
    }
    for key, ratio in ratios.items():
        print(f"monitoring on/off {key}: {ratio:.3f} ({(1 - ratio) * 100:+.1f} % overhead)")
    return {"monitor_on_over_off": ratios} if ratios else {}


if __name__ == "__main__":
    main()
