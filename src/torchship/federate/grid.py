"""Grids: how the ServerApp's messages reach ClientApps.

``InProcessGrid`` delivers each message to a ClientApp in this process (simulation).
Flower's own Simulation Engine runs ClientApps on Ray actors and Ray is not a dependency
here (heavy, and pointless on a 2-core box), so this implements Flower's public ``Grid``
interface instead; the strategies, the ClientApp and its mods are Flower's, unchanged. A
client that raises gets Flower's error reply, exactly as the Simulation Engine's worker
builds it; one slower than the round's timeout is left out of the round.

``TrackingGrid`` wraps any grid (this one or the SuperLink's) and records, per training
round, which clients were asked and which answered, failed or timed out.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any
from uuid import uuid4

from flwr.app import Context, Error, Message, RecordDict
from flwr.clientapp import ClientApp
from flwr.common.constant import SUPERLINK_NODE_ID, ErrorCode
from flwr.serverapp import Grid
from flwr.supercore.run import Run
from flwr.supercore.task_identity import TaskIdentity


class InProcessGrid(Grid):
    """Nodes 1..K, each a ClientApp call in a worker thread with its own node config and state."""

    def __init__(self, app: ClientApp, node_configs: list[dict[str, Any]], workers: int = 1, run_id: int = 1):
        self._app = app
        self._run = Run.create_empty(run_id)
        # who "this process" is when the strategy creates messages, as Flower's in-process runtimes set it
        TaskIdentity.task_id, TaskIdentity.run_id, TaskIdentity.node_id = 1, run_id, SUPERLINK_NODE_ID
        self._contexts = {
            i + 1: Context(
                run_id=run_id, node_id=i + 1, node_config=dict(cfg), state=RecordDict(), run_config={}
            )
            for i, cfg in enumerate(node_configs)
        }
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="torchship-client")
        self._pending: dict[str, Future[Message]] = {}
        self._lock = threading.Lock()

    def set_run(self, run: Run) -> None:
        self._run = run

    @property
    def run(self) -> Run:
        return self._run

    def create_message(
        self,
        content: RecordDict,
        message_type: str,
        dst_node_id: int,
        group_id: str,
        ttl: float | None = None,
    ) -> Message:
        return Message(content, dst_node_id, message_type, ttl=ttl, group_id=group_id)

    def get_node_ids(self) -> Iterable[int]:
        return list(self._contexts)

    def push_messages(self, messages: Iterable[Message]) -> Iterable[str]:
        ids = []
        for msg in messages:
            # Flower's grids assign the id the same way (InMemoryGrid.push_messages)
            msg.metadata.__dict__["_message_id"] = str(uuid4())
            msg.metadata.__dict__["_run_id"] = self._run.run_id
            with self._lock:
                self._pending[msg.metadata.message_id] = self._pool.submit(self._deliver, msg)
            ids.append(msg.metadata.message_id)
        return ids

    def pull_messages(self, message_ids: Iterable[str]) -> Iterable[Message]:
        replies = []
        with self._lock:
            for mid in list(message_ids):
                future = self._pending.get(mid)
                if future is not None and future.done():
                    replies.append(self._pending.pop(mid).result())
        return replies

    def send_and_receive(
        self, messages: Iterable[Message], *, timeout: float | None = None
    ) -> Iterable[Message]:
        ids = list(self.push_messages(messages))
        with self._lock:
            futures = [self._pending[i] for i in ids]
        wait(futures, timeout=timeout)
        return list(self.pull_messages(ids))

    def close(self) -> None:
        """Stop taking work; a ClientApp still running (timed out) finishes in the background."""
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _deliver(self, msg: Message) -> Message:
        context = self._contexts[msg.metadata.dst_node_id]
        try:
            reply = self._app(msg, context)
        except Exception as exc:  # noqa: BLE001 - a failing client is a reply, never the server's end
            reason = f"{type(exc)}:<'{exc}'>"  # the reason format of Flower's simulation worker
            reply = Message(Error(code=ErrorCode.CLIENT_APP_RAISED_EXCEPTION, reason=reason), reply_to=msg)
        reply.metadata.__dict__["_message_id"] = str(uuid4())
        return reply


@dataclass
class RoundRecord:
    sent: list[int] = field(default_factory=list)
    replied: list[int] = field(default_factory=list)
    failed: dict[int, str] = field(default_factory=dict)  # node id -> reason
    metrics: dict[int, dict[str, float]] = field(default_factory=dict)  # node id -> its train metrics

    @property
    def timed_out(self) -> list[int]:
        return [n for n in self.sent if n not in self.replied and n not in self.failed]

    def samples(self) -> int:
        return int(sum(m.get("samples", 0) for m in self.metrics.values()))

    def train_loss(self) -> float | None:
        return self._weighted("train_loss")

    def train_accuracy(self) -> float | None:
        return self._weighted("train_accuracy")

    def _weighted(self, key: str) -> float | None:
        total = self.samples()
        if not total:
            return None
        return sum(m.get(key, 0.0) * m.get("samples", 0) for m in self.metrics.values()) / total


class TrackingGrid(Grid):
    """Pass-through to ``inner`` that records who took part in each training round."""

    def __init__(self, inner: Grid):
        self.inner = inner
        self.rounds: dict[int, RoundRecord] = {}

    def set_run(self, run: Run) -> None:
        self.inner.set_run(run)

    @property
    def run(self) -> Run:
        return self.inner.run

    def create_message(
        self,
        content: RecordDict,
        message_type: str,
        dst_node_id: int,
        group_id: str,
        ttl: float | None = None,
    ) -> Message:
        return self.inner.create_message(content, message_type, dst_node_id, group_id, ttl)

    def get_node_ids(self) -> Iterable[int]:
        return self.inner.get_node_ids()

    def push_messages(self, messages: Iterable[Message]) -> Iterable[str]:
        return self.inner.push_messages(messages)

    def pull_messages(self, message_ids: Iterable[str]) -> Iterable[Message]:
        return self.inner.pull_messages(message_ids)

    def send_and_receive(
        self, messages: Iterable[Message], *, timeout: float | None = None
    ) -> Iterable[Message]:
        messages = list(messages)
        train = [m for m in messages if m.metadata.message_type.startswith("train")]
        replies = list(self.inner.send_and_receive(messages, timeout=timeout))
        if train:
            record = RoundRecord(sent=[m.metadata.dst_node_id for m in train])
            for reply in replies:
                node = reply.metadata.src_node_id
                if reply.has_error():
                    record.failed[node] = reply.error.reason
                else:
                    record.replied.append(node)
                    metrics = reply.content.metric_records.get("metrics")
                    record.metrics[node] = {
                        k: float(v) for k, v in (metrics or {}).items() if isinstance(v, (int, float))
                    }
            self.rounds[int(train[0].content["config"]["server-round"])] = record
        return replies
