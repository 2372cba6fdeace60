"""The load generators the serving benchmarks share: pre-built requests, three clients, CPU accounting.

- ``run_load``: a small asyncio HTTP/1.1 keep-alive client sending pre-built request bytes
  (tens of microseconds per request), for machines without wrk;
- ``run_wrk``: the same request under wrk (C, one thread), lighter still: on a 2-core machine
  the client's CPU is CPU the server does not get;
- ``run_grpc``: grpc.aio clients (several connections) with a pre-serialized ``ModelInferRequest``.

``drive`` runs one of them and reports its own CPU share beside the load figures;
``group_cpu_seconds`` is the CPU a server's whole process tree used.
"""

from __future__ import annotations

import asyncio
import os
import resource
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import orjson


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def request_bytes(model: str, shape: list[int], binary: bool, port: int) -> bytes:
    x = np.random.default_rng(1).standard_normal((1, *shape)).astype(np.float32)
    if binary:
        head = orjson.dumps(
            {
                "inputs": [
                    {
                        "name": "input",
                        "shape": [1, *shape],
                        "datatype": "FP32",
                        "parameters": {"binary_data_size": x.nbytes},
                    }
                ],
                "outputs": [{"name": "logits", "parameters": {"binary_data": True}}],
            }
        )
        body, extra = head + x.tobytes(), f"Inference-Header-Content-Length: {len(head)}\r\n"
    else:
        body = orjson.dumps(
            {
                "inputs": [{"name": "input", "shape": [1, *shape], "datatype": "FP32", "data": x.ravel()}],
                "outputs": [{"name": "logits"}],
            },
            option=orjson.OPT_SERIALIZE_NUMPY,
        )  # float32 shortest repr: ~11 bytes a value
        extra = ""
    return (
        f"POST /v2/models/{model}/infer HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Content-Type: application/json\r\n{extra}Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body


def grpc_request_bytes(model: str, shape: list[int]) -> bytes:
    """One serialized ``ModelInferRequest`` (the FP32 input in ``raw_input_contents``), built once."""
    from tritonclient.grpc import service_pb2 as pb

    x = np.random.default_rng(1).standard_normal((1, *shape)).astype(np.float32)
    request = pb.ModelInferRequest(
        model_name=model,
        inputs=[pb.ModelInferRequest.InferInputTensor(name="input", datatype="FP32", shape=[1, *shape])],
        outputs=[pb.ModelInferRequest.InferRequestedOutputTensor(name="logits")],
        raw_input_contents=[x.tobytes()],
    )
    return request.SerializeToString()


async def run_grpc(port: int, payload: bytes, concurrency: int, duration_s: float, channels: int = 4) -> dict:
    """``concurrency`` ModelInfer calls in flight, spread over ``channels`` grpc.aio channels (each its
    own HTTP/2 connection, as separate tritonclient clients have: with ``serve --workers N`` the kernel
    spreads connections, not calls, over the workers) for ``duration_s``. The request is
    pre-serialized and the answer left as bytes (no serializers), the gRPC analogue of the HTTP
    client's pre-built request bytes."""
    import grpc

    lat: list[float] = []
    codes: dict = {}
    options = [
        ("grpc.max_receive_message_length", -1),
        ("grpc.max_send_message_length", -1),
        ("grpc.use_local_subchannel_pool", 1),  # one connection per channel, not one shared
    ]
    opened = [
        grpc.aio.insecure_channel(f"127.0.0.1:{port}", options=options)
        for _ in range(max(1, min(channels, concurrency)))
    ]
    try:
        calls = [channel.unary_unary("/inference.GRPCInferenceService/ModelInfer") for channel in opened]
        for infer in calls:
            if not await infer(payload, timeout=30):  # connects, and proves the request is valid
                raise SystemExit("gRPC ModelInfer answered an empty message")

        async def worker(infer, stop_at: float) -> None:
            while time.perf_counter() < stop_at:
                t0 = time.perf_counter()
                try:
                    await infer(payload, timeout=10)
                    code = "OK"
                except grpc.aio.AioRpcError as exc:
                    code = exc.code().name
                lat.append(time.perf_counter() - t0)
                codes[code] = codes.get(code, 0) + 1

        t0 = time.perf_counter()
        await asyncio.gather(*(worker(calls[i % len(calls)], t0 + duration_s) for i in range(concurrency)))
        elapsed = time.perf_counter() - t0
    finally:
        for channel in opened:
            await channel.close()
    ms = np.array(lat) * 1e3 if lat else np.array([np.nan])
    return {
        "concurrency": concurrency,
        "req_per_s": codes.get("OK", 0) / elapsed,
        "p50_ms": float(np.percentile(ms, 50)),
        "p90_ms": float(np.percentile(ms, 90)),
        "p99_ms": float(np.percentile(ms, 99)),
        "errors": sum(v for k, v in codes.items() if k != "OK"),
        **({"error_codes": {k: v for k, v in codes.items() if k != "OK"}} if len(codes) > 1 else {}),
    }


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
    """One client that sends its next request at once, even after a 503: when the server closes
    the connection (a shed request), it reconnects and goes on, as an impatient client would."""
    while time.perf_counter() < stop_at:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        first = True  # the first request of a connection also waits for the server to accept it
        try:
            while time.perf_counter() < stop_at:
                t0 = time.perf_counter()
                writer.write(payload)
                status, head = await read_response(reader)
                lat.append((time.perf_counter() - t0, status, first))
                first = False
                statuses[status] = statuses.get(status, 0) + 1
                if b"connection: close" in head:
                    statuses["reconnects"] = statuses.get("reconnects", 0) + 1
                    break
        except (ConnectionError, asyncio.IncompleteReadError, ValueError):
            statuses["conn_error"] = statuses.get("conn_error", 0) + 1
            return
        finally:
            writer.close()


async def run_load(port: int, payload: bytes, concurrency: int, duration_s: float) -> dict:
    """Keep ``concurrency`` connections busy for ``duration_s``; latencies over every answer, and
    separately over the 503s (load shedding: they should be fast) when there are any. A client
    still waiting 1 s after the end, for its connection or its answer (a server at its connection
    limit leaves it in the kernel's listen queue), is stopped and counted as "unanswered"."""
    lat: list[tuple[float, int, bool]] = []
    statuses: dict = {}
    stop_at = time.perf_counter() + duration_s
    t0 = time.perf_counter()
    clients = [
        asyncio.create_task(_worker(port, payload, stop_at, lat, statuses)) for _ in range(concurrency)
    ]
    _, waiting = await asyncio.wait(clients, timeout=duration_s + 1)
    for client in waiting:
        client.cancel()
    await asyncio.gather(*clients, return_exceptions=True)
    if waiting:
        statuses["unanswered"] = len(waiting)
    elapsed = duration_s if waiting else time.perf_counter() - t0  # not the second spent waiting
    ok = statuses.get(200, 0)
    ms = np.array([t for t, _, _ in lat]) * 1e3 if lat else np.array([np.nan])
    row = {
        "concurrency": concurrency,
        "req_per_s": ok / elapsed,
        "p50_ms": float(np.percentile(ms, 50)),
        "p90_ms": float(np.percentile(ms, 90)),
        "p99_ms": float(np.percentile(ms, 99)),
        "errors": sum(v for k, v in statuses.items() if k not in (200, "reconnects", "unanswered")),
    }
    for key in ("reconnects", "unanswered"):
        if statuses.get(key):
            row[key] = statuses[key]
    shed = np.array([t for t, status, _ in lat if status == 503]) * 1e3
    ok_ms = np.array([t for t, status, _ in lat if status == 200]) * 1e3
    if shed.size:
        row |= {
            "shed_503": int(shed.size),
            "p99_503_ms": float(np.percentile(shed, 99)),
            "p99_ok_ms": float(np.percentile(ok_ms, 99)) if ok_ms.size else None,
        }
    if statuses.get("reconnects") or statuses.get("unanswered"):
        # connections came and went: the first request of each also waited to be accepted (in the
        # kernel's listen queue, or for a TCP retransmission when that queue was full)
        later = np.array([t for t, status, first in lat if status == 200 and not first]) * 1e3
        firsts = np.array([t for t, status, first in lat if status == 200 and first]) * 1e3
        row |= {
            "first_requests": int(firsts.size),
            "p99_first_ms": float(np.percentile(firsts, 99)) if firsts.size else None,
            "p99_later_ms": float(np.percentile(later, 99)) if later.size else None,
        }
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
    headers = [
        line.split(": ", 1) for line in lines[1:] if not line.lower().startswith(("host:", "content-length:"))
    ]
    (workdir / "body.bin").write_bytes(body)
    lua = WRK_SCRIPT.format(
        body=workdir / "body.bin", headers="\n".join(f'wrk.headers["{k}"] = "{v}"' for k, v in headers)
    )
    (workdir / "load.lua").write_text(lua)
    out = subprocess.run(
        [
            "wrk",
            "-t1",
            f"-c{concurrency}",
            f"-d{max(1, round(duration_s))}s",
            "--timeout",
            "10s",
            "-s",
            str(workdir / "load.lua"),
            f"http://127.0.0.1:{port}{path}",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    fields = next(line for line in out.splitlines() if line.startswith("WRKRESULT")).split()[1:]
    requests, duration_us, status_errors, socket_errors = map(int, fields[:4])
    p50, p90, p99 = (float(v) / 1e3 for v in fields[4:])
    return {
        "concurrency": concurrency,
        "req_per_s": (requests - status_errors) / (duration_us / 1e6),
        "p50_ms": p50,
        "p90_ms": p90,
        "p99_ms": p99,
        "errors": status_errors + socket_errors,
    }


def drive(
    port: int, payload: bytes, concurrency: int, duration_s: float, client: str, grpc_port: int | None = None
) -> dict:
    """One load row from ``client`` (asyncio, wrk, or grpc against ``grpc_port``), with the load
    generator's own CPU share: it shares the machine's cores with the server."""
    cpu0, children0, t0 = time.process_time(), _children_cpu_s(), time.perf_counter()
    if client == "grpc":
        load = asyncio.run(run_grpc(grpc_port, payload, concurrency, duration_s))
    elif client == "wrk":
        load = run_wrk(port, payload, concurrency, duration_s, Path(tempfile.mkdtemp(prefix="wrk-")))
    else:
        load = asyncio.run(run_load(port, payload, concurrency, duration_s))
    cpu_s = time.process_time() - cpu0 + _children_cpu_s() - children0
    return {"client": client, **load, "client_cpu_percent": 100 * cpu_s / (time.perf_counter() - t0)}


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)  # wrk, once it has exited
    return usage.ru_utime + usage.ru_stime


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (robust to the descheduling that skews wall-clock figures)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def process_tree(pid: int) -> list[int]:
    """``pid`` and its live descendants. Children are listed per thread: a JVM (TorchServe) starts its
    workers from threads other than the main one, whose ``task/<pid>/children`` would miss them."""
    tree, todo = [], [pid]
    while todo:
        p = todo.pop()
        try:
            tasks = list(Path(f"/proc/{p}/task").iterdir())
        except OSError:
            continue
        tree.append(p)
        for task in tasks:
            try:
                todo.extend(int(c) for c in (task / "children").read_text().split())
            except OSError:
                continue
    return tree


def group_cpu_seconds(pid: int) -> float:
    """CPU seconds of a process and all its descendants (worker processes of any server)."""
    total = 0.0
    for p in process_tree(pid):
        try:
            total += cpu_seconds(p)
        except OSError:
            continue
    return total
