"""Pod resources from a ``torchship bench --json`` document, or stated defaults when there is none.

The memory request is the bench's peak resident set of the runtime that will serve (the
whole process: Python, torch, the model and its largest batch), plus room for the server
(HTTP and gRPC, queued request bodies, responses); the limit is twice the request. The CPU
request is the intra-op threads the bench ran with plus one core for the protocol work
(parsing, decoding, encoding) that runs beside the model. No CPU limit is set: CFS
throttling of a latency-bound server shows up as tail latency, and the HPA scales on the
request. Without bench results the defaults below are used and the Deployment says so.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torchship.errors import ConfigError

MIB = 1024 * 1024
SERVER_HEADROOM_BYTES = 256 * MIB  # HTTP/gRPC server, up to queue_limit request bodies, responses
DEFAULT_MEMORY_BYTES = 1024 * MIB
DEFAULT_CPU_CORES = 2
BENCH_FILE = "bench.json"  # where `torchship bench ... --json RUN/bench.json` leaves it beside RUN/artifact


@dataclass(frozen=True)
class Resources:
    """Requests and limits for one serving container, and where they came from."""

    cpu_cores: int
    memory_bytes: int
    source: str  # one line: the bench row used, or that these are defaults

    @property
    def threads(self) -> int:
        """Intra-op threads for the model: the cores requested less the protocol's one."""
        return max(1, self.cpu_cores - 1)

    def to_kubernetes(self) -> dict[str, Any]:
        # cpu: no limit (see the module docstring); memory: the limit is twice the request
        return {
            "requests": {"cpu": str(self.cpu_cores), "memory": f"{_mib(self.memory_bytes)}Mi"},
            "limits": {"memory": f"{2 * _mib(self.memory_bytes)}Mi"},
        }


def _mib(size_bytes: int) -> int:
    return math.ceil(size_bytes / MIB)


def find_bench(artifact_dir: Path) -> Path | None:
    """``bench.json`` in the artifact directory or in the run directory that holds it."""
    for candidate in (artifact_dir / BENCH_FILE, artifact_dir.parent / BENCH_FILE):
        if candidate.is_file():
            return candidate
    return None


def from_bench(bench_file: Path | None, runtime: str, artifact_name: str | None) -> Resources:
    """Resources measured by ``bench_file`` for ``runtime`` (and the artifact, when several were benched).

    Raises:
        ConfigError: The file is not a bench document, or has no measured row for ``runtime``.
    """
    if bench_file is None:
        return Resources(
            DEFAULT_CPU_CORES,
            DEFAULT_MEMORY_BYTES,
            f"defaults ({DEFAULT_CPU_CORES} cores, {_mib(DEFAULT_MEMORY_BYTES)} MiB): no bench "
            "results found; run torchship bench ART --runtime R --json RUN/bench.json",
        )
    try:
        document = json.loads(bench_file.read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(
            f"cannot read bench results {bench_file} ({exc})",
            fix="pass the file `torchship bench --json` wrote",
        ) from None
    if not isinstance(document, dict) or document.get("kind") != "torchship.bench":
        raise ConfigError(
            f"{bench_file} is not a torchship bench document",
            fix="pass the file `torchship bench --json` wrote",
        )
    rows = [
        r
        for r in document.get("results", [])
        if isinstance(r, dict)
        and r.get("status") == "ok"
        and r.get("runtime") == runtime
        and r.get("peak_rss_bytes")
    ]
    named = [r for r in rows if r.get("artifact") == artifact_name]
    rows = named or rows
    if not rows:
        measured = sorted({str(r.get("runtime")) for r in document.get("results", []) if isinstance(r, dict)})
        raise ConfigError(
            f"{bench_file} has no measured row for runtime {runtime!r} (it has: "
            f"{', '.join(measured) or 'none'})",
            fix=f"choose --runtime from those, or bench with --runtime {runtime}",
        )
    peak = max(rows, key=lambda r: r["peak_rss_bytes"])
    threads = int(peak.get("threads") or 1)
    memory_bytes = int(peak["peak_rss_bytes"] * 1.25) + SERVER_HEADROOM_BYTES
    return Resources(
        threads + 1,
        memory_bytes,
        f"{bench_file.name}: {runtime} peak RSS {_mib(peak['peak_rss_bytes'])} MiB at batch "
        f"{peak.get('batch_size')} ({peak.get('peak_rss_scope') or 'scope unknown'}), "
        f"threads={threads}",
    )
