"""The pure parts of ``serve --workers``: summing statistics, thread shares, per-worker configs."""

from __future__ import annotations

import os

from torchship.monitor.config import MonitorConfig, RequestLogConfig
from torchship.serve import ModelSettings, ServeConfig
from torchship.serve.cluster import Cluster, read_repository_file, sum_stats
from torchship.serve.server import default_workers
from torchship.serve.workers import _worker_config, split_threads


def _entry(rows: int, batches: int, success_ns: int, sizes: dict[int, int], drift: str) -> dict:
    duration = {"count": batches, "ns": success_ns}
    return {
        "name": "m",
        "version": "1",
        "last_inference": rows,
        "inference_count": rows,
        "execution_count": batches,
        "instance_restarts": 0,
        "inference_stats": {"success": {"count": rows, "ns": success_ns}, "queue": duration},
        "batch_stats": [
            {"batch_size": size, "compute_infer": {"count": n, "ns": n * 10}} for size, n in sizes.items()
        ],
        "drift": {"status": drift},
    }


def test_stats_of_workers_are_added_version_by_version():
    w0 = {"model_stats": [_entry(5, 3, 100, {1: 1, 2: 2}, "worker 0")]}
    w1 = {"model_stats": [_entry(7, 2, 50, {2: 1, 5: 1}, "worker 1")]}
    (merged,) = sum_stats([w0, w1], w0)["model_stats"]
    assert (merged["inference_count"], merged["execution_count"], merged["last_inference"]) == (12, 5, 7)
    assert merged["inference_stats"]["success"] == {"count": 12, "ns": 150}
    by_size = [(b["batch_size"], b["compute_infer"]["count"]) for b in merged["batch_stats"]]
    assert by_size == [(1, 1), (2, 3), (5, 1)]
    assert merged["drift"] == {"status": "worker 0"}  # the one drift monitor's


def test_default_workers_divides_the_cores_by_the_threads(tmp_path):
    cores = len(os.sched_getaffinity(0))
    unlimited = tmp_path / "cpu.max"
    unlimited.write_text("max 100000\n")
    assert default_workers(cgroup=unlimited) == cores
    assert default_workers(cores, cgroup=unlimited) == 1
    assert default_workers(cores * 4, cgroup=unlimited) == 1
    limited = tmp_path / "limited"
    limited.write_text("50000 100000\n")  # a container limited to half a CPU
    assert default_workers(cgroup=limited) == 1


def test_split_threads_keeps_explicit_threads():
    config = ServeConfig(models={"a": ModelSettings(threads=3), "b": ModelSettings()})
    split = split_threads(config, default_workers())
    assert (split.default.threads, split.models["a"].threads, split.models["b"].threads) == (1, 3, 1)


def test_worker_config_applies_loads_and_gives_later_workers_no_monitor_and_their_own_log(tmp_path):
    log = RequestLogConfig(path=tmp_path / "requests.jsonl")
    config = ServeConfig(monitor=MonitorConfig(request_log=log))
    first = _worker_config(config, 0, {"m": "on_demand"})
    second = _worker_config(config, 1, {})
    assert first.settings_for("m").load == "on_demand"
    assert first.monitor.enabled
    assert first.monitor.request_log.path == tmp_path / "requests.jsonl"
    assert not second.monitor.enabled
    assert second.monitor.request_log.path == tmp_path / "requests.w1.jsonl"


def test_remembered_loads_survive_for_later_workers(tmp_path):
    cluster = Cluster(0, 2, tmp_path)
    cluster.remember("a", "unload")
    cluster.remember("b", "load")
    assert read_repository_file(tmp_path) == {"a": "on_demand", "b": "startup"}
