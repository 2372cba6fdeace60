"""Measure one (artifact, runtime) in a fresh Python process (``torchship bench --isolate``).

In one process, a runtime loaded later inherits the allocator arenas, thread pools and
imported libraries of the ones before it, so its memory peak and cold start look smaller
(or larger) than they are on their own. Here the parent sends a JSON job on stdin to
``python -m torchship.bench.isolate`` and reads the rows back as the last line of stdout.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict
from pathlib import Path

import numpy as np

from torchship.artifact import Artifact
from torchship.bench import memory
from torchship.bench.accuracy import BenchData
from torchship.bench.latency import BenchError, TimingConfig
from torchship.bench.run import BenchResult, _one_line, _row, _skip, measure_runtime

# Start-up (imports) and load allowance on top of the timed seconds; AOTInductor compiles can take ~30 s.
_SLACK_S = 180.0


def measure_isolated(
    artifact: Artifact,
    runtime: str,
    batch_sizes: Sequence[int],
    *,
    threads: int | None = None,
    timing: TimingConfig | None = None,
    data: BenchData | None = None,
    allow_import: Iterable[str] = (),
    dims: Mapping[str, int] | None = None,
) -> list[BenchResult]:
    """Run :func:`~torchship.bench.run.measure_runtime` in a subprocess and return its rows.

    Raises:
        BenchError: The artifact is only in memory, so a subprocess cannot load it.
    """
    if artifact.path is None:
        raise BenchError(
            f"artifact {artifact.manifest.name} is not saved, so it cannot be measured in a subprocess",
            fix="save it first (artifact.save(path)) or measure without isolate",
        )
    timing = timing or TimingConfig()
    rows = [_row(artifact, runtime, bs, threads) for bs in batch_sizes]
    with tempfile.TemporaryDirectory(prefix="torchship-bench-") as tmp:
        job = {
            "artifact": str(artifact.path),
            "runtime": runtime,
            "batch_sizes": list(batch_sizes),
            "threads": threads,
            "timing": asdict(timing),
            "allow_import": list(allow_import),
            "dims": dict(dims or {}),
            "data": None,
        }
        if data is not None:
            job["data"] = str(Path(tmp) / "data.npz")
            np.savez(job["data"], x=data.x, y=data.y)
        budget_s = _SLACK_S + len(batch_sizes) * (timing.max_time_s * 1.5 + 5)
        try:
            proc = subprocess.run(
                [sys.executable, "-m", "torchship.bench.isolate"],
                input=json.dumps(job),
                capture_output=True,
                text=True,
                timeout=budget_s,
            )
        except subprocess.TimeoutExpired:
            return [_skip(r, f"isolated run took over {budget_s:.0f} s and was stopped") for r in rows]
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        tail = [line for line in proc.stderr.strip().splitlines() if line.strip()]
        why = tail[-1] if tail else f"exit status {proc.returncode}"
        return [_skip(r, f"isolated run failed: {why}") for r in rows]
    return [BenchResult.from_json(item) for item in json.loads(lines[-1])]


def _main() -> None:
    job = json.loads(sys.stdin.read())
    data = None
    if job["data"] is not None:
        with np.load(job["data"], allow_pickle=False) as arrays:
            data = BenchData(arrays["x"], arrays["y"])
    try:
        artifact = Artifact.load(job["artifact"])
    except Exception as exc:  # noqa: BLE001 - reported as the parent's skipped rows
        print(_one_line(exc), file=sys.stderr)
        sys.exit(1)
    rows = measure_runtime(
        artifact,
        job["runtime"],
        job["batch_sizes"],
        threads=job["threads"],
        timing=TimingConfig(**job["timing"]),
        data=data,
        allow_import=job["allow_import"],
        dims=job.get("dims") or None,
        peak_rss_scope=memory.SCOPE_ISOLATED,
    )
    print(json.dumps([r.to_json() for r in rows]))


if __name__ == "__main__":
    _main()
