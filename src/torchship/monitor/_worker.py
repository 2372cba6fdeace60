"""A daemon thread fed by a bounded queue: what the drift monitor and the request log run on."""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

log = logging.getLogger("torchship.monitor")


class Worker:
    """Run ``handle`` on one thread for what is ``offer``-ed; a full queue refuses, never waits.

    Args:
        handle: Called with each item, or with a list of every item waiting (``many``),
            which spreads fixed costs over the batches that piled up under load.
        linger_s: With ``many``, how long to let items pile up after the first arrives:
            the thread wakes at most ``1 / linger_s`` times a second, and fewer wake-ups
            mean fewer fights with the serving threads for the GIL.
    """

    def __init__(
        self,
        name: str,
        handle: Callable[[Any], None],
        queue_size: int,
        many: bool = False,
        linger_s: float = 0.0,
    ):
        self.name = name
        self._handle = handle
        self._many = many
        self._linger_s = linger_s
        self.cpu_s = 0.0  # CPU time spent in ``handle``: what the work costs the server
        self._queue: queue.Queue = queue.Queue(maxsize=queue_size)
        self._thread = threading.Thread(target=self._work, name=name, daemon=True)
        self._thread.start()

    def offer(self, item: Any) -> bool:
        """Queue ``item``; False (and nothing queued) when the queue is full."""
        try:
            self._queue.put_nowait(item)
        except queue.Full:
            return False
        return True

    def wait_idle(self, timeout_s: float = 10.0) -> bool:
        """Wait until every queued item is handled (tests, shutdown)."""
        deadline = time.monotonic() + timeout_s
        while self._queue.unfinished_tasks:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.005)
        return True

    def close(self, timeout_s: float = 10.0) -> None:
        """Handle what is queued, then end the thread."""
        self._queue.put(None)
        self._thread.join(timeout_s)

    def _work(self) -> None:
        while True:
            items = [self._queue.get()]
            if self._many and self._linger_s and items[0] is not None:
                time.sleep(self._linger_s)
            while self._many and items[-1] is not None:
                try:
                    items.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            work = [item for item in items if item is not None]
            t0 = time.thread_time()
            try:
                if work:
                    self._handle(work if self._many else work[0])
            except Exception:  # one bad item must not end the thread for everything after it
                log.exception("%s failed", self.name)
            finally:
                self.cpu_s += time.thread_time() - t0
                for _ in items:
                    self._queue.task_done()
            if items[-1] is None:
                return
