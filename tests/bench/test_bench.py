"""bench(): rows per (artifact, runtime, batch size), skipped rows, ratios, accuracy, memory, size."""

import json
from dataclasses import fields

import pytest
from rich.console import Console

from torchship.bench import (
    BenchData,
    BenchError,
    BenchResult,
    bench,
    resolve_runtimes,
    results_table,
    skipped_notes,
    to_document,
    write_csv,
)
from torchship.runtime import runtimes
from torchship.runtime.base import RuntimeError_
from torchship.testing import tiny_artifact

MEASURED = [
    "threads",
    "iterations",
    "warmup",
    "measured_time_s",
    "latency_p50_ms",
    "latency_p90_ms",
    "latency_p99_ms",
    "latency_mean_ms",
    "latency_std_ms",
    "latency_iqr_ms",
    "latency_min_ms",
    "latency_max_ms",
    "first_call_ms",
    "throughput_sps",
    "throughput_mean_sps",
    "ratio",
    "baseline",
    "load_time_s",
    "peak_rss_bytes",
    "rss_delta_bytes",
    "peak_rss_scope",
    "file",
    "file_size_bytes",
]


def test_one_row_per_combination_with_every_measurement(tiny_cnn_artifact, fast):
    rows = bench([tiny_cnn_artifact.path], "eager", [1, 4], threads=1, timing=fast)
    assert [(r.artifact, r.runtime, r.batch_size, r.status) for r in rows] == [
        ("tiny-cnn", "eager", 1, "ok"),
        ("tiny-cnn", "eager", 4, "ok"),
    ]
    for row in rows:
        missing = [name for name in MEASURED if getattr(row, name) is None]
        assert not missing, missing
        assert (
            row.latency_min_ms
            <= row.latency_p50_ms
            <= row.latency_p90_ms
            <= row.latency_p99_ms
            <= row.latency_max_ms
        )
        assert row.iterations >= fast.min_iterations
        assert row.warmup == fast.warmup
        assert row.threads == 1
        assert row.accuracy is None  # no data given
        assert row.accuracy_samples is None
        assert row.file == "weights.safetensors"
        assert row.file_size_bytes == (tiny_cnn_artifact.path / "weights.safetensors").stat().st_size
        assert row.peak_rss_bytes > 0
        assert row.load_time_s > 0
    assert rows[1].throughput_sps == pytest.approx(4e3 / rows[1].latency_p50_ms)


def test_ratios_are_against_the_first_artifact_per_batch_size(tmp_path, fast):
    first = tiny_artifact("cnn", path=tmp_path / "a")
    second = tiny_artifact("mlp", path=tmp_path / "b")
    rows = bench([first, second], ["eager"], [1, 2], timing=fast)
    by_key = {(r.artifact, r.batch_size): r for r in rows}
    for size in (1, 2):
        base, other = by_key[("tiny-cnn", size)], by_key[("tiny-mlp", size)]
        assert base.ratio == 1.0
        assert base.baseline == "tiny-cnn/eager"
        assert other.baseline == "tiny-cnn/eager"
        assert other.ratio == pytest.approx(other.throughput_sps / base.throughput_sps)


def test_a_runtime_that_cannot_load_is_a_skipped_row(tiny_cnn_artifact, fast, fake_runtimes):
    rows = bench([tiny_cnn_artifact], ["cannot-load", "eager"], [1, 2], timing=fast)
    skipped = [r for r in rows if r.runtime == "cannot-load"]
    assert [r.status for r in skipped] == ["skipped", "skipped"]
    assert (
        skipped[0].reason
        == "cannot load: artifact has no file 'model.fake'; export it first (torchship export)"
    )
    assert skipped[0].latency_p50_ms is None
    assert skipped[0].ratio is None
    # the baseline is the first *measured* row, so eager is the reference here
    assert all(r.ratio == 1.0 for r in rows if r.runtime == "eager")
    assert skipped_notes(rows) == [f"tiny-cnn/cannot-load skipped: {skipped[0].reason}"]


def test_a_batch_size_the_runtime_rejects_is_skipped_alone(tiny_cnn_artifact, fast, fake_runtimes, labelled):
    rows = bench([tiny_cnn_artifact], "small-only", [2, 8], timing=fast, data=labelled)
    ok, bad = rows
    assert ok.ok
    assert ok.accuracy == 1.0  # accuracy fed in chunks of the largest batch that ran
    assert bad.status == "skipped"
    assert bad.reason == "cannot run batch 8: ValueError: batch 8 exceeds the compiled maximum of 4"


def test_accuracy_on_given_data(tiny_cnn_artifact, fast, labelled):
    x, y = labelled
    rows = bench([tiny_cnn_artifact], "eager", [1, 8], timing=fast, data=BenchData(x, y))
    assert [r.accuracy for r in rows] == [1.0, 1.0]
    assert rows[0].accuracy_samples == 16
    wrong = (y + 1) % 10
    rows = bench([tiny_cnn_artifact], "eager", [8], timing=fast, data=lambda art: (x, wrong))
    assert rows[0].accuracy == 0.0


def test_mismatched_data_is_one_error():
    import numpy as np

    with pytest.raises(BenchError, match="3 inputs and 2 labels"):
        BenchData(np.zeros((3, 4), np.float32), np.zeros(2, np.int64))


def test_isolate_worker_protocol_in_process(tiny_cnn_artifact, fast, labelled, monkeypatch, capsys, tmp_path):
    """The JSON job the parent sends on stdin gives rows on the last line of stdout."""
    import io
    from dataclasses import asdict

    import numpy as np

    from torchship.bench import isolate

    np.savez(tmp_path / "data.npz", x=labelled[0], y=labelled[1])
    job = {
        "artifact": str(tiny_cnn_artifact.path),
        "runtime": "eager",
        "batch_sizes": [2],
        "threads": None,
        "timing": asdict(fast),
        "allow_import": [],
        "data": str(tmp_path / "data.npz"),
    }
    monkeypatch.setattr("sys.stdin", io.StringIO(json.dumps(job)))
    isolate._main()
    (row,) = [BenchResult.from_json(item) for item in json.loads(capsys.readouterr().out.splitlines()[-1])]
    assert row.ok
    assert row.accuracy == 1.0
    assert row.peak_rss_scope == "fresh process per artifact/runtime"


def test_isolate_forwards_named_dim_sizes(tiny_cnn_artifact, fast, monkeypatch):
    """`bench --isolate --dim seq=N` must reach the subprocess, not be dropped on the way."""
    import subprocess

    from torchship.bench import isolate

    sent = {}

    def fake_run(argv, *, input, **kwargs):
        sent.update(json.loads(input))
        return subprocess.CompletedProcess(argv, 0, stdout="[]\n", stderr="")

    monkeypatch.setattr(isolate.subprocess, "run", fake_run)
    isolate.measure_isolated(tiny_cnn_artifact, "eager", [1], timing=fast, dims={"seq": 7})
    assert sent["dims"] == {"seq": 7}


@pytest.mark.slow  # a subprocess that imports torch: seconds on an idle machine, a minute on a busy one
def test_isolate_measures_in_a_fresh_process(tiny_cnn_artifact, fast, labelled):
    rows = bench([tiny_cnn_artifact], "eager", [2], timing=fast, isolate=True, data=labelled)
    (row,) = rows
    assert row.ok, row.reason
    assert row.peak_rss_scope == "fresh process per artifact/runtime"
    assert row.accuracy == 1.0
    assert row.ratio == 1.0
    assert row.peak_rss_bytes > 0
    assert row.file_size_bytes > 0


def test_isolate_needs_a_saved_artifact(fast):
    with pytest.raises(BenchError, match="not saved"):
        bench([tiny_artifact("cnn")], "eager", [1], timing=fast, isolate=True)


def test_all_is_every_registered_runtime_but_auto_eager_first():
    names = resolve_runtimes("all")
    assert names[0] == "eager"
    assert "auto" not in names
    assert sorted(names) == sorted(n for n in runtimes.names() if n != "auto")


def test_unknown_runtime_lists_the_choices():
    with pytest.raises(RuntimeError_, match="unknown runtime 'eagr'; choose one of: .*eager"):
        resolve_runtimes("eager,eagr")


@pytest.mark.parametrize("sizes", [[0], [], [2, -1]])
def test_bad_batch_sizes_are_refused(tiny_cnn_artifact, fast, sizes):
    with pytest.raises(BenchError, match="batch sizes"):
        bench([tiny_cnn_artifact], "eager", sizes, timing=fast)


def test_table_json_and_csv_carry_every_row(tiny_cnn_artifact, fast, fake_runtimes, tmp_path):
    rows = bench([tiny_cnn_artifact], ["eager", "small-only", "cannot-load"], [1, 8], timing=fast)
    console = Console(width=200, record=True)
    console.print(results_table(rows))
    text = console.export_text()
    assert "small-only" in text
    assert "skipped" in text
    assert "1.00×" in text
    document = json.loads(json.dumps(to_document(rows, timing=fast)))
    assert document["kind"] == "torchship.bench"
    assert len(document["results"]) == 6
    assert {"torch", "torchship"} <= set(document["versions"])
    assert document["machine"]["logical_cores"] >= 1
    names = [f.name for f in fields(BenchResult)]
    path = write_csv(tmp_path / "bench.csv", rows)
    lines = path.read_text().splitlines()
    assert lines[0].split(",") == names
    assert len(lines) == 1 + 6
