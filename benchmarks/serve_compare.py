"""torchship's server against TorchServe, LitServe and a plain FastAPI app: same model, same load, one run.

The model is a CIFAR-shaped ``cnn`` (3x32x32 inputs, seeded) saved as TorchScript, which every
server loads; torchship also serves it with its ONNX Runtime runtime. Each server starts cold
and runs alone (the previous one's process tree is gone), every one with
``OMP_WAIT_POLICY=PASSIVE``, its batching on, and gets the same single-sample requests at each
concurrency from wrk (``--client wrk``, the default: C, one thread, the lightest client on a
2-core machine) or ``loadgen.py``'s asyncio client; gRPC rows use a grpc.aio client.

- torchship with 1 and N workers (``--workers 1,2``): v2 JSON (3,072 floats, ~34 KB), v2
  binary tensors, and gRPC ``ModelInfer`` with ``raw_input_contents`` (every worker serves gRPC);
- TorchServe 0.12, each configuration of a sweep (``--torchserve-workers 1,2`` x
  ``--torchserve-batch 16,32``, 5 ms max batch delay, torch threads = cores / workers), with
  quiet logging (``serve_peers.py``): its best configuration at each concurrency is the
  baseline of the ratios;
- LitServe: max_batch_size 32, batch_timeout 5 ms, 1 torch thread; FastAPI: one ``async def``
  endpoint, no batching (what people write by hand), 1 torch thread.

Next to each row's req/s: the server's CPU share (its whole process tree, 100 % = one core),
the client's, the ratio to TorchServe's best JSON figure at that concurrency, and the ratio to
the in-process best-batch limit of the same runtime measured in this run (the peers run the
TorchScript file: they are compared with the TorchScript limit).

The competitors need packages torchship does not depend on, so they run from a separate
virtual environment (nothing here is installed by the test suite)::

    python3 -m venv /tmp/bench-venv
    /tmp/bench-venv/bin/pip install torch==2.13.0
    /tmp/bench-venv/bin/pip install torch==2.13.0 torchserve==0.12.0 torch-model-archiver==0.12.0 \\
        litserve==0.2.19 fastapi uvicorn numpy
    PYTHONPATH=src .venv/bin/python benchmarks/serve_compare.py --other-python /tmp/bench-venv/bin/python

With the defaults (concurrency 1 and 32, 5 s a row after a 2 s warm-up, 10 cold starts) a run
takes about 6 minutes. Needs Java for TorchServe and wrk. Prints a table and one JSON line for
docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from compare_report import machine_info, report, summarize  # noqa: E402
from loadgen import drive, group_cpu_seconds, run_grpc, run_load  # noqa: E402
from serve_load import batch_counts, in_process_limit  # noqa: E402
from serve_peers import (  # noqa: E402
    FASTAPI_APP,
    LITSERVE_APP,
    SHAPE,
    Server,
    script_server,
    torchserve_archive,
    torchserve_server,
    torchship_server,
)

WARMUP_S = 2.0
SERVERS = ("torchship-onnxruntime", "torchship-torchscript", "torchserve", "litserve", "fastapi")
SETTINGS = (
    "servers",
    "concurrency",
    "duration_s",
    "client",
    "workers",
    "modes",
    "torchserve_workers",
    "torchserve_batch",
    "torchserve_logging",
    "threads",
    "omp_wait_policy",
)


def measure(
    server: Server, concurrency: list[int], duration_s: float, client: str, model: str | None
) -> list[dict]:
    """A row per mode and concurrency; ``model``: read torchship's batch statistics for rows/batch."""
    rows = []
    for mode, payload in server.payloads.items():
        if mode == "grpc":
            asyncio.run(run_grpc(server.grpc_port, payload, 8, WARMUP_S))  # warm-up: JIT, allocator, batcher
        else:
            asyncio.run(run_load(server.port, payload, 8, WARMUP_S))
        for c in concurrency:
            stats0 = batch_counts(server.port, model) if model else None
            cpu0, t0 = group_cpu_seconds(server.proc.pid), time.perf_counter()
            kind = "grpc" if mode == "grpc" else client
            load = drive(server.port, payload, c, duration_s, kind, server.grpc_port)
            wall_s = time.perf_counter() - t0
            cpu_s = group_cpu_seconds(server.proc.pid) - cpu0
            row = {
                "server": server.name,
                **server.config,
                "mode": mode,
                "body_bytes": len(payload),
                **load,
                "server_cpu_percent": 100 * cpu_s / wall_s,
                "server_cpu_ms_per_req": cpu_s * 1e3 / max(load["req_per_s"] * wall_s, 1),
                "startup_s": round(server.startup_s, 1),
            }
            if stats0:
                rows1, batches1 = batch_counts(server.port, model)
                row["rows_per_batch"] = (rows1 - stats0[0]) / max(batches1 - stats0[1], 1)
            rows.append(row)
            print(
                f"{server.name:24} {mode:6} c={c:3}  {row['req_per_s']:8.0f} req/s  "
                f"p50 {row['p50_ms']:7.2f} ms  p99 {row['p99_ms']:7.2f}  errors {row['errors']}  "
                f"server CPU {row['server_cpu_percent']:4.0f} %  "
                f"client CPU {row['client_cpu_percent']:4.0f} %",
                flush=True,
            )
    return rows


def servers(args, names: list[str], art, root: Path, modes: list[str]) -> Iterator[Server]:
    """Every server to measure, in order, not started yet (each starts cold when entered)."""
    cores, policy = os.cpu_count() or 1, args.omp_wait_policy
    model_pt = art.path / art.manifest.exports["torchscript"]["file"]
    for name in names:
        if name.startswith("torchship-"):
            for workers in split(args.workers, int):
                yield torchship_server(art, name.removeprefix("torchship-"), workers, modes, policy)
        elif name == "torchserve":
            store = torchserve_archive(root, model_pt, args.other_python)
            for workers in split(args.torchserve_workers, int):
                for batch in split(args.torchserve_batch, int):
                    yield torchserve_server(
                        root,
                        store,
                        args.other_python,
                        workers=workers,
                        batch_size=batch,
                        threads=args.threads or max(1, cores // workers),
                        quiet=args.torchserve_logging == "quiet",
                        omp_wait_policy=policy,
                    )
        elif name in ("litserve", "fastapi"):
            code = LITSERVE_APP if name == "litserve" else FASTAPI_APP
            yield script_server(name, code, root, args.other_python, model_pt, args.threads or 1, policy)


def split(text: str, kind=str) -> list:
    return [kind(v) for v in text.split(",") if v]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--other-python", required=True, help="python of the venv with torchserve/litserve/fastapi"
    )
    parser.add_argument("--servers", default=",".join(SERVERS))
    parser.add_argument("--concurrency", default="1,32")
    parser.add_argument("--duration-s", type=float, default=5.0, help="per row (wrk rounds to whole seconds)")
    parser.add_argument(
        "--client",
        choices=["wrk", "asyncio"],
        default="wrk",
        help="HTTP load generator; gRPC rows always use a grpc.aio client",
    )
    parser.add_argument("--workers", default="1,2", help="torchship serve --workers, one cold start each")
    parser.add_argument("--modes", default="json,binary,grpc", help="torchship's request kinds")
    parser.add_argument("--torchserve-workers", default="1,2")
    parser.add_argument("--torchserve-batch", default="16,32")
    parser.add_argument(
        "--torchserve-logging",
        choices=["quiet", "default"],
        default="quiet",
        help="quiet: WARN, no access/metrics logs; default: TorchServe's own (~10 lines a request)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=0,
        help="torch threads per model process of the peers; 0: TorchServe cores / workers, "
        "LitServe and FastAPI 1 (as in docs/benchmarks.md)",
    )
    parser.add_argument("--omp-wait-policy", default="PASSIVE", help="OMP_WAIT_POLICY of every server")
    args = parser.parse_args()
    names = split(args.servers)
    unknown = [n for n in names if n not in SERVERS and n != "torchship-eager"]
    if unknown:
        parser.error(f"unknown server {unknown[0]!r}; choose from {', '.join(SERVERS)}, torchship-eager")
    modes = split(args.modes)
    if not set(modes) <= {"json", "binary", "grpc"}:
        parser.error("--modes takes json, binary and grpc, comma-separated")
    if args.client == "wrk" and shutil.which("wrk") is None:
        raise SystemExit("--client wrk needs wrk on PATH (apt-get install wrk), or pass --client asyncio")
    if "torchserve" in names and shutil.which("java") is None:
        raise SystemExit("TorchServe needs Java (apt-get install default-jre-headless)")

    from torchship.export import export
    from torchship.testing import tiny_artifact

    cores = os.cpu_count() or 1
    machine = machine_info(args.other_python)
    if machine["load_avg_1m_at_start"] > 0.5 * cores:
        print(
            f"warning: load average {machine['load_avg_1m_at_start']:.1f} on {cores} cores before the run: "
            "the machine is busy, these figures are not a measurement",
            flush=True,
        )
    root = Path(tempfile.mkdtemp(prefix="serve-compare-"))
    art = export(tiny_artifact("cnn", shape=SHAPE, path=root / "cnn"), ["onnx", "torchscript"])
    concurrency = split(args.concurrency, int)
    limits = {}  # the runtimes torchship serves here, and TorchScript: the file every peer runs
    for runtime in dict.fromkeys(
        [n.removeprefix("torchship-") for n in names if n.startswith("torchship-")] + ["torchscript"]
    ):
        limits[runtime] = in_process_limit(art, runtime, None)
        limit = limits[runtime]
        print(
            f"in-process {runtime}: batch-1 p50 {limit['p50_ms_batch1']:.3f} ms, best "
            f"{limit['best_samples_per_s']:.0f} samples/s at batch {limit['best_batch']}",
            flush=True,
        )

    rows = []
    for server in servers(args, names, art, root, modes):
        load_avg = os.getloadavg()[0]  # before the cold start: what else was running
        with server:
            model = art.manifest.name if server.name.startswith("torchship") else None
            rows += [
                {**r, "load_avg_1m_before": round(load_avg, 2)}
                for r in measure(server, concurrency, args.duration_s, args.client, model)
            ]
    summary = summarize(rows, limits)
    report(rows, summary)
    settings = {k: getattr(args, k) for k in SETTINGS}
    print(
        json.dumps(
            {
                "benchmark": "serve_compare",
                "settings": settings,
                "machine": machine,
                "in_process": limits,
                "summary": summary,
                "rows": rows,
            }
        )
    )


if __name__ == "__main__":
    main()
