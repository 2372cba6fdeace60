"""measure_latency and summarize: repetition rules and statistics, never wall-clock figures."""

import numpy as np
import pytest

from torchship.bench import BenchError, TimingConfig, measure_latency, summarize


def test_summarize_exact_statistics():
    # 1..100 ms: percentiles with linear interpolation are known in closed form
    stats = summarize([i * 1_000_000 for i in range(1, 101)], batch_size=4, warmup=2, first_call_ms=9.0)
    assert stats.iterations == 100
    assert stats.batch_size == 4
    assert stats.warmup == 2
    assert stats.p50_ms == pytest.approx(50.5)
    assert stats.p90_ms == pytest.approx(90.1)
    assert stats.p99_ms == pytest.approx(99.01)
    assert stats.mean_ms == pytest.approx(50.5)
    assert stats.iqr_ms == pytest.approx(75.25 - 25.75)
    assert stats.std_ms == pytest.approx(np.std(np.arange(1, 101), ddof=1))
    assert (stats.min_ms, stats.max_ms) == (1.0, 100.0)
    assert stats.measured_time_s == pytest.approx(5.05)
    assert stats.throughput_sps == pytest.approx(4 * 1000 / 50.5)
    assert stats.throughput_mean_sps == pytest.approx(4 * 1000 / 50.5)
    data = stats.to_json()
    assert "samples_ns" not in data
    assert data["throughput_sps"] == stats.throughput_sps


def test_median_throughput_ignores_one_stall():
    samples = [1_000_000] * 99 + [1_000_000_000]  # 99 calls of 1 ms and one 1 s stall
    stats = summarize(samples, batch_size=8)
    assert stats.throughput_sps == pytest.approx(8000)
    assert stats.throughput_mean_sps < stats.throughput_sps / 5


def test_warmup_calls_are_discarded_and_min_iterations_reached():
    calls = []
    stats = measure_latency(calls.append, [0, 0], warmup=3, min_iterations=25, min_time_s=0.0, max_time_s=5.0)
    assert len(calls) == 3 + 25
    assert stats.iterations == 25
    assert stats.warmup == 3
    assert stats.batch_size == 2
    assert stats.first_call_ms is not None
    assert len(stats.samples_ns) == 25


def test_min_time_keeps_fast_calls_going():
    stats = measure_latency(lambda b: None, [0], warmup=0, min_iterations=1, min_time_s=0.02, max_time_s=1.0)
    assert stats.first_call_ms is None
    assert stats.measured_time_s >= 0.02
    assert stats.iterations > 1


def test_max_time_caps_slow_calls():
    import time

    stats = measure_latency(
        lambda b: time.sleep(0.005), [0], warmup=0, min_iterations=10_000, min_time_s=0.0, max_time_s=0.03
    )
    assert 1 <= stats.iterations < 10_000


def test_sync_runs_around_every_timed_call():
    syncs = []
    measure_latency(
        lambda b: None, [0], warmup=1, min_iterations=5, min_time_s=0, sync=lambda: syncs.append(1)
    )
    assert len(syncs) == 1 + 2 * 5


@pytest.mark.parametrize(
    ("kwargs", "word"),
    [
        ({"warmup": -1}, "warmup"),
        ({"min_iterations": 0}, "min_iterations"),
        ({"min_time_s": 2.0, "max_time_s": 1.0}, "max_time_s"),
    ],
)
def test_invalid_timing_is_one_error_naming_the_setting(kwargs, word):
    with pytest.raises(BenchError, match=word) as info:
        TimingConfig(**kwargs)
    assert "\n" not in str(info.value)
