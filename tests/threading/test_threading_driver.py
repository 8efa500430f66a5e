"""heartbeat_threading carries out what the core decides: server answers (ServerPolicy),
handshake bounds (rule open-timeout), one Closed per connection, options validated before
anything listens or connects, and fail().

Real sockets on 127.0.0.1; every wait is bounded.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Sequence
from typing import Any

import pytest
from heartbeat_threading import Connection, connect, serve

from heartbeat_core import Accepted, Closed, ConnectionEvent, HeartbeatConfig
from heartbeat_core.errors import ConfigError, ConnectionClosedError, HandshakeError
from tests.support.frames import frame
from tests.support.peers import open_websocket
from tests.support.waiting import wait_until

from .helpers import SLACK, read_frame

QUIET = HeartbeatConfig(interval=30.0, timeout=10.0, close_timeout=1.0)
#: Nothing listens here: a connect() that got past validation would fail with OSError.
NOWHERE = "ws://127.0.0.1:9/"


def echo(conn: Connection) -> None:
    try:
        for message in conn:
            conn.send(message)
    except ConnectionClosedError:
        pass


class Events:
    """on_event recorder (I/O thread): events per connection."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.items: list[tuple[Connection, ConnectionEvent]] = []

    def __call__(self, conn: Connection, event: ConnectionEvent) -> None:
        with self.lock:
            self.items.append((conn, event))

    def of(self, kind: type) -> list[tuple[Connection, Any]]:
        with self.lock:
            return [(c, e) for c, e in self.items if isinstance(e, kind)]


def http_exchange(port: int, request: bytes) -> bytes:
    """Send ``request`` and read the whole answer, until the server closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(request)
        reply = b""
        while chunk := sock.recv(4096):
            reply += chunk
    return reply


def free_port() -> int:
    probe = socket.create_server(("127.0.0.1", 0))
    port: int = probe.getsockname()[1]
    probe.close()
    return port


# ------------------------------------------------------------- server answers


def test_every_connection_reports_one_closed_also_those_that_never_opened() -> None:
    """Closed reaches on_event for a plain HTTP request, a bad upgrade (400) and a client
    dropped at the handshake timeout, as for an open connection (asyncio's behaviour)."""
    events = Events()
    with serve(echo, config=QUIET, on_event=events, handshake_timeout=0.2) as server:
        assert http_exchange(server.port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").startswith(
            b"HTTP/1.1 426"
        )
        assert http_exchange(server.port, b"garbage\r\n\r\n").startswith(b"HTTP/1.1 400")
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as silent:
            assert silent.recv(1) == b""  # dropped at the handshake timeout
        with connect(f"ws://127.0.0.1:{server.port}/", config=QUIET) as conn:
            conn.send("x")
            assert conn.recv(timeout=SLACK) == "x"
        wait_until(lambda: len(events.of(Closed)) == 4)
        wait_until(lambda: not server._conns)
    closed = events.of(Closed)
    assert len({id(c) for c, _ in closed}) == 4  # one each
    opened = {id(c) for c, _ in events.of(Accepted)}
    assert len(opened) == 1
    never = [e for c, e in closed if id(c) not in opened]
    assert [e.code for e in never] == [1006, 1006, 1006]


@pytest.mark.parametrize("pick", ["raises", "not offered"])
def test_a_broken_select_subprotocol_gets_the_client_a_500(
    pick: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Through the core's ServerPolicy: a hook that raises, or picks a subprotocol the
    client did not offer, is a 500 (threading answered 500 before, asyncio accepted)."""

    def select(offered: Sequence[str]) -> str | None:
        if pick == "raises":
            raise RuntimeError("boom")
        return "never.offered"

    with serve(echo, config=QUIET, select_subprotocol=select) as server:
        with pytest.raises(HandshakeError) as info:
            connect(f"ws://127.0.0.1:{server.port}/", subprotocols=["chat"], open_timeout=SLACK)
        assert info.value.status == 500
        # without an offer the hook is not asked: the upgrade succeeds
        with connect(f"ws://127.0.0.1:{server.port}/", config=QUIET) as conn:
            assert conn.subprotocol is None
    assert "select_subprotocol" in caplog.text


def test_head_requests_get_the_headers_without_the_body() -> None:
    def pages(target: str) -> tuple[int, list[tuple[str, str]], bytes] | None:
        return (200, [("content-type", "text/plain")], b"healthy\n")

    with serve(echo, config=QUIET, http_handler=pages) as server:
        get = http_exchange(server.port, b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        head = http_exchange(server.port, b"HEAD /health HTTP/1.1\r\nHost: x\r\n\r\n")
    assert get.startswith(b"HTTP/1.1 200") and get.endswith(b"\r\n\r\nhealthy\n")
    assert head.startswith(b"HTTP/1.1 200") and head.endswith(b"\r\n\r\n")
    assert b"content-length: 8" in head.lower()


def test_an_upgrade_read_after_close_began_gets_503() -> None:
    """The I/O thread is held while the request arrives and close() begins; the request
    is read before the shutdown runs, so ServerPolicy refuses it: 503."""
    request = (
        b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    server = serve(echo, config=QUIET)
    held, go = threading.Event(), threading.Event()

    def hold() -> None:  # runs on the I/O thread
        held.set()
        go.wait(5)

    closer = threading.Thread(target=server.close, kwargs={"timeout": 2.0})
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        try:
            wait_until(lambda: server._conns)
            assert server._reactor.call_soon(hold)
            assert held.wait(5)
            sock.sendall(request)
            closer.start()
            wait_until(lambda: server.closing)
        finally:
            go.set()
        reply = b""
        while chunk := sock.recv(4096):
            reply += chunk
    closer.join(5)
    assert reply.startswith(b"HTTP/1.1 503"), reply


# -------------------------------------------------------------- the handshake


def test_a_server_that_never_answers_the_upgrade_is_a_timeout_error() -> None:
    """The core bounds the upgrade by open_timeout and aborts: connect() raises
    TimeoutError, and leaves no thread or socket behind (the no_leaks fixture)."""
    mute = socket.create_server(("127.0.0.1", 0))  # the kernel accepts; nobody answers
    try:
        started = time.monotonic()
        with pytest.raises(TimeoutError, match="open_timeout"):
            connect(f"ws://127.0.0.1:{mute.getsockname()[1]}/", open_timeout=0.3)
        took = time.monotonic() - started
        assert 0.25 < took < 0.3 + SLACK
    finally:
        mute.close()


def test_a_server_that_hangs_up_during_the_upgrade_is_a_handshake_error() -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(5)

    def hang_up() -> None:
        with listener.accept()[0] as sock:
            sock.recv(4096)  # the request, then EOF without an answer

    thread = threading.Thread(target=hang_up)
    thread.start()
    try:
        with pytest.raises(HandshakeError, match="closed during the opening handshake") as info:
            connect(f"ws://127.0.0.1:{listener.getsockname()[1]}/", open_timeout=SLACK)
        assert info.value.status is None
    finally:
        thread.join(5)
        listener.close()


# ---------------------------------------------------------------- validation


@pytest.mark.parametrize(
    "option",
    [
        {"handshake_timeout": 0},
        {"handshake_timeout": float("inf")},
        {"write_limit": 0},
        {"max_size": 0},
        {"select_subprotocol": "chat"},
        {"http_handler": 42},
        {"keepalive": "on"},
        {"config": {"interval": 1}},
    ],
    ids=repr,
)
def test_serve_raises_a_bad_option_before_listening(option: dict[str, Any]) -> None:
    port = free_port()
    with pytest.raises(ConfigError):
        serve(echo, port=port, **option)
    with pytest.raises(ConnectionRefusedError):  # nothing listens
        socket.create_connection(("127.0.0.1", port), timeout=5).close()


@pytest.mark.parametrize(
    "option",
    [{"open_timeout": -1}, {"write_limit": 1.5}, {"max_size": "big"}, {"keepalive": 1}],
    ids=repr,
)
def test_connect_raises_a_bad_option_before_connecting(option: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        connect(NOWHERE, **option)


@pytest.mark.parametrize(
    "uri", ["ws://127.0.0.1:99999/", "ws://127.0.0.1:0/", "ws:///nohost", "ws://h/#frag", 42]
)
def test_every_bad_uri_is_a_config_error(uri: Any) -> None:
    with pytest.raises(ConfigError):
        connect(uri)


# ------------------------------------------------------------------- fail()


def test_fail_sends_a_close_frame_and_releases_without_waiting_for_the_answer() -> None:
    """The raw peer never answers the close frame: fail() releases the socket at once
    (close() would wait close_timeout, 30 s here)."""
    config = HeartbeatConfig(interval=30.0, timeout=10.0, close_timeout=30.0)

    def failing(conn: Connection) -> None:
        conn.fail(4000, "bye")
        conn.wait_closed()

    with serve(failing, config=config) as server:
        sock, rest = open_websocket(server.port), b""
        try:
            buf = bytearray(rest)
            opcode, payload = read_frame(sock, buf)
            assert (opcode, payload) == (0x8, (4000).to_bytes(2, "big") + b"bye")
            with pytest.raises((ConnectionError, OSError)):
                read_frame(sock, buf)  # released without our close frame
        finally:
            sock.close()
        wait_until(lambda: not server._conns)


def test_fail_from_the_client_and_its_config() -> None:
    events = Events()
    with serve(echo, config=QUIET, on_event=events) as server:
        conn = connect(f"ws://127.0.0.1:{server.port}/", config=QUIET)
        assert conn.config == QUIET and conn.is_open
        conn.fail()
        conn.wait_closed()
        assert (conn.close_code, conn.close_reason, conn.closed_by) == (1011, "", "local")
        assert not conn.is_open
        with pytest.raises(ConnectionClosedError):
            conn.send("late")
        conn.close()  # harmless once closed
        ((_, closed),) = wait_until(lambda: events.of(Closed))
        assert (closed.code, closed.by) == (1011, "remote")


def test_a_close_frame_from_a_raw_peer_is_answered() -> None:
    with serve(echo, config=QUIET) as server:
        sock, rest = open_websocket(server.port), b""
        try:
            sock.sendall(frame(0x8, (1000).to_bytes(2, "big")))
            opcode, payload = read_frame(sock, bytearray(rest))
            assert (opcode, payload[:2]) == (0x8, (1000).to_bytes(2, "big"))
        finally:
            sock.close()
