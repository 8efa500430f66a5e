"""heartbeat_threading against itself and raw sockets, on 127.0.0.1 with short intervals."""

from __future__ import annotations

import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator

import pytest
import trustme
from heartbeat_threading import Connection, Server, connect, serve

from heartbeat_core import (
    Closed,
    ConnectionEvent,
    HeartbeatConfig,
    HeartbeatStyle,
    PeerDead,
    RttSample,
    TcpKeepalive,
)
from heartbeat_core.errors import ConfigError, ConnectionClosedError, HandshakeError
from tests.support.peers import FrozenServer, open_websocket
from tests.support.waiting import wait_until

from .helpers import SLACK, read_frame

FAST = HeartbeatConfig(interval=0.05, timeout=0.5, close_timeout=1.0)
QUIET = HeartbeatConfig(interval=30.0, timeout=10.0, close_timeout=1.0)


def echo(conn: Connection) -> None:
    try:
        for message in conn:
            conn.send(message)
    except ConnectionClosedError:
        pass


@pytest.fixture
def echo_server() -> Iterator[Server]:
    with serve(echo, config=FAST) as server:
        yield server


class Samples:
    """on_event recorder: counts RTT samples per connection side."""

    def __init__(self) -> None:
        self.events: list[ConnectionEvent] = []
        self.lock = threading.Lock()

    def __call__(self, conn: Connection, event: ConnectionEvent) -> None:
        with self.lock:
            self.events.append(event)

    def count(self, kind: type) -> int:
        with self.lock:
            return sum(isinstance(e, kind) for e in self.events)


@pytest.mark.parametrize("style", [HeartbeatStyle.PROTOCOL, HeartbeatStyle.APP])
def test_echo_and_heartbeats_both_styles_both_roles(style: HeartbeatStyle) -> None:
    config = HeartbeatConfig(interval=0.05, timeout=0.5, close_timeout=1.0, style=style)
    server_events, client_events = Samples(), Samples()
    with serve(echo, config=config, on_event=server_events) as server:
        uri = f"ws://127.0.0.1:{server.port}/echo"
        with connect(uri, config=config, on_event=client_events) as conn:
            conn.send("hello")
            assert conn.recv(timeout=SLACK) == "hello"
            conn.send(b"\x00\x01binary")
            assert conn.recv(timeout=SLACK) == b"\x00\x01binary"
            wait_until(lambda: client_events.count(RttSample) >= 3)
            wait_until(lambda: server_events.count(RttSample) >= 3)
            assert conn.stats.pongs_received >= 3
            assert conn.latency is not None and 0 < conn.latency < SLACK
            (server_conn,) = server.connections
            assert server_conn.stats.pongs_received >= 3
            assert server_conn.stats.misses == 0
            # heartbeats (frames or JSON messages) never reach the application
            with pytest.raises(TimeoutError):
                conn.recv(timeout=0.2)
            assert conn.close_code is None and conn.is_open
        assert conn.close_code == 1000 and conn.closed_by == "local"
    assert server_events.count(Closed) == 1


def test_ping_reports_rtt_and_stats(echo_server: Server) -> None:
    with connect(f"ws://127.0.0.1:{echo_server.port}/", config=QUIET) as conn:
        rtts = [conn.ping(timeout=SLACK) for _ in range(5)]
        assert all(0 < rtt < SLACK for rtt in rtts)
        assert conn.remote_address == ("127.0.0.1", echo_server.port)
        # the server heartbeats us; our QUIET side has sent none of its own
        wait_until(lambda: conn.stats.peer_pings >= 2)
        assert conn.stats.pings_sent == 0
    print(f"FIGURE threading ping() RTT on loopback: median {sorted(rtts)[2] * 1e3:.3f} ms")
    with pytest.raises(ConnectionClosedError):
        conn.ping()
    with pytest.raises(ConnectionClosedError):
        conn.send("late")


def test_tls_with_self_signed_certificate() -> None:
    ca = trustme.CA()
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_ctx)
    client_ctx = ssl.create_default_context()
    ca.configure_trust(client_ctx)
    with serve(echo, config=FAST, ssl=server_ctx) as server:
        uri = f"wss://127.0.0.1:{server.port}/"
        with connect(uri, config=FAST, ssl=client_ctx) as conn:
            big = b"x" * 300_000  # several TLS records in both directions
            conn.send(big)
            assert conn.recv(timeout=SLACK) == big
            assert 0 < conn.ping(timeout=SLACK) < SLACK
            wait_until(lambda: conn.stats.pongs_received >= 2)
        assert conn.close_code == 1000
        # an untrusted certificate fails the TLS handshake with ssl.SSLError
        with pytest.raises(ssl.SSLError):
            connect(uri, config=FAST, ssl=ssl.create_default_context(), open_timeout=SLACK)
        wait_until(lambda: not server._conns)


def test_subprotocol_negotiation() -> None:
    def pick(offered: object) -> str | None:
        return "chat.v1" if "chat.v1" in offered else None  # type: ignore[operator]

    with serve(echo, config=FAST, select_subprotocol=pick) as server:
        uri = f"ws://127.0.0.1:{server.port}/"
        with connect(uri, config=FAST, subprotocols=["chat.v2", "chat.v1"]) as conn:
            assert conn.subprotocol == "chat.v1"
            (server_conn,) = server.connections
            assert server_conn.subprotocol == "chat.v1"
        with connect(uri, config=FAST, extra_headers=[("X-Test", "1")]) as conn:
            assert conn.subprotocol is None


def test_max_size_closes_with_1009() -> None:
    with (
        serve(echo, config=FAST, max_size=1000) as server,
        connect(f"ws://127.0.0.1:{server.port}/", config=FAST) as conn,
    ):
        conn.send(b"a" * 1000)
        assert conn.recv(timeout=SLACK) == b"a" * 1000
        conn.send(b"a" * 2000)
        assert list(conn) == []  # the iterator ends quietly at the close
        assert conn.close_code == 1009 and conn.closed_by == "remote"


def test_handler_return_closes_with_1000() -> None:
    with serve(lambda conn: None, config=FAST) as server:
        conn = connect(f"ws://127.0.0.1:{server.port}/", config=FAST)
        with pytest.raises(ConnectionClosedError) as info:
            conn.recv(timeout=SLACK)
        assert info.value.code == 1000
        assert conn.close_code == 1000 and conn.closed_by == "remote"
        conn.wait_closed()


def test_handler_exception_closes_with_1011(caplog: pytest.LogCaptureFixture) -> None:
    def broken(conn: Connection) -> None:
        raise RuntimeError("boom")

    with (
        serve(broken, config=FAST) as server,
        connect(f"ws://127.0.0.1:{server.port}/", config=FAST) as conn,
    ):
        assert list(conn) == []
        assert conn.close_code == 1011
    assert "handler failed" in caplog.text


def test_graceful_shutdown_closes_everyone_with_1001() -> None:
    server = serve(echo, config=FAST)
    runner = threading.Thread(target=server.serve_forever)
    runner.start()
    clients = [connect(f"ws://127.0.0.1:{server.port}/", config=FAST) for _ in range(3)]
    wait_until(lambda: len(server.connections) == 3)
    started = time.monotonic()
    server.close(timeout=2.0)
    took = time.monotonic() - started
    runner.join(SLACK)
    assert not runner.is_alive()
    for conn in clients:
        conn.wait_closed()
        assert (conn.close_code, conn.close_reason, conn.closed_by) == (
            1001,
            "going away",
            "remote",
        )
    assert took < 2.0
    assert not server.connections
    with pytest.raises(OSError):
        connect(f"ws://127.0.0.1:{server.port}/", config=FAST, open_timeout=SLACK)
    print(f"FIGURE threading graceful close of 3 connections: {took * 1e3:.1f} ms")


def test_shutdown_aborts_a_peer_that_never_answers_the_close() -> None:
    server = serve(echo, config=HeartbeatConfig(interval=30, timeout=10, close_timeout=30))
    sock = open_websocket(server.port)  # never reads, never answers the close frame
    try:
        wait_until(lambda: len(server.connections) == 1)
        started = time.monotonic()
        server.close(timeout=0.3)
        took = time.monotonic() - started
        assert 0.25 < took < 0.3 + SLACK
        buf = bytearray()
        opcode, payload = read_frame(sock, buf)
        assert opcode == 0x8 and payload[:2] == (1001).to_bytes(2, "big")
        with pytest.raises((ConnectionError, OSError)):
            read_frame(sock, buf)
    finally:
        sock.close()


@pytest.mark.parametrize("style", [HeartbeatStyle.PROTOCOL, HeartbeatStyle.APP])
def test_heartbeats_run_while_nobody_reads(style: HeartbeatStyle) -> None:
    config = HeartbeatConfig(interval=0.05, timeout=0.5, close_timeout=1.0, style=style)
    release = threading.Event()

    def idle(conn: Connection) -> None:
        release.wait(10)  # the handler never calls recv()

    with (
        serve(idle, config=config) as server,
        connect(f"ws://127.0.0.1:{server.port}/", config=config) as conn,
    ):
        conn.send("unread")  # sits in the server's queue all along
        wait_until(lambda: conn.stats.pongs_received >= 8)
        (server_conn,) = server.connections
        wait_until(lambda: server_conn.stats.pongs_received >= 8)
        assert conn.is_open and server_conn.is_open
        assert conn.stats.misses == 0 and server_conn.stats.misses == 0
        release.set()


def test_plain_http_gets_426_or_the_http_handler() -> None:
    def pages(target: str) -> tuple[int, list[tuple[str, str]], bytes] | None:
        return (200, [("content-type", "text/plain")], b"ok\n") if target == "/health" else None

    with serve(echo, config=FAST, http_handler=pages) as server:
        for target, status in (("/health", b"200"), ("/other", b"426")):
            with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
                sock.sendall(b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % target.encode())
                reply = b""
                while chunk := sock.recv(4096):
                    reply += chunk
            assert reply.split(b" ")[1] == status
        assert reply.startswith(b"HTTP/1.1 426")


def test_non_101_answer_raises_handshake_error(
    heartbeat_frozen_server: Callable[..., FrozenServer],
) -> None:
    raw = heartbeat_frozen_server(status=403)  # (the public fixture; closed by pytest)
    with pytest.raises(HandshakeError) as info:
        connect(raw.url(), open_timeout=SLACK)
    assert info.value.status == 403


def test_refused_and_bad_uri() -> None:
    probe = socket.create_server(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    with pytest.raises(ConnectionRefusedError):
        connect(f"ws://127.0.0.1:{port}/")
    with pytest.raises(ConfigError, match=r"use ws:// instead of http://"):
        connect("http://127.0.0.1/")
    with pytest.raises(ConfigError, match="bad port '99999'"):  # (a ValueError, as before)
        connect("ws://127.0.0.1:99999/")


def test_tcp_keepalive_is_applied_on_both_sides() -> None:
    keepalive = TcpKeepalive(idle=7, interval=3, count=4, user_timeout=5.0)
    with (
        serve(echo, config=FAST, keepalive=keepalive) as server,
        connect(f"ws://127.0.0.1:{server.port}/", config=FAST, keepalive=keepalive) as conn,
    ):
        (server_conn,) = wait_until(lambda: server.connections)
        for sock in (conn._transport.sock, server_conn._transport.sock):
            assert sock is not None
            assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE) == 7
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT) == 4


def test_send_blocks_at_the_write_limit() -> None:
    raw = FrozenServer()  # accepts, then never reads: our writes pile up
    try:
        conn = connect(f"ws://127.0.0.1:{raw.port}/", config=QUIET, write_limit=64 * 1024)
        sent = []

        def writer() -> None:
            try:
                for _ in range(400):
                    conn.send(b"z" * 65536)
                    sent.append(1)
            except ConnectionClosedError:
                pass

        thread = threading.Thread(target=writer)
        thread.start()
        # the kernel buffers absorb a few MB, then send() must block
        deadline, last = time.monotonic() + 10, -1
        while not (len(sent) == last and conn._wlen >= 64 * 1024):
            assert time.monotonic() < deadline, "send() never blocked"
            last = len(sent)
            time.sleep(0.3)  # progress check: no send() completed in this window
        assert thread.is_alive() and len(sent) < 400
        assert conn._wlen < 64 * 1024 + 2 * 65536 + 16
        conn.close(1000)  # unblocks the writer: the connection is closing
        thread.join(SLACK)
        assert not thread.is_alive()
        assert conn.close_code in (1000, 1006)
    finally:
        raw.close()


def test_inbound_queue_is_bounded_and_in_order() -> None:
    chunk = 100_000

    def burst(conn: Connection) -> None:
        for i in range(60):
            conn.send(b"%d " % i + b"m" * chunk)
        conn.recv()

    # QUIET: a reader that stops consuming stops reading the socket, heartbeats included
    with (
        serve(burst, config=QUIET) as server,
        connect(f"ws://127.0.0.1:{server.port}/", config=QUIET, max_queue=4) as conn,
    ):
        wait_until(lambda: conn.queue.paused)
        window = time.monotonic() + 0.2
        while time.monotonic() < window:  # observe: the queue does not grow while paused
            assert len(conn.queue) <= 4 + 3  # at most one read's worth past the limit
            time.sleep(0.01)
        got = [conn.recv(timeout=SLACK) for _ in range(60)]
        assert [m.split(b" ")[0] for m in got] == [b"%d" % i for i in range(60)]
        assert conn.is_open and conn.stats.misses == 0


def test_a_silent_tcp_client_is_dropped_at_the_handshake_timeout() -> None:
    with (
        serve(echo, config=FAST, handshake_timeout=0.2) as server,
        socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock,
    ):
        started = time.monotonic()
        assert sock.recv(1) == b""  # the server hung up without a word
        assert 0.15 < time.monotonic() - started < 0.2 + SLACK
        wait_until(lambda: not server._conns)  # released just after the socket closed


def test_handler_may_close_the_server_and_ping_timeout_is_forgotten() -> None:
    done = threading.Event()

    def stopper(conn: Connection) -> None:
        conn.recv(timeout=5)
        server.close(timeout=1.0)  # from a handler thread: must not join itself
        done.set()

    server = serve(stopper, config=FAST)
    with connect(f"ws://127.0.0.1:{server.port}/", config=FAST) as conn:
        conn.send("stop")
        assert done.wait(5)
        assert list(conn) == [] and conn.close_code == 1001
    server.wait_closed()
    raw = FrozenServer()  # never answers pings
    try:
        with connect(f"ws://127.0.0.1:{raw.port}/", config=QUIET) as conn:
            with pytest.raises(TimeoutError):
                conn.ping(timeout=0.1)
            wait_until(lambda: not conn._pings)
    finally:
        raw.close()


def test_a_reader_paused_by_backpressure_never_declares_its_peer_dead() -> None:
    """Rule paused-reading: the client stops reading at max_queue, so the server's
    pongs cannot be read; its heartbeat (timeout 0.2 s) gives no verdict while paused,
    and after the application drains the queue the heartbeat carries on."""
    fast = HeartbeatConfig(interval=0.05, timeout=0.2, close_timeout=1.0)
    events = Samples()

    def burst(conn: Connection) -> None:
        for i in range(40):
            conn.send(f"m{i}")
        conn.wait_closed()

    # The server never heartbeats (QUIET): only the paused side's own rule is tested.
    with (
        serve(burst, config=QUIET) as server,
        connect(
            f"ws://127.0.0.1:{server.port}/", config=fast, max_queue=8, on_event=events
        ) as conn,
    ):
        wait_until(lambda: conn.core.reading_paused)  # (the I/O thread tells the core last)
        assert conn.queue.paused
        sent = conn.stats.pings_sent
        window = time.monotonic() + 1.0  # 4 x (interval + timeout) without reading
        while time.monotonic() < window:  # observe: no verdict comes
            assert conn.is_open and conn.stats.misses == 0
            time.sleep(0.01)
        assert conn.stats.pings_sent <= sent + 1  # one outstanding heartbeat at most
        assert [conn.recv(timeout=SLACK) for _ in range(40)] == [f"m{i}" for i in range(40)]
        wait_until(lambda: not conn.core.reading_paused)  # resumed by the I/O thread
        answered = conn.stats.pongs_received
        wait_until(lambda: conn.stats.pongs_received >= answered + 3)
        assert conn.is_open and conn.stats.misses == 0
    assert events.count(PeerDead) == 0


def test_closing_while_paused_reads_the_peers_close_frame() -> None:
    """A close started while reading is paused resumes reading (no more messages are
    delivered), so the peer's close frame is read at once instead of waiting for
    close_timeout (3 s here) and aborting."""
    config = HeartbeatConfig(interval=30.0, timeout=10.0, close_timeout=3.0)

    def burst(conn: Connection) -> None:
        for i in range(20):
            conn.send(f"m{i}")
        conn.wait_closed()

    with serve(burst, config=config) as server:
        conn = connect(f"ws://127.0.0.1:{server.port}/", config=config, max_queue=4)
        wait_until(lambda: conn.queue.paused)
        started = time.monotonic()
        conn.close()
        took = time.monotonic() - started
        assert conn.close_code == 1000 and conn.closed_by == "local"
        assert took < 1.5, f"the close took {took:.2f} s: the peer's close frame was not read"
