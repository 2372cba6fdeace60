"""Batching named inputs: rows concatenate along batch, and only requests with equal other dims merge."""

from __future__ import annotations

import asyncio
import threading

import numpy as np

from torchship.serve.batcher import Batcher, BatchPolicy, Pending, concat_rows, split_rows


class _Recorder:
    name = "recorder"

    def __init__(self):
        self.release = threading.Event()
        self.shapes: list[tuple[int, ...]] = []

    def run(self, feeds):
        self.release.wait(30)
        self.shapes.append(feeds["ids"].shape)
        return {"out": feeds["ids"].sum(axis=1, keepdims=True).astype(np.float32)}


def test_concat_and_split_named_rows():
    a = {"ids": np.ones((2, 3)), "mask": np.zeros((2, 3))}
    b = {"ids": np.full((1, 3), 2.0), "mask": np.ones((1, 3))}
    both = concat_rows([a, b])
    assert both["ids"].shape == (3, 3)
    first, second = split_rows({"out": both["ids"][:, :1]}, [2, 1])
    assert first["out"].shape == (2, 1)
    assert second["out"][0, 0] == 2.0


def test_pending_key_separates_sequence_lengths():
    loop = asyncio.new_event_loop()
    try:
        short = Pending({"ids": np.zeros((1, 4))}, loop.create_future(), 0.0, 1.0)
        long = Pending({"ids": np.zeros((3, 9))}, loop.create_future(), 0.0, 1.0)
        assert short.key != long.key
        assert long.n == 3
    finally:
        loop.close()


def test_requests_of_different_lengths_never_share_a_batch():
    loop = asyncio.new_event_loop()
    recorder = _Recorder()
    results = []
    batcher = Batcher("t", BatchPolicy(max_batch_size=32), [recorder], lambda: recorder, loop, results.append)
    try:
        for seq in (4, 4, 4, 7, 4):  # the instance blocks on its first batch until released
            batcher.submit({"ids": np.ones((1, seq))}, 30)
        recorder.release.set()
        batcher.stop()
    finally:
        loop.close()
    # without grouping, np.concatenate of a (1, 4) and a (1, 7) batch fails and every request errors
    assert (1, 7) in recorder.shapes
    assert sum(shape[0] for shape in recorder.shapes) == 5
    assert all(shape[1] == 4 for shape in recorder.shapes if shape != (1, 7))
