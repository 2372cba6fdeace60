"""``max_connections``: at the limit the server stops accepting; the next connection waits in the kernel."""

from __future__ import annotations

import socket
import threading
import time

from serve_helpers import real_server

from torchship.serve import ServeConfig

LIVE = b"GET /v2/health/live HTTP/1.1\r\nHost: t\r\n\r\n"


def _connect(url: str) -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    return socket.create_connection((host, int(port)), timeout=10)


def _answered(sock: socket.socket) -> bytes:
    sock.sendall(LIVE)
    return sock.recv(65536)


def _unanswered(sock: socket.socket) -> bool:
    """Sends a request; True when no answer comes within half a second (the connection waits)."""
    sock.sendall(LIVE)
    sock.settimeout(0.5)
    try:
        sock.recv(65536)
    except TimeoutError:
        return True
    finally:
        sock.settimeout(10)
    return False


def test_at_the_limit_a_new_connection_waits_until_a_place_is_free(repo):
    with real_server(repo, ServeConfig(max_connections=2)) as url:
        first, second = _connect(url), _connect(url)
        assert _answered(first).startswith(b"HTTP/1.1 200 ")
        assert _answered(second).startswith(b"HTTP/1.1 200 ")
        with _connect(url) as third:  # the kernel completes the handshake: it sits in the listen queue
            assert _unanswered(third)  # not accepted, so not read, while two are open
            first.close()
            assert third.recv(65536).startswith(b"HTTP/1.1 200 ")  # accepted once a place is free
            with _connect(url) as fourth:
                assert _unanswered(fourth)
                # a request while one waits is its connection's last: the place rotates
                head = _answered(second)
                assert head.startswith(b"HTTP/1.1 200 ")
                assert b"connection: close" in head.lower()
                assert second.recv(65536) == b""  # closed by the server
                assert fourth.recv(65536).startswith(b"HTTP/1.1 200 ")
                # nobody waits now: keep-alive as usual
                assert b"connection: close" not in _answered(third).lower()
        second.close()


def test_without_a_limit_connections_are_not_gated(repo):
    with real_server(repo, ServeConfig()) as url:
        sockets = [_connect(url) for _ in range(4)]
        try:
            assert all(_answered(s).startswith(b"HTTP/1.1 200 ") for s in sockets)
        finally:
            for s in sockets:
                s.close()


def test_the_workers_private_unix_socket_is_never_gated(repo, tmp_path):
    """At the limit on the TCP port, the supervisor's channel (a Unix socket) is still answered."""
    from torchship.serve.app import create_app
    from torchship.serve.server import uvicorn_server

    app = create_app(repo, ServeConfig(max_connections=1))
    server = uvicorn_server(app, app.state.serve.config, host="127.0.0.1", port=0, log_level="warning")
    tcp = socket.socket()
    tcp.bind(("127.0.0.1", 0))
    tcp.listen(8)
    private = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    private.bind(str(tmp_path / "w0.sock"))
    private.listen(8)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [tcp, private]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 60
        while not server.started:
            assert thread.is_alive(), "the server stopped"
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.02)
        url = "http://127.0.0.1:%d" % tcp.getsockname()[1]
        with _connect(url) as held:
            assert _answered(held).startswith(b"HTTP/1.1 200 ")  # the one place is taken
            waiting = _connect(url)
            assert _unanswered(waiting)
            for _ in range(3):  # the Unix socket answers, connection after connection
                with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as unix:
                    unix.settimeout(10)
                    unix.connect(str(tmp_path / "w0.sock"))
                    assert _answered(unix).startswith(b"HTTP/1.1 200 ")
            waiting.close()
    finally:
        server.should_exit = True
        thread.join(30)


class _Listener:
    """Records what the gate asks of a listener."""

    def __init__(self) -> None:
        self.reading, self.queue, self.poll = True, None, False

    def pause(self) -> None:
        self.reading = False

    def resume(self) -> None:
        self.reading = True

    def size_queue(self, length: int) -> None:
        self.queue = length

    def waiting(self) -> bool:
        return self.poll


def test_the_gate_pauses_at_the_limit_sizes_the_queue_by_the_places_left_and_rotates_one_at_a_time():
    from torchship.serve.protocol import PAUSED_BACKLOG, ConnectionGate

    gate, listener = ConnectionGate(4), _Listener()
    gate.listeners.append(listener)
    gate.take(0)
    assert (listener.reading, listener.queue) == (True, 3)  # three places left
    gate.take(1)
    gate.take(2)
    assert (listener.reading, listener.queue) == (True, max(1, PAUSED_BACKLOG))
    gate.take(3)
    assert (listener.reading, listener.queue) == (False, PAUSED_BACKLOG)
    listener.poll = True  # a connection waits: one request, not every one, frees a place
    assert gate.rotate()
    assert not gate.rotate()
    gate.release()
    assert listener.reading
    gate.take(4)  # the waiting connection got the place: the next may rotate again
    assert gate.rotate()
    listener.poll = False
    gate.release()
    gate.release()
    gate.release()
    assert (listener.reading, listener.queue) == (True, 3)


class _FailingOnce(socket.socket):
    """A listening socket whose first accept fails as when the process is out of file descriptors."""

    failed = False

    def accept(self):
        if not _FailingOnce.failed:
            _FailingOnce.failed = True
            raise OSError(24, "Too many open files")
        return super().accept()


def test_a_failed_accept_pauses_and_retries_only_when_there_is_room():
    import asyncio

    from torchship.serve.protocol import ConnectionGate, GatedListener

    _FailingOnce.failed = False

    async def scenario():
        with _FailingOnce() as sock:
            sock.bind(("127.0.0.1", 0))
            gate = ConnectionGate(1)
            listener = GatedListener(sock, asyncio.Protocol, gate)
            with socket.create_connection(sock.getsockname(), timeout=10):
                for _ in range(20):  # the first accept fails: paused, no busy loop on a readable socket
                    await asyncio.sleep(0.01)
                    if _FailingOnce.failed:
                        break
                assert _FailingOnce.failed
                assert not listener._reading
                gate.take(999)  # the one place is taken meanwhile (by another listener, say)
                await asyncio.sleep(1.2)
                assert not listener._reading  # the retry found no room: it stays paused, not spinning
                gate.release(999)  # a place is free: it resumes and accepts the waiting connection
                for _ in range(300):
                    await asyncio.sleep(0.01)
                    if gate.open:
                        break
                assert gate.open == 1
            listener.close()
            await listener.wait_closed()

    asyncio.run(scenario())


def test_the_server_process_hands_the_interpreter_lock_to_a_model_thread_within_half_a_millisecond(
    monkeypatch,
):
    """An instance thread waits for the lock after every batch; Python's 5 ms default idled small models."""
    import sys

    from torchship.serve import ServeConfig, server

    seen = []

    class Stub:
        started = True

        def run(self, sockets=None):
            seen.append(sys.getswitchinterval())

    monkeypatch.setattr(server, "uvicorn_server", lambda *args, **kwargs: Stub())
    before = sys.getswitchinterval()
    try:
        server.run_uvicorn(
            None, ServeConfig(), host="127.0.0.1", port=0, log_level="warning", drain_timeout_s=1
        )
    finally:
        sys.setswitchinterval(before)
    assert seen == [server.SWITCH_INTERVAL_S]
    assert server.SWITCH_INTERVAL_S <= 0.0005
