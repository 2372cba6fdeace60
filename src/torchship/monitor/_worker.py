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
    """Run ``handle(item)`` for each item ``offer``-ed, on one thread; a full queue refuses, never waits."""

    def __init__(self, name: str, handle: Callable[[Any], None], queue_size: int):
        self.name = name
        self._handle = handle
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
            item = self._queue.get()
            try:
                if item is None:
                    return
                self._handle(item)
            except Exception:  # one bad item must not end the thread for everything after it
                log.exception("%s failed on an item", self.name)
            finally:
                self._queue.task_done()
