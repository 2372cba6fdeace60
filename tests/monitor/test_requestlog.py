"""Sampled request logging: the sample rate, the byte limit, rotation, and drops instead of waits."""

from __future__ import annotations

import json
import sqlite3
import threading

import numpy as np
import pytest

from torchship.monitor import RequestLogConfig
from torchship.monitor.requestlog import RequestLog


def _offer(log: RequestLog, requests: int, rows: int = 1) -> None:
    rng = np.random.default_rng(0)
    for _ in range(requests):
        x, y = rng.standard_normal((rows, 1, 8, 8)), rng.standard_normal((rows, 10))
        log.offer("digits", "1", [x.astype(np.float32)], [y.astype(np.float32)])


def test_jsonl_records_hold_inputs_outputs_and_predictions(tmp_path):
    log = RequestLog(RequestLogConfig(path=tmp_path / "log" / "requests.jsonl", sample_rate=1.0))
    _offer(log, 5, rows=2)
    log.close()
    lines = (tmp_path / "log" / "requests.jsonl").read_text().splitlines()
    assert len(lines) == 5
    assert log.written == 5
    record = json.loads(lines[0])
    assert record["model"] == "digits"
    assert record["version"] == "1"
    assert np.asarray(record["input"]).shape == (2, 1, 8, 8)
    assert len(record["logits"]) == 2
    assert record["prediction"] == np.argmax(record["logits"], axis=1).tolist()


def test_sample_rate_logs_about_that_share(tmp_path):
    log = RequestLog(RequestLogConfig(path=tmp_path / "r.jsonl", sample_rate=0.1, queue_size=4096))
    _offer(log, 2000)
    log.close()
    assert 130 < log.written < 270
    assert log.dropped == 0


@pytest.mark.parametrize("name", ["r.jsonl", "r.db"])
def test_files_rotate_and_never_pass_max_bytes(tmp_path, name):
    limit = 16 * 1024
    log = RequestLog(
        RequestLogConfig(path=tmp_path / name, sample_rate=1.0, max_bytes=limit, backups=2, queue_size=4096)
    )
    _offer(log, 120)  # about 2.5 kB each: several rotations
    log.close()
    files = sorted(p.name for p in tmp_path.iterdir() if not p.name.endswith("-journal"))
    assert files == [name, f"{name}.1", f"{name}.2"], files  # the oldest beyond two backups are gone
    assert log.rotations >= 3
    for path in tmp_path.iterdir():
        assert path.stat().st_size <= limit, (path.name, path.stat().st_size)
    if name.endswith(".db"):
        with sqlite3.connect(tmp_path / name) as db:
            count, prediction = db.execute("SELECT count(*), max(prediction) FROM requests").fetchone()
        assert count > 0
        assert json.loads(prediction)


def test_records_larger_than_the_limit_are_skipped(tmp_path):
    log = RequestLog(RequestLogConfig(path=tmp_path / "r.jsonl", sample_rate=1.0, max_bytes=1024))
    _offer(log, 3, rows=4)  # about 10 kB per record
    log.close()
    assert log.too_large == 3
    assert log.written == 0


def test_a_full_queue_drops_and_counts_instead_of_waiting(tmp_path):
    log = RequestLog(RequestLogConfig(path=tmp_path / "r.jsonl", sample_rate=1.0, queue_size=2))
    release = threading.Event()
    write = log._sink.write
    log._sink.write = lambda record: (release.wait(10), write(record))  # a stalled disk
    _offer(log, 10)  # returns at once although nothing can be written
    assert log.dropped >= 7
    release.set()
    log.close()
    assert log.written + log.dropped == 10


def test_named_requests_and_a_database_from_before_named_models(tmp_path):
    """An old ``requests`` table gains the ``outputs`` column; named records land beside one-input ones."""
    with sqlite3.connect(tmp_path / "r.db") as db:
        db.execute(
            "CREATE TABLE requests (ts REAL, model TEXT, version TEXT, prediction TEXT, "
            "confidence TEXT, input TEXT, logits TEXT)"
        )
    log = RequestLog(RequestLogConfig(path=tmp_path / "r.db", sample_rate=1.0))
    _offer(log, 1)
    x = {"a": np.ones((2, 3), np.float32), "ids": np.arange(2)}
    y = {"mean": np.zeros((2, 2), np.float32), "scale": np.ones(2, np.float32)}
    log.offer("reg", "1", [x], [y])  # no class output: no prediction
    log.close()
    with sqlite3.connect(tmp_path / "r.db") as db:
        old, new = db.execute(
            "SELECT prediction, input, logits, outputs FROM requests ORDER BY rowid"
        ).fetchall()
    assert old[3] is None
    assert len(json.loads(old[2])) == 1
    assert new[0] is None
    assert json.loads(new[1]) == {"a": [[1.0] * 3] * 2, "ids": [0, 1]}
    assert new[2] is None
    assert json.loads(new[3]) == {"mean": [[0.0, 0.0]] * 2, "scale": [1.0, 1.0]}
