"""uvicorn's httptools protocol with guards on the request head: size (431), time (408), shedding (503).

uvicorn buffers a request line and headers of any size and waits for them forever (its
keep-alive timer runs only between requests), so a client could hold memory with huge
headers or a connection with a head it never finishes (slow-loris). This subclass counts
the head's bytes as they arrive and answers 431 past ``max_header_bytes``, and answers
408 when the head is not complete ``header_timeout_s`` after the connection opened or the
request began; a connection that sent nothing is closed silently. Each answer closes the
connection, lingering: the server sends the answer and its FIN, then reads and drops what the
client still sends for up to ``linger_s`` before closing. Closing at once with unread bytes
in the socket makes the kernel send a reset, and a client still sending its body may then
lose the answer (the reason for Apache's lingering close). Bodies have their own limits in
the app (``serve/body.py``).

Admission and shedding (``admit``, given by the server): an inference request takes its place
in the model's queue from its head, before its body is read, so a burst of heads cannot
overshoot the queue's limit while their bodies are on the way; and when the queue is full it is
refused from the head alone, before uvicorn builds an ASGI request and without its
body ever being buffered or decoded: the 503 goes out at once, the body's bytes pass through
the C parser and are dropped, and the connection stays open for the client's next request
(closed instead when the client asked for that). A client that retries at once without
honouring ``Retry-After`` then costs a parsed head and a skipped body per retry, not an ASGI
request nor a reconnect (measured in docs/benchmarks.md, overload section). The refusal is
made only when no other request of the same connection is in flight, so pipelined answers
keep their order, and a skipped body that stalls is bounded by ``header_timeout_s`` too.

Connection limit (``ConnectionGate``, ``max_connections`` in the serve config): a refusal, however
cheap, is work on the event loop, and a client that retries at once turns every refusal into
another one, so under a retry storm the loop answers refusals while accepted requests wait for
it. With a limit, the server stops accepting connections while that many are open (HAProxy's
``maxconn``). Further connections wait in the kernel's listen queue, whose length follows the
places left (``listen()`` again on every accept and close; ``PAUSED_BACKLOG`` at the limit), so
a burst below the limit is queued whole and nothing waits there long; beyond it their SYNs go
unanswered and the client's kernel sends them again a second later. Neither costs the server
anything, so the accepted requests keep their latency. So that keep-alive clients cannot hold
every place for ever, a request that starts while the server is at its limit and a connection
waits in the listen queue is the last on its connection (answered with ``connection: close``),
one place at a time: places rotate. asyncio's and uvloop's servers cannot pause accepting, so
``GatedListener`` accepts by hand while the gate has room.

Hang-ups and drain: every request's scope carries a future (``GONE``) that ``connection_lost``
completes when the client leaves before its answer was sent, so a queued request is dropped
without a ``receive()`` task watching for ``http.disconnect``. At shutdown uvicorn closes every
connection between requests; one whose first request has not arrived yet, or whose head is half
read, is answered first (``shutdown``), since its client may already have sent it.
"""

from __future__ import annotations

import asyncio
import logging
import select
import socket
from collections.abc import Callable
from typing import Any

import httptools
import orjson
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

ADMISSION = "torchship.admission"  # the ASGI scope key of a place taken at the request head
# the ASGI scope key of a future the protocol completes when the client hangs up before its answer
# was sent: a request watches it without a receive() task of its own (serve/app.py)
GONE = "torchship.gone"
_REASONS = {408: b"Request Timeout", 431: b"Request Header Fields Too Large"}
log = logging.getLogger("torchship.serve")
# The listen queue at the connection limit. A connection that waits there has sent its request,
# which waits with it (measured, docs/benchmarks.md: the p99 of all 200s at 4-8x overload was
# 81-97 ms with 2 and 220-275 ms with 8); one turned away waits in its own kernel and costs nothing.
PAUSED_BACKLOG = 2


class _HeadRefusedError(Exception):
    """Raised inside a parser callback to stop parsing a refused request head."""


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, refusing a head over ``max_header_bytes`` or ``header_timeout_s``."""

    max_header_bytes = 16 * 1024
    header_timeout_s = 10.0
    linger_s = 2.0  # after a refusal, how long the client's remaining bytes are read and dropped
    # (method, raw target, headers) -> a whole HTTP response refusing the request, or a place held
    # for it (an object with release(), put in the ASGI scope under ADMISSION), or None
    admit: Callable[[bytes, bytes, list[tuple[bytes, bytes]]], Any] | None = None
    gate: ConnectionGate | None = None  # the connection limit; the listener took the place at accept

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        self._gated = self.gate is not None and self.gate.owns(transport)
        self._head_bytes = self._chunk_bytes = 0
        self._refused = False  # answered from the head: what still arrives is read and dropped
        self._skipping = False  # a shed request's body is passing: dropped, the connection kept
        self._linger_timer: asyncio.TimerHandle | None = None
        self._in_head = False  # between the first byte of a request and the end of its headers
        self._draining = False  # the server is shutting down: the request on its way is the last
        # when the pending head began (the connection's start until a request begins); None: no head due.
        # One timer per connection re-arms itself, so a request costs no timer of its own.
        self._head_since: float | None = self.loop.time()
        self._head_timer: asyncio.TimerHandle | None = self.loop.call_later(
            self.header_timeout_s, self._check_head
        )

    def connection_lost(self, exc: Exception | None) -> None:
        for cycle in (self.cycle, *(cycle for cycle, _ in self.pipeline)):
            gone = cycle.scope.get(GONE) if cycle is not None and not cycle.response_complete else None
            if gone is not None and not gone.done():
                gone.set_result(None)
        if self._gated:
            self._gated = False
            self.gate.release()  # type: ignore[union-attr]
        self._stop_head_timer()
        if self._linger_timer is not None:
            self._linger_timer.cancel()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return  # lingering after a refusal: drop the rest of the request
        self._chunk_bytes = len(data)
        # uvicorn's data_received (0.49), except that a head refused here is not logged as an
        # invalid request: under overload that would be a warning line per shed request
        self._unset_keepalive_if_required()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            if not self._refused:
                self.logger.warning("Invalid HTTP request received.")
                self.send_400_response("Invalid HTTP request received.")
            return
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
            return
        if self._in_head and not self._refused:
            # still inside the head after this chunk, so all of it was head (httptools buffers an
            # unfinished header itself, so counting only finished headers would come too late)
            self._head_bytes += len(data)
            if self._head_bytes > self.max_header_bytes:
                self._refuse_head()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head_bytes = 0
        self._in_head = True
        self._head_since = self.loop.time()

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._head_since = None
        # the chunk that ended the head may also hold body bytes: count the head exactly, but
        # only when the cheap upper bound says it could be over the limit
        limit = self.max_header_bytes
        if self._head_bytes + self._chunk_bytes > limit and self._exact_head_bytes() > limit:
            self._refuse_head()
            raise _HeadRefusedError  # stops the parser; uvicorn then calls send_400_response
        last = self._draining or (self._gated and self.gate.rotate())  # type: ignore[union-attr]
        if last:
            # draining, or at the limit with a connection waiting in the kernel: this exchange is the
            # connection's last (uvicorn answers "connection: close" and closes); at the limit the
            # waiting one gets its place
            self.headers.append((b"connection", b"close"))
        idle = self.cycle is None or (self.cycle.response_complete and not self.pipeline)
        if self.admit is not None and idle:
            refusal = self.admit(self.parser.get_method(), self.url, self.headers)
            if refusal is not None and not isinstance(refusal, bytes):
                self.scope[ADMISSION] = refusal  # the app releases it once the request is queued
            elif refusal is not None:
                if last or not self.parser.should_keep_alive():
                    self._close_with(refusal.replace(b"\r\n\r\n", b"\r\nconnection: close\r\n\r\n", 1))
                    raise _HeadRefusedError
                self.transport.write(refusal)
                self._skipping = True
                self._head_since = self.loop.time()  # the body must pass within header_timeout_s
                return  # no ASGI request: on_body drops the body, on_message_complete re-arms keep-alive
        self.scope[GONE] = self.loop.create_future()
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        if not self._skipping:
            super().on_body(body)

    def on_message_complete(self) -> None:
        if not self._skipping:
            super().on_message_complete()
            return
        self._skipping = False
        self._head_since = None
        self.on_response_complete()  # uvicorn's own bookkeeping: counts it, arms the keep-alive timer

    def shutdown(self) -> None:
        """Drain: uvicorn closes every connection that is between requests at once. One accepted
        but whose first request has not arrived yet (its client sent it as soon as it connected), or
        whose request head is half read, is owed an answer: it gets one, with ``connection: close``.
        ``header_timeout_s`` still bounds the wait, so a connection that never sends closes then."""
        between = self.cycle is None or self.cycle.response_complete
        if between and (self.cycle is None or self._in_head) and not self.transport.is_closing():
            self._draining = True
            return
        super().shutdown()

    def send_400_response(self, msg: str) -> None:
        if not self._refused:  # already answered 431 from a parser callback
            super().send_400_response(msg)

    def _close_with(self, response: bytes) -> None:
        """Send ``response`` and FIN, drop what the client still sends, close after ``linger_s``."""
        self._stop_head_timer()
        if self._refused or self.transport.is_closing():
            return
        self._refused = True
        self.transport.write(response)
        if self.transport.can_write_eof():
            self.transport.write_eof()  # the client reads the answer, then end of stream
        # the client's own close ends it sooner: eof_received returns None, so the transport closes
        self._linger_timer = self.loop.call_later(self.linger_s, self.transport.close)

    def _exact_head_bytes(self) -> int:
        return len(self.url) + sum(len(name) + len(value) + 4 for name, value in self.headers)

    def _refuse_head(self) -> None:
        self._refuse(
            431,
            f"request line and headers exceed the {self.max_header_bytes}-byte limit; "
            "send fewer or shorter headers, or raise max_header_bytes in the serve config",
        )

    def _check_head(self) -> None:
        if self.transport.is_closing() or self._refused:
            return
        now = self.loop.time()
        if self._head_since is None or now - self._head_since < self.header_timeout_s:
            since = now if self._head_since is None else self._head_since
            self._head_timer = self.loop.call_at(since + self.header_timeout_s, self._check_head)
        elif self._skipping:  # a shed request's body stalled: nothing is owed to it any more
            self.transport.close()
        elif self._in_head:
            self._refuse(
                408,
                f"request line and headers not received within {self.header_timeout_s:g} s; "
                "send them promptly, or raise header_timeout_s in the serve config",
            )
        else:  # a connection that never started a request
            self.transport.close()

    def _stop_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _refuse(self, status: int, message: str) -> None:
        body = orjson.dumps({"error": message})
        self._close_with(
            b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n"
            b"connection: close\r\n\r\n%s" % (status, _REASONS[status], len(body), body)
        )


class ConnectionGate:
    """At most ``limit`` open connections: the listeners stop accepting at the limit, resume below it.

    A place is taken when a listener accepts (so a burst of accepts cannot overshoot) and given
    back by the protocol's ``connection_lost``, or by the listener when the connection never
    reached a protocol. Runs on the event loop only.
    """

    def __init__(self, limit: int):
        self.limit = limit
        self.open = 0
        self.listeners: list[GatedListener] = []
        self._pending: set[int] = set()  # file numbers accepted, their protocol not yet made
        self._rotating = False  # a connection is answering its last request to free a place

    def has_room(self) -> bool:
        return self.open < self.limit

    def rotate(self) -> bool:
        """Whether a request starting now should be its connection's last: the gate is at its limit,
        a connection waits to be accepted (one poll per listener, only then), and no place is on its
        way to it already. One place at a time: each rotation makes a client reconnect, and a
        reconnect that finds the short listen queue full waits for a TCP retransmission."""
        if self._rotating or self.open < self.limit:
            return False
        self._rotating = any(listener.waiting() for listener in self.listeners)
        return self._rotating

    def take(self, fileno: int) -> None:
        self.open += 1
        self._rotating = False  # the place freed for a waiting connection has reached one
        self._pending.add(fileno)
        for listener in self.listeners:
            if self.open >= self.limit:
                listener.pause()
            listener.size_queue(self.queue_length())

    def owns(self, transport: Any) -> bool:
        """Whether ``transport``'s connection holds a place (one the gate's listeners accepted)."""
        sock = transport.get_extra_info("socket")
        fileno = sock.fileno() if sock is not None else -1
        if fileno in self._pending:
            self._pending.discard(fileno)
            return True
        return False

    def release(self, fileno: int | None = None) -> None:
        if fileno is not None:
            self._pending.discard(fileno)
        self.open -= 1
        for listener in self.listeners:
            listener.size_queue(self.queue_length())
            if self.open < self.limit:
                listener.resume()

    def queue_length(self) -> int:
        """The listen queue's length: the places left, so what waits there is accepted at once."""
        return max(PAUSED_BACKLOG, self.limit - self.open)


class GatedListener:
    """Accepts connections on a listening socket while its gate has room (uvicorn's ``Server.servers`` entry).

    Hand-written because neither asyncio's nor uvloop's ``Server`` can stop accepting and
    start again; each accepted socket goes to ``loop.connect_accepted_socket`` with uvicorn's
    protocol factory, so everything after the accept is the usual path.
    """

    def __init__(
        self, sock: socket.socket, protocol_factory: Callable[[], asyncio.Protocol], gate: ConnectionGate
    ):
        self._loop = asyncio.get_running_loop()
        self._sock = sock
        self._factory = protocol_factory
        self._gate = gate
        self._reading = self._closed = False
        self._tasks: set[asyncio.Task] = set()
        sock.setblocking(False)
        self.size_queue(gate.queue_length())  # (bound by uvicorn, it is not listening yet)
        gate.listeners.append(self)
        if gate.has_room():
            self.resume()

    @property
    def sockets(self) -> list[socket.socket]:
        return [self._sock]

    def resume(self) -> None:
        if not self._reading and not self._closed:
            self._loop.add_reader(self._sock.fileno(), self._accept)
            self._reading = True

    def waiting(self) -> bool:
        """Whether a connection waits in the kernel's listen queue."""
        return not self._closed and bool(select.select([self._sock], [], [], 0)[0])

    def pause(self) -> None:
        if self._reading:
            self._loop.remove_reader(self._sock.fileno())
            self._reading = False

    def size_queue(self, length: int) -> None:
        """Set the listen queue's length (``listen()`` on a listening socket does; Linux, BSD, macOS)."""
        if not self._closed:
            self._sock.listen(length)

    def _accept(self) -> None:
        while self._reading and self._gate.has_room():
            try:
                conn, _ = self._sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # out of file descriptors, say: try again shortly, as asyncio does
                log.error("accepting a connection failed (%s); retrying in 1 s", exc)
                self.pause()
                self._loop.call_later(1.0, self._retry)
                return
            conn.setblocking(False)
            self._gate.take(conn.fileno())
            task = self._loop.create_task(self._connect(conn))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def _retry(self) -> None:
        if self._gate.has_room():  # (at the limit, the next close resumes it)
            self.resume()

    async def _connect(self, conn: socket.socket) -> None:
        fileno = conn.fileno()
        try:
            await self._loop.connect_accepted_socket(self._factory, conn)
        except Exception as exc:  # the connection never reached a protocol: its place is free again
            log.debug("an accepted connection failed to start: %s", exc)
            conn.close()
            self._gate.release(fileno)

    def close(self) -> None:
        """Stop accepting for good and close the socket, as asyncio's ``Server.close`` does
        (uvicorn's shutdown); open connections drain as usual."""
        self.pause()
        self._closed = True
        self._sock.close()

    async def wait_closed(self) -> None:
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)


def guarded_http_protocol(
    max_header_bytes: int,
    header_timeout_s: float,
    admit: Callable[[bytes, bytes, list[tuple[bytes, bytes]]], Any] | None = None,
    gate: ConnectionGate | None = None,
) -> type[asyncio.Protocol]:
    """A uvicorn HTTP protocol class (``uvicorn.Config(http=...)``) enforcing these head limits."""
    return type(
        "GuardedHttpToolsProtocol",
        (GuardedHttpToolsProtocol,),
        {
            "max_header_bytes": max_header_bytes,
            "header_timeout_s": header_timeout_s,
            "admit": staticmethod(admit) if admit is not None else None,
            "gate": gate,
        },
    )


def raw_response(status: int, reason: str, body: bytes, headers: dict[str, str]) -> bytes:
    """A whole HTTP/1.1 response (keep-alive: the caller closes the connection if it must)."""
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items() if k.lower() != "connection")
    return (f"HTTP/1.1 {status} {reason}\r\n{head}content-length: {len(body)}\r\n\r\n").encode(
        "latin-1"
    ) + body
