"""Dynamic batching: merge queued requests by rows and run them on model instance threads.

The policy is data (``BatchPolicy``) and the decision is one pure function (``decide``),
so it is tested without threads. ``Batcher`` is the small machine around it: requests are
appended to a deque from the event loop, which wakes a waiting instance once per loop
iteration (after every request that iteration queued); each model instance is a thread
that asks ``decide`` what to take, concatenates the rows, runs the predictor off the event loop and
hands every request its own rows back through ``loop.call_soon_threadsafe`` (once per batch).

An idle model never waits for company: when no instance is computing, whatever is queued
runs at once, so a lone request pays no batching delay. Under load the queue fills while
an instance computes, and the next batch takes everything that arrived meanwhile.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

log = logging.getLogger("torchship.serve")


@dataclass(frozen=True)
class BatchPolicy:
    """When to run a batch.

    Args:
        max_batch_size: Most rows in one batch (a request may carry several rows).
        max_queue_delay_ms: Longest a request waits for company while another instance
            computes; an idle model runs at once.
        preferred_batch_sizes: Row counts to run as soon as the queue can form one.
        queue_limit: Most requests waiting; beyond it new requests are refused (503).
    """

    max_batch_size: int = 32
    max_queue_delay_ms: float = 2.0
    preferred_batch_sizes: tuple[int, ...] = ()
    queue_limit: int = 256


@dataclass(frozen=True)
class Decision:
    """``take`` queued requests now (0: none), else look again after ``wait_ms`` (None: on arrival)."""

    take: int
    wait_ms: float | None = None


def decide(
    policy: BatchPolicy, queued_rows: Sequence[int], oldest_wait_ms: float, busy_instances: int
) -> Decision:
    """Choose how many queued requests (oldest first) to run now.

    Args:
        queued_rows: Rows of each queued request, oldest first.
        oldest_wait_ms: How long the oldest queued request has waited.
        busy_instances: Instances of this model computing right now.
    """
    if not queued_rows:
        return Decision(0)
    fit, rows, reachable = 0, 0, []
    for n in queued_rows:
        if fit and rows + n > policy.max_batch_size:
            break
        fit, rows = fit + 1, rows + n
        if rows in policy.preferred_batch_sizes:
            reachable.append(fit)
    if fit < len(queued_rows) or rows >= policy.max_batch_size or busy_instances == 0:
        return Decision(fit)
    if reachable:
        return Decision(reachable[-1])
    if oldest_wait_ms >= policy.max_queue_delay_ms:
        return Decision(fit)
    return Decision(0, policy.max_queue_delay_ms - oldest_wait_ms)


class QueueFullError(Exception):
    """The model's queue holds ``queue_limit`` requests already."""


Rows = np.ndarray | dict[str, np.ndarray]  # one input, or named inputs (batch first in each)


@dataclass(eq=False)
class Pending:
    """One queued request: its rows, when it arrived, its deadline, and where its answer goes."""

    rows: Rows
    future: asyncio.Future
    enqueued_s: float
    deadline_s: float
    dropped: bool = False  # the client left or the deadline passed; skip it before compute
    started_s: float = 0.0

    @property
    def n(self) -> int:
        first = next(iter(self.rows.values())) if isinstance(self.rows, dict) else self.rows
        return int(first.shape[0])

    @property
    def key(self) -> tuple:
        """Requests merge only when every dim but the batch agrees (same sequence length)."""
        if isinstance(self.rows, dict):
            return tuple((name, x.shape[1:]) for name, x in self.rows.items())
        return self.rows.shape[1:]


def concat_rows(parts: list[Rows]) -> Rows:
    """The requests' rows as one batch, along dim 0 of every input."""
    if len(parts) == 1:
        return parts[0]
    if isinstance(parts[0], dict):
        return {name: np.concatenate([p[name] for p in parts]) for name in parts[0]}  # type: ignore[index]
    return np.concatenate(parts)  # type: ignore[arg-type]


def split_rows(y: Rows, sizes: list[int]) -> list[Rows]:
    """Each request's share of a batch's outputs."""
    bounds = np.cumsum(sizes)[:-1]
    if isinstance(y, dict):
        pieces = {name: np.split(v, bounds) for name, v in y.items()}
        return [{name: pieces[name][i] for name in y} for i in range(len(sizes))]
    return list(np.split(y, bounds))


def run_rows(predictor: Any, x: Rows) -> Rows:
    return predictor.run(x) if isinstance(x, dict) else predictor.predict(x)


@dataclass
class BatchResult:
    """What one instance hands back to the event loop for one batch."""

    requests: list[Pending]
    outputs: list[np.ndarray | BaseException]
    compute_s: float
    input_s: float = 0.0
    rows: int = 0
    instance: int = 0
    restarted: bool = False
    error: str | None = None
    expired: list[Pending] = field(default_factory=list)
    # the batch's rows and outputs, for observers (never written to); dicts for named inputs/outputs
    x: Rows | None = None
    y: Rows | None = None


class Batcher:
    """Queue requests for one model version and run them on ``instances`` threads.

    Args:
        make_predictor: Builds one instance's predictor (also used to restart a crashed one).
        on_batch: Called on the event loop with every ``BatchResult`` (for stats and metrics);
            it resolves the requests' futures.
        on_computed: Called on the instance thread with every successful ``BatchResult``
            after its answers went to the event loop (monitoring); it must not block.
    """

    def __init__(
        self,
        name: str,
        policy: BatchPolicy,
        predictors: list[Any],
        make_predictor: Callable[[], Any],
        loop: asyncio.AbstractEventLoop,
        on_batch: Callable[[BatchResult], None],
        on_computed: Callable[[BatchResult], None] | None = None,
    ):
        self.name = name
        self.policy = policy
        self._predictors = predictors
        self._make_predictor = make_predictor
        self._loop = loop
        self._on_batch = on_batch
        self._on_computed = on_computed
        self._queue: deque[Pending] = deque()
        self._cond = threading.Condition()
        self._busy = 0
        self._wake_due = False  # a _wake is scheduled on the loop
        self._stopping = False
        self.restarts = 0
        self._threads = [
            threading.Thread(target=self._serve, args=(i,), name=f"{name}-instance-{i}", daemon=True)
            for i in range(len(predictors))
        ]
        for thread in self._threads:
            thread.start()

    @property
    def depth(self) -> int:
        return len(self._queue)

    @property
    def idle(self) -> bool:
        return not self._queue and self._busy == 0

    def submit(self, rows: Rows, timeout_s: float) -> Pending:
        """Queue ``rows`` (n, ...) from the event loop; raises ``QueueFullError`` at the limit.

        A waiting instance is woken by the loop's next iteration (``_wake``), not at once."""
        now = time.monotonic()
        pending = Pending(rows, self._loop.create_future(), now, now + timeout_s)
        with self._cond:
            if self._stopping or len(self._queue) >= self.policy.queue_limit:
                raise QueueFullError(self.name)
            self._queue.append(pending)
        if not self._wake_due:
            self._wake_due = True
            self._loop.call_soon(self._wake)
        return pending

    def _wake(self) -> None:
        """Wake a waiting instance once per loop iteration, after every request this iteration
        queued: woken per request, an idle instance took the first alone and made the loop wait
        for the interpreter lock while it did (measured in docs/benchmarks.md, "The interpreter
        lock on the event loop": the cnn's batches grew from about 6 to about 10 rows with 2
        workers and from 6 to 25 with one)."""
        self._wake_due = False
        with self._cond:
            self._cond.notify()

    def stop(self, timeout_s: float = 30.0) -> None:
        """Finish everything queued, then end the instance threads and close the predictors."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        for thread in self._threads:
            thread.join(timeout_s)
        for predictor in self._predictors:
            close = getattr(predictor, "close", None)
            if close is not None:
                close()

    # ------------------------------------------------------------------ instance threads
    def _next_batch(self) -> list[Pending] | None:
        with self._cond:
            while True:
                queue = self._queue
                if not queue and self._stopping:
                    return None
                wait_ms = (time.monotonic() - queue[0].enqueued_s) * 1e3 if queue else 0.0
                # only the oldest requests whose other dims match the oldest's can share a batch
                key = queue[0].key if queue else None
                alike = list(itertools.takewhile(lambda p, key=key: p.key == key, queue))
                decision = decide(self.policy, [p.n for p in alike], wait_ms, self._busy)
                if not decision.take and len(alike) < len(queue):
                    decision = Decision(len(alike))
                if decision.take:
                    self._busy += 1
                    batch = [queue.popleft() for _ in range(decision.take)]
                    if queue:  # one wake-up per loop iteration: pass it on to another idle instance
                        self._cond.notify()
                    return batch
                self._cond.wait(None if decision.wait_ms is None else decision.wait_ms / 1e3)

    def _serve(self, index: int) -> None:
        while (batch := self._next_batch()) is not None:
            try:
                result = self._run(index, batch)
            except BaseException as exc:  # never let an instance thread die silently
                log.exception("instance %d of %s failed outside predict", index, self.name)
                result = BatchResult(batch, [exc] * len(batch), 0.0, instance=index, error=repr(exc))
            finally:
                with self._cond:
                    self._busy -= 1
                    self._cond.notify()
            self._loop.call_soon_threadsafe(self._on_batch, result)
            if self._on_computed is not None and result.y is not None:
                try:
                    self._on_computed(result)
                except Exception:  # noqa: BLE001 - an observer must never stop an instance
                    log.exception("observer of %s failed", self.name)

    def _run(self, index: int, batch: list[Pending]) -> BatchResult:
        now = time.monotonic()
        expired = [p for p in batch if not p.dropped and p.deadline_s <= now]
        live = [p for p in batch if not p.dropped and p.deadline_s > now]
        if not live:
            return BatchResult([], [], 0.0, instance=index, expired=expired)
        for p in live:
            p.started_s = now
        # x: (rows, *input.shape) — the live requests' rows, oldest first (a dict for named inputs)
        x = concat_rows([p.rows for p in live])
        t_input = time.monotonic()
        try:
            y = run_rows(self._predictors[index], x)
            compute_s = time.monotonic() - t_input
            outputs: list[Any] = split_rows(y, [p.n for p in live])
            rows = sum(p.n for p in live)
            return BatchResult(
                live, outputs, compute_s, t_input - now, rows, index, expired=expired, x=x, y=y
            )
        except Exception as exc:  # noqa: BLE001 - a model failure must not take the server down
            return self._recover(index, live, exc, expired, t_input - now)

    def _recover(
        self, index: int, live: list[Pending], exc: Exception, expired: list[Pending], input_s: float
    ):
        """Restart the instance, then run each request alone so one bad request fails alone."""
        log.error("model %s instance %d failed (%r); restarting it", self.name, index, exc)
        self.restarts += 1
        try:
            self._predictors[index] = self._make_predictor()
        except Exception as load_exc:  # noqa: BLE001
            log.error("model %s instance %d could not restart (%r)", self.name, index, load_exc)
            return BatchResult(
                live, [load_exc] * len(live), 0.0, instance=index, restarted=True, error=repr(exc)
            )
        outputs: list[np.ndarray | BaseException] = []
        t0 = time.monotonic()
        for p in live:
            try:
                outputs.append(run_rows(self._predictors[index], p.rows))
            except Exception as one_exc:  # noqa: BLE001
                outputs.append(one_exc)
        return BatchResult(
            live,
            outputs,
            time.monotonic() - t0,
            input_s,
            sum(p.n for p in live),
            index,
            restarted=True,
            error=repr(exc),
            expired=expired,
        )
