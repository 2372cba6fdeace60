"""Sampled request/response logging to JSON lines or SQLite, for later analysis.

``offer`` runs on a model instance thread after the answers went back: it samples each
request with ``sample_rate`` and puts it on a bounded queue, or drops it (counted) when
the queue is full, so logging never blocks a request. A writer thread encodes and writes
records; a file never grows past ``max_bytes`` (it rotates to ``.1`` … ``.N`` first, keeping
``backups`` old files) and a record larger than ``max_bytes`` is skipped, counted.

A request of a one-input model is logged with its input rows, its logits and the predicted
class and top-1 confidence of each row. A request of a model with named inputs/outputs (an
imported model, see docs/import.md) is logged with every input's rows under its name
(``input``), every output's rows under its name (``outputs``), and the prediction and
confidence of its class output when it is a classifier (``logits`` names that output).
"""

from __future__ import annotations

import os
import random
import sqlite3
import time
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from torchship.monitor._worker import Worker
from torchship.monitor.config import RequestLogConfig

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS requests (ts REAL, model TEXT, version TEXT, prediction TEXT, "
    "confidence TEXT, input TEXT, logits TEXT, outputs TEXT)"
)  # JSON text: one entry per row of the request (input/outputs: an object by name for named models)
_COLUMNS = ("ts", "model", "version", "prediction", "confidence", "input", "logits", "outputs")
Rows = np.ndarray | dict[str, np.ndarray]


class RequestLog:
    """Sample, queue and write request/response records; ``written``/``dropped``/``too_large`` count them."""

    def __init__(self, config: RequestLogConfig):
        self.config = config
        self.path = Path(config.path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.written = 0
        self.dropped = 0
        self.too_large = 0
        self.rotations = 0
        self._random = random.Random(0)
        self._sink: _Jsonl | _Sqlite = _Sqlite(self.path) if config.kind == "sqlite" else _Jsonl(self.path)
        self._worker = Worker("torchship-request-log", self._write, config.queue_size)

    def offer(
        self, model: str, version: str, inputs: list[Rows], outputs: list[Any], logits: str | None = None
    ) -> None:
        """Sample each request (its input rows and outputs) onto the queue; never blocks.

        A request of a model with named inputs is a dict of rows by input name and its outputs
        a dict by output name; ``logits`` names a classifier's class output among them.
        """
        rate = self.config.sample_rate
        now = time.time()
        for x, y in zip(inputs, outputs, strict=True):
            if isinstance(y, BaseException) or (rate < 1.0 and self._random.random() >= rate):
                continue
            if not self._worker.offer((now, model, version, x, y, logits)):
                self.dropped += 1

    def stats(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "format": self.config.kind,
            "written": self.written,
            "dropped": self.dropped,
            "too_large": self.too_large,
            "rotations": self.rotations,
        }

    def _write(self, item: tuple[float, str, str, Rows, Rows, str | None]) -> None:
        ts, model, version, x, y, class_output = item
        record: dict[str, Any] = {"ts": round(ts, 6), "model": model, "version": version}
        if isinstance(y, dict):  # named inputs and outputs: each by name, the class output judged
            logits = y.get(class_output) if class_output is not None else None
            record.update(
                prediction=logits.argmax(axis=1).tolist() if logits is not None else None,
                confidence=_confidence(logits).tolist() if logits is not None else None,
                input=x,
                outputs=y,
            )
        else:
            # y: the logits (rows, classes) of one request
            record.update(
                prediction=y.argmax(axis=1).tolist(), confidence=_confidence(y).tolist(), input=x, logits=y
            )
        size = self._sink.size_of(record)
        if size > self.config.max_bytes:
            self.too_large += 1
            return
        if self._sink.bytes + size > self.config.max_bytes:
            self._rotate()
        self._sink.write(record)
        self.written += 1

    def _rotate(self) -> None:
        self._sink.close()
        backups = self.config.backups
        for i in range(backups, 0, -1):
            src = self.path if i == 1 else self.path.with_name(f"{self.path.name}.{i - 1}")
            if src.exists():
                os.replace(src, self.path.with_name(f"{self.path.name}.{i}"))
        if backups == 0 and self.path.exists():
            self.path.unlink()
        self._sink.open()
        self.rotations += 1

    def flush(self, timeout_s: float = 10.0) -> bool:
        """Wait until every queued record is written."""
        return self._worker.wait_idle(timeout_s)

    def close(self) -> None:
        self._worker.close()
        self._sink.close()


def _confidence(logits: np.ndarray) -> np.ndarray:
    z = np.exp(logits.astype(np.float64) - logits.max(axis=1, keepdims=True))
    return (z / z.sum(axis=1, keepdims=True)).max(axis=1)


class _Jsonl:
    def __init__(self, path: Path):
        self.path = path
        self.open()

    def open(self) -> None:
        self._file = open(self.path, "ab")  # noqa: SIM115 - held open across records
        self.bytes = self._file.tell()

    @staticmethod
    def _encode(record: dict[str, Any]) -> bytes:
        return orjson.dumps(record, option=orjson.OPT_SERIALIZE_NUMPY) + b"\n"

    def size_of(self, record: dict[str, Any]) -> int:
        record["_line"] = line = self._encode(record)
        return len(line)

    def write(self, record: dict[str, Any]) -> None:
        line = record.pop("_line", None) or self._encode(record)
        self._file.write(line)
        self._file.flush()
        self.bytes += len(line)

    def close(self) -> None:
        self._file.close()


class _Sqlite:
    """One table ``requests``; the file size is tracked from SQLite's page count."""

    def __init__(self, path: Path):
        self.path = path
        self.open()

    def open(self) -> None:
        self._db = sqlite3.connect(self.path, check_same_thread=False)
        self._db.execute(_SCHEMA)
        if "outputs" not in {row[1] for row in self._db.execute("PRAGMA table_info(requests)")}:
            self._db.execute(
                "ALTER TABLE requests ADD COLUMN outputs TEXT"
            )  # a file from before named models
        self._db.commit()
        self._page_bytes = int(self._db.execute("PRAGMA page_size").fetchone()[0])
        self.bytes = self._size()

    def _size(self) -> int:
        pages = self._db.execute("PRAGMA page_count").fetchone()[0]
        return int(pages * self._page_bytes)

    @staticmethod
    def _row(record: dict[str, Any]) -> tuple:
        def text(value: Any) -> str | None:
            return None if value is None else orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY).decode()

        return (
            record["ts"],
            record["model"],
            record["version"],
            *(text(record.get(column)) for column in _COLUMNS[3:]),
        )

    def size_of(self, record: dict[str, Any]) -> int:
        record["_row"] = row = self._row(record)
        # the text plus a page: SQLite grows the file a page at a time
        return sum(len(v) for v in row[3:] if v is not None) + 64 + self._page_bytes

    def write(self, record: dict[str, Any]) -> None:
        row = record.pop("_row", None) or self._row(record)
        self._db.execute(
            f"INSERT INTO requests ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})", row
        )
        self._db.commit()
        self.bytes = self._size()

    def close(self) -> None:
        self._db.close()
