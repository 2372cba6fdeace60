"""The batching policy (pure) and the Batcher (threads): every request gets exactly its own rows."""

from __future__ import annotations

import asyncio
import threading
import time

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from torchship.serve.batcher import Batcher, BatchPolicy, Decision, QueueFullError, decide

POLICY = BatchPolicy(max_batch_size=8, max_queue_delay_ms=5.0, queue_limit=64)


def test_empty_queue_waits_for_arrivals():
    assert decide(POLICY, [], 0.0, 0) == Decision(0, None)


def test_idle_model_runs_a_lone_request_at_once():
    assert decide(POLICY, [1], 0.0, busy_instances=0) == Decision(1)


def test_busy_model_waits_up_to_the_delay_for_company():
    assert decide(POLICY, [1, 2], 1.0, busy_instances=1) == Decision(0, 4.0)
    assert decide(POLICY, [1, 2], 5.0, busy_instances=1) == Decision(2)


def test_a_full_batch_goes_now_and_never_exceeds_max_rows():
    assert decide(POLICY, [4, 4, 1], 0.0, busy_instances=1) == Decision(2)
    assert decide(POLICY, [3, 3, 3], 0.0, busy_instances=1) == Decision(2)  # 9 rows would not fit


def test_an_oversized_request_still_runs_alone():
    assert decide(BatchPolicy(max_batch_size=2), [5, 1], 0.0, 1) == Decision(1)


def test_preferred_batch_size_goes_without_waiting():
    policy = BatchPolicy(max_batch_size=8, max_queue_delay_ms=5.0, preferred_batch_sizes=(2, 4))
    assert decide(policy, [1, 1, 1], 0.0, busy_instances=1) == Decision(2)
    assert decide(policy, [2, 2], 0.0, busy_instances=1) == Decision(2)


@given(rows=st.lists(st.integers(1, 12), max_size=40), wait_ms=st.floats(0, 20), busy=st.integers(0, 3))
def test_decision_invariants(rows, wait_ms, busy):
    d = decide(POLICY, rows, wait_ms, busy)
    assert 0 <= d.take <= len(rows)
    if d.take > 1:
        assert sum(rows[: d.take]) <= POLICY.max_batch_size
    if rows and (busy == 0 or wait_ms >= POLICY.max_queue_delay_ms):
        assert d.take >= 1  # nothing waits when the model is idle or the delay has passed
    if d.take == 0 and rows:
        assert d.wait_ms is not None
        assert 0 < d.wait_ms <= POLICY.max_queue_delay_ms


class Echo:
    """Returns its input's first column plus a batch marker; records batch sizes."""

    def __init__(self):
        self.batches: list[int] = []

    def predict(self, x):
        self.batches.append(len(x))
        return x * 2.0


def _run_batcher(requests, policy, instances=2):
    async def main():
        loop = asyncio.get_running_loop()
        predictors = [Echo() for _ in range(instances)]

        def deliver(result):
            for pending, out in zip(result.requests, result.outputs, strict=False):
                if not pending.future.done():
                    pending.future.set_result(out)

        batcher = Batcher("echo", policy, predictors, Echo, loop, deliver)

        async def one(i, n, gap_ms):
            await asyncio.sleep(gap_ms / 1e3)
            rows = np.full((n, 3), float(i), dtype=np.float32) + np.arange(n, dtype=np.float32)[:, None] / 100
            pending = batcher.submit(rows, timeout_s=30)
            return rows, await asyncio.wait_for(pending.future, 30)

        try:
            return await asyncio.gather(*(one(i, n, g) for i, (n, g) in enumerate(requests))), predictors
        finally:
            await asyncio.to_thread(batcher.stop)

    return asyncio.run(main())


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    requests=st.lists(st.tuples(st.integers(1, 6), st.floats(0, 3)), min_size=1, max_size=30),
    max_rows=st.integers(1, 16),
    delay_ms=st.floats(0, 3),
    instances=st.integers(1, 3),
)
def test_every_request_gets_exactly_its_own_rows(requests, max_rows, delay_ms, instances):
    policy = BatchPolicy(max_batch_size=max(max_rows, 6), max_queue_delay_ms=delay_ms, queue_limit=1000)
    results, predictors = _run_batcher(requests, policy, instances)
    for rows, out in results:
        np.testing.assert_array_equal(out, rows * 2.0)
    assert all(size <= policy.max_batch_size for p in predictors for size in p.batches)
    assert sum(size for p in predictors for size in p.batches) == sum(n for n, _ in requests)


def test_concurrent_requests_are_merged():
    results, predictors = _run_batcher([(1, 0.0)] * 32, BatchPolicy(max_batch_size=32, queue_limit=100), 1)
    assert len(results) == 32
    assert max(predictors[0].batches) > 1


def test_full_queue_refuses_at_once():
    async def main():
        loop = asyncio.get_running_loop()

        class Blocked:
            def __init__(self):
                self.gate = __import__("threading").Event()

            def predict(self, x):
                self.gate.wait(10)
                return x

        blocked = Blocked()
        batcher = Batcher(
            "b", BatchPolicy(max_batch_size=1, queue_limit=2), [blocked], Blocked, loop, lambda r: None
        )
        try:
            batcher.submit(np.zeros((1, 1)), 10)
            for _ in range(50):  # the instance takes the first request; then the queue holds two
                if batcher.depth == 0:
                    break
                await asyncio.sleep(0.01)
            batcher.submit(np.zeros((1, 1)), 10)
            batcher.submit(np.zeros((1, 1)), 10)
            with pytest.raises(QueueFullError):
                batcher.submit(np.zeros((1, 1)), 10)
        finally:
            blocked.gate.set()
            await asyncio.to_thread(batcher.stop)

    asyncio.run(main())


def test_requests_queued_in_one_loop_iteration_share_a_batch():
    """An idle instance is woken once per loop iteration, after every request queued in it: woken by
    the first, it would take that one alone while the loop went on with the others."""

    async def main():
        loop = asyncio.get_running_loop()
        echo = Echo()

        def deliver(result):
            for pending, out in zip(result.requests, result.outputs, strict=False):
                pending.future.set_result(out)

        batcher = Batcher("echo", BatchPolicy(max_batch_size=32), [echo], Echo, loop, deliver)
        try:
            pendings = []
            for i in range(5):  # one iteration of the loop: no await between the submits
                pendings.append(batcher.submit(np.full((1, 3), float(i), dtype=np.float32), 30))
                time.sleep(0.005)  # the loop's other work, releasing the interpreter lock
            outs = await asyncio.gather(*(asyncio.wait_for(p.future, 30) for p in pendings))
        finally:
            await asyncio.to_thread(batcher.stop)
        assert [float(out[0, 0]) for out in outs] == [0.0, 2.0, 4.0, 6.0, 8.0]
        return echo.batches

    assert asyncio.run(main()) == [5]


def test_a_burst_that_needs_two_instances_wakes_both():
    """One wake-up per loop iteration is passed on while requests are left, so a burst larger than one
    batch runs on every idle instance at once."""

    async def main():
        loop = asyncio.get_running_loop()
        entered, release = threading.Semaphore(0), threading.Event()

        class Held:
            def predict(self, x):
                entered.release()
                release.wait(10)
                return x

        batcher = Batcher("held", BatchPolicy(max_batch_size=1), [Held(), Held()], Held, loop, lambda r: None)
        try:
            batcher.submit(np.zeros((1, 1)), 30)
            batcher.submit(np.zeros((1, 1)), 30)  # the same loop iteration: one wake-up
            await asyncio.sleep(0)  # let the wake-up run
            both = await asyncio.to_thread(lambda: entered.acquire(timeout=5) and entered.acquire(timeout=5))
        finally:
            release.set()
            await asyncio.to_thread(batcher.stop)
        return both

    assert asyncio.run(main())
