"""What ``serve_compare.py`` reports: the machine, each row's ratios, the goals of issue 11, a table."""

from __future__ import annotations

import json
import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path

PEER_PACKAGES = ("torch", "torchserve", "torch-model-archiver", "litserve", "fastapi", "uvicorn")


def _first_line(argv: list[str]) -> str | None:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    lines = (done.stdout + done.stderr).strip().splitlines()
    return lines[0] if lines else None


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def machine_info(other_python: str) -> dict:
    """Hardware, load, and the version of everything measured (both virtual environments, Java, wrk)."""
    cpuinfo = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    model = next(
        (line.split(":", 1)[1].strip() for line in cpuinfo.splitlines() if line.startswith("model name")),
        None,
    )
    code = (
        "import json, importlib.metadata as m\nv = {}\nfor n in %r:\n    try: v[n] = m.version(n)\n"
        "    except m.PackageNotFoundError: v[n] = None\nprint(json.dumps(v))" % (PEER_PACKAGES,)
    )
    peers = _first_line([other_python, "-c", code])
    commit = _first_line(["git", "-C", str(Path(__file__).parent), "rev-parse", "--short", "HEAD"])
    return {
        "cpu_model": model,
        "cpu_count": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "load_avg_1m_at_start": os.getloadavg()[0],
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torchship": {"version": _version("torchship"), "commit": commit},
        **{name: _version(name) for name in ("torch", "onnxruntime", "grpcio", "tritonclient", "uvicorn")},
        "peers": json.loads(peers) if peers and peers.startswith("{") else peers,
        "java": _first_line(["java", "-version"]),
        "wrk": _first_line(["wrk", "-v"]),
    }


def summarize(rows: list[dict], limits: dict) -> dict:
    """Add each row's ratios (to TorchServe's best JSON row at its concurrency, and to the in-process
    limit of its runtime), mark TorchServe's best configuration, and check issue 11's goals."""
    ts_best: dict[int, dict] = {}
    for r in rows:
        if (
            r["server"].startswith("torchserve")
            and r["mode"] == "json"
            and r["req_per_s"] > ts_best.get(r["concurrency"], {"req_per_s": -1})["req_per_s"]
        ):
            ts_best[r["concurrency"]] = r
    for r in rows:
        best = ts_best.get(r["concurrency"])
        r["x_torchserve_best"] = r["req_per_s"] / best["req_per_s"] if best and best["req_per_s"] else None
        limit = limits.get(r.get("runtime", "torchscript"))  # the peers run the TorchScript file
        r["x_in_process"] = r["req_per_s"] / limit["best_samples_per_s"] if limit else None
        if r["server"].startswith("torchserve"):
            r["torchserve_best"] = r is best
    summary: dict = {
        "torchserve_best": {
            str(c): {
                "server": r["server"],
                "workers": r["workers"],
                "batch_size": r["batch_size"],
                "req_per_s": r["req_per_s"],
                "server_cpu_percent": r["server_cpu_percent"],
            }
            for c, r in sorted(ts_best.items())
        }
    }
    ours = [r for r in rows if r["server"].startswith("torchship")]
    for c in sorted({r["concurrency"] for r in ours}):
        top = {}
        for mode in ("json", "binary", "grpc"):
            candidates = [r for r in ours if r["concurrency"] == c and r["mode"] == mode]
            if candidates:
                r = max(candidates, key=lambda r: r["req_per_s"])
                keys = (
                    "server",
                    "req_per_s",
                    "p50_ms",
                    "p90_ms",
                    "p99_ms",
                    "server_cpu_percent",
                    "x_torchserve_best",
                    "x_in_process",
                )
                top[mode] = {k: r.get(k) for k in keys}
        summary[f"torchship_best_c{c}"] = top
    if 32 in ts_best and (top := summary.get("torchship_best_c32")):
        fast = [top[m]["x_in_process"] for m in ("binary", "grpc") if m in top and top[m]["x_in_process"]]
        summary["goals_c32"] = {
            "json_x_torchserve_best": top.get("json", {}).get("x_torchserve_best"),
            "json_goal": 2.0,
            "binary_or_grpc_x_in_process": max(fast) if fast else None,
            "binary_or_grpc_goal": 0.5,
            "server_cpu_percent": max(v["server_cpu_percent"] for v in top.values()),
            "server_cpu_goal": 180,
        }
    return summary


def _ratio(value: float | None) -> str:
    return f"{value:.2f}×" if value is not None else "–"


def report(rows: list[dict], summary: dict) -> None:
    """The table (server CPU beside throughput; * marks TorchServe's best configuration) and the goals."""
    print(
        f"\n{'server':24} {'body':6} {'conc':>4} {'req/s':>8} {'p50 ms':>7} {'p99 ms':>7} {'err':>4} "
        f"{'srv CPU':>7} {'cli CPU':>7} {'× TS best':>9} {'× in-proc':>9}"
    )
    for r in rows:
        mark = "*" if r.get("torchserve_best") else ""
        print(
            f"{r['server'] + mark:24} {r['mode']:6} {r['concurrency']:4d} {r['req_per_s']:8.0f} "
            f"{r['p50_ms']:7.2f} {r['p99_ms']:7.2f} {r['errors']:4d} "
            f"{r['server_cpu_percent']:6.0f}% {r['client_cpu_percent']:6.0f}% "
            f"{_ratio(r['x_torchserve_best']):>9} {_ratio(r['x_in_process']):>9}"
        )
    print(
        "(* TorchServe's best configuration at that concurrency: the baseline of '× TS best'; "
        "CPU: 100 % = one core)"
    )
    goals = summary.get("goals_c32")
    if goals:
        print(
            f"goals at concurrency 32: JSON {_ratio(goals['json_x_torchserve_best'])} "
            "TorchServe's best (goal 2×); "
            f"binary/gRPC {_ratio(goals['binary_or_grpc_x_in_process'])} the in-process limit (goal 0.5×); "
            f"server CPU {goals['server_cpu_percent']:.0f} % (goal ≥ 180 %)"
        )
