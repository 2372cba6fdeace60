"""Shared by the report tests: one real quickstart run (1 epoch), a pruned child, an optimize fixture."""

from __future__ import annotations

import json

import pytest
from rich.console import Console

# The fields the report reads from optimize.json (docs/compress.md documents the writer's schema).
OPTIMIZE_FIXTURE = {
    "kind": "torchship.optimize",
    "candidates": [
        {
            "name": "fp32",
            "accuracy": 0.963,
            "latency_p50_ms": 0.40,
            "throughput_sps": 80000,
            "size_bytes": 400_000,
            "speedup": 1.0,
            "within_budget": True,
            "pareto": True,
            "picked": False,
        },
        {
            "name": "fused",
            "accuracy": 0.962,
            "latency_p50_ms": 0.35,
            "throughput_sps": 91000,
            "size_bytes": 398_000,
            "speedup": 1.14,
            "within_budget": True,
            "pareto": True,
            "picked": False,
        },
        {
            "name": "int8-static",
            "accuracy": 0.957,
            "latency_p50_ms": 0.15,
            "throughput_sps": 210000,
            "size_bytes": 110_000,
            "speedup": 2.67,
            "within_budget": True,
            "pareto": True,
            "picked": True,
        },
        {
            "name": "prune-0.7",
            "accuracy": 0.90,
            "latency_p50_ms": 0.20,
            "throughput_sps": 160000,
            "size_bytes": 90_000,
            "speedup": 2.0,
            "within_budget": False,
            "pareto": False,
            "picked": False,
        },
    ],
}


@pytest.fixture(scope="package")
def quickstart(tmp_path_factory):
    """The real main job, one epoch: run dir, in-place exports, bench.json and report.html."""
    from torchship.quickstart import run_quickstart

    return run_quickstart(tmp_path_factory.mktemp("qs"), epochs=1, console=Console(quiet=True))


@pytest.fixture(scope="package")
def pruned(quickstart):
    """The quickstart's structurally pruned, fine-tuned and exported child of its artifact."""
    return quickstart.pruned


@pytest.fixture(scope="package")
def optimize_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("opt")
    (out / "optimize.json").write_text(json.dumps(OPTIMIZE_FIXTURE))
    return out


@pytest.fixture(scope="package")
def full_report(quickstart, pruned, optimize_dir, tmp_path_factory):
    """The report over the quickstart directory (trained + pruned artifacts) and the optimize fixture."""
    from torchship.report import write_report

    out = tmp_path_factory.mktemp("report") / "report.html"
    result = write_report([quickstart.out], out, optimize=[optimize_dir])  # holds the pruned child too
    return result, out.read_text(encoding="utf-8")
