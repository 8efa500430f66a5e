"""The contract both drivers keep: one test per shared behaviour, run against each.

Each behaviour here used to differ between heartbeat_asyncio and
heartbeat_threading, or did not work in one of them (commit d061d09): HEAD
answers, a raising ``select_subprotocol``, bad URIs, the order of ``on_event``,
``Closed`` for sockets that never opened, jitter, the opening-handshake deadline,
backpressure, the bound on closing after an HTTP answer, and configuration
checked before anything listens. ``serve(on_message=...)`` (no task or thread per
idle connection) behaves alike in both. asyncio runs on the standard loop and on uvloop
(whose transports are not subclasses of asyncio's).
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from heartbeat_core import (
    Accepted,
    Closed,
    CloseTransport,
    Closing,
    ConfigError,
    HandshakeError,
    HeartbeatConfig,
    Request,
    RttSample,
)
from tests.adapters.drivers import DRIVERS, ECHO, Driver, OnMessage, make_driver
from tests.support.frames import PING, PONG, frame, take_frame, upgrade_request
from tests.support.waiting import wait_until

QUIET = HeartbeatConfig(interval=30, timeout=10, close_timeout=0.5)
UPGRADE = (
    b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
)


@pytest.fixture(params=DRIVERS)
def driver(request: pytest.FixtureRequest) -> Iterator[Driver]:
    with make_driver(request.param) as made:
        yield made


def wait_for(predicate: Any, timeout: float = 10.0) -> None:
    end = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > end:
            raise AssertionError("condition not met within the bound")
        time.sleep(0.01)


def exchange(port: int, request: bytes, *, read: bool = True) -> bytes:
    """Send raw bytes to the server; everything it answers until it closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        chunks = []
        while read:
            chunk = sock.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks)


def test_head_answers_carry_no_body(driver: Driver) -> None:
    server = driver.serve(config=QUIET, http_handler=lambda target: (200, [], b"hello-body"))
    try:
        head = exchange(server.port, b"HEAD /health HTTP/1.1\r\nHost: h\r\n\r\n")
        get = exchange(server.port, b"GET /health HTTP/1.1\r\nHost: h\r\n\r\n")
    finally:
        server.close()
    assert head.startswith(b"HTTP/1.1 200 ") and b"content-length: 10\r\n" in head
    assert head.endswith(b"\r\n\r\n")  # no body
    assert get.endswith(b"\r\n\r\nhello-body")


def test_plain_http_without_a_handler_gets_426(driver: Driver) -> None:
    server = driver.serve(config=QUIET)
    try:
        answer = exchange(server.port, b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
    finally:
        server.close()
    assert answer.startswith(b"HTTP/1.1 426 ")
    assert b"Upgrade: websocket" in answer and b"Sec-WebSocket-Version: 13" in answer


def test_a_raising_subprotocol_selection_answers_500(driver: Driver) -> None:
    def select(offered: Any) -> str:
        raise RuntimeError("boom")

    server = driver.serve(config=QUIET, select_subprotocol=select)
    try:
        with pytest.raises(HandshakeError) as caught:
            driver.connect(server.uri, config=QUIET, subprotocols=["chat"])
        assert caught.value.status == 500
        # Without an offer there is nothing to select: the upgrade goes through.
        client = driver.connect(server.uri, config=QUIET)
        client.send("ok")
        assert client.recv() == "ok"
        client.close()
    finally:
        server.close()


@pytest.mark.parametrize(
    "uri",
    ["ws://127.0.0.1:99999/", "http://127.0.0.1/", "ws:///path", "ws://h:port/", "ws://h/#frag"],
)
def test_every_bad_uri_is_a_config_error(driver: Driver, uri: str) -> None:
    with pytest.raises(ConfigError):
        driver.connect(uri, config=QUIET)


def test_on_event_sees_each_event_once_handled_in_order(driver: Driver) -> None:
    server = driver.serve(config=QUIET)
    try:
        client = driver.connect(server.uri, config=QUIET)
        client.send("hi")
        assert client.recv() == "hi"
        client.close(1000, "bye")
        wait_for(lambda: "Closed" in server.events.names())
    finally:
        server.close()
    (conn,) = {c for c, _, _ in server.events.calls}
    names = server.events.names(conn)
    assert names[:2] == ["Request", "Accepted"]  # the answer follows the request
    assert names[-3:] == ["Closing", "CloseTransport", "Closed"]
    for _, event, code_then in server.events.calls:
        if isinstance(event, (Closing, CloseTransport, Closed)):
            assert code_then == 1000  # already carried out when on_event saw it
        if isinstance(event, (Request, Accepted)):
            assert code_then is None


def test_closed_is_reported_for_sockets_that_never_opened(driver: Driver) -> None:
    server = driver.serve(config=QUIET)
    try:
        exchange(server.port, b"NONSENSE\r\n\r\n")
        wait_for(lambda: "Closed" in server.events.names())
    finally:
        server.close()
    assert server.events.names() == ["CloseTransport", "Closed"]
    (_, closed, _) = server.events.calls[-1]
    assert isinstance(closed, Closed) and closed.code == 1006


def test_jitter_works(driver: Driver) -> None:
    # d061d09: asyncio's serve() dropped every connection, connect() raised.
    config = HeartbeatConfig(interval=0.2, timeout=1.0, jitter=0.25)
    server = driver.serve(config=config)
    try:
        client = driver.connect(server.uri, config=config)

        def answered() -> int:  # (whichever side's heartbeat comes first keeps the other quiet)
            samples = sum(isinstance(e, RttSample) for _, e, _ in server.events.calls)
            return samples + client.conn.stats.pongs_received

        wait_for(lambda: answered() >= 3)
        client.send("still here")
        assert client.recv() == "still here"
        client.close()
    finally:
        server.close()


def test_loopback_rtts_are_measured_finer_than_a_millisecond(driver: Driver) -> None:
    # uvloop's loop.time() is libuv's millisecond clock, read once per loop iteration:
    # with it as the clock every loopback RTT came out 0.0 (or exactly 1 ms).
    config = HeartbeatConfig(interval=0.05, timeout=1.0)
    server = driver.serve(config=config)
    try:
        client = driver.connect(server.uri, config=QUIET)
        samples = lambda: [e.rtt for _, e, _ in server.events.calls if isinstance(e, RttSample)]  # noqa: E731
        wait_for(lambda: len(samples()) >= 5)
        rtts = samples()
        assert all(rtt > 0 for rtt in rtts), rtts
        assert any(rtt % 0.001 > 1e-6 for rtt in rtts), rtts  # not whole milliseconds
        client.close()
    finally:
        server.close()


@pytest.mark.parametrize("record", [True, False], ids=["on_event", "no-on_event"])
def test_a_ping_read_with_a_pong_is_answered_at_once(driver: Driver, record: bool) -> None:
    # One read holding the answer to the server's heartbeat and a ping of the peer's own
    # (two timers firing together, say): the pong for that ping is written at once, not
    # left queued until the server's next timer, with or without an on_event to tell.
    server = driver.serve(config=HeartbeatConfig(interval=1.0, timeout=5.0), record=record)
    try:
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
            sock.sendall(upgrade_request())
            got = bytearray()
            while b"\r\n\r\n" not in got:
                got += sock.recv(4096)
            del got[: got.index(b"\r\n\r\n") + 4]
            heartbeat = None
            while heartbeat is None:  # the server's first heartbeat, an interval after opening
                heartbeat = take_frame(got)
                if heartbeat is None:
                    got += sock.recv(4096)
            assert heartbeat.opcode == PING
            sock.sendall(frame(PONG, heartbeat.payload) + frame(PING, b"mine"))
            sent = time.monotonic()
            sock.settimeout(0.5)  # half an interval: a timer's flush comes later than that
            answer = None
            while answer is None:
                answer = take_frame(got)
                if answer is None:
                    got += sock.recv(4096)
            assert (answer.opcode, answer.payload) == (PONG, b"mine")
            assert time.monotonic() - sent < 0.5
    finally:
        server.close()


def test_a_silent_client_is_dropped_at_the_handshake_timeout(driver: Driver) -> None:
    server = driver.serve(config=QUIET, handshake_timeout=0.3)
    try:
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
            sock.sendall(UPGRADE)  # never the blank line that ends the request
            started = time.monotonic()
            assert sock.recv(100) == b""  # dropped
            waited = time.monotonic() - started
        wait_for(lambda: "Closed" in server.events.names())
    finally:
        server.close()
    assert 0.25 <= waited < 3.0
    assert server.events.names() == ["Abort", "Closed"]


def test_closing_after_an_http_answer_is_bounded(driver: Driver) -> None:
    # A peer that asks for a large answer and never reads it cannot hold the socket:
    # the release is bounded by close_timeout (d061d09: unbounded in both drivers).
    big = b"x" * (64 << 20)
    server = driver.serve(config=QUIET, http_handler=lambda target: (200, [], big))
    try:
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.sendall(b"GET /big HTTP/1.1\r\nHost: h\r\n\r\n")
            started = time.monotonic()
            wait_for(lambda: "Closed" in server.events.names(), timeout=5.0)
            waited = time.monotonic() - started
    finally:
        server.close()
    assert waited < 3.0
    assert server.events.names() == ["HttpRequest", "CloseTransport", "Abort", "Closed"]


def test_backpressure_pauses_reading_and_resumes(driver: Driver) -> None:
    # The client does not read: once max_queue messages wait, it stops reading its
    # socket (and tells the core, which declares nobody dead meanwhile); taking them
    # resumes reading. The server echoes what the client sends.
    server = driver.serve(config=QUIET)
    try:
        client = driver.connect(server.uri, config=QUIET, max_queue=4)
        paused = lambda: driver.call(lambda: client.conn.core.reading_paused)  # noqa: E731
        for i in range(40):
            client.send(f"{i:04d}" * 1000)
        wait_for(paused)
        assert driver.call(lambda: client.conn.queue.paused)
        for i in range(40):
            assert client.recv() == f"{i:04d}" * 1000
        wait_for(lambda: not paused())  # (threading resumes on its I/O thread)
        client.close()
    finally:
        server.close()


# ------------------------------------------------------------- on_message

#: Text and binary, small and larger: order and type must survive.
MESSAGES: list[str | bytes] = [
    f"text {i:03d} ".ljust(10 + 97 * i, "t") if i % 2 == 0 else f"bin {i:03d} ".encode() * i
    for i in range(60)
]


def errors(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [record for record in caplog.records if record.levelno >= logging.ERROR]


def test_on_message_gets_each_connections_messages_in_order_one_at_a_time(
    driver: Driver, caplog: pytest.LogCaptureFixture
) -> None:
    gate = threading.Event()  # held while the messages are sent: they wait in the queue
    spec = OnMessage(gate=gate)  # an echo
    server = driver.serve(config=QUIET, on_message=spec)
    try:
        clients = [driver.connect(server.uri, config=QUIET) for _ in range(3)]
        for message in MESSAGES:
            for client in clients:
                client.send(message)
        gate.set()
        for client in clients:
            assert [client.recv() for _ in MESSAGES] == MESSAGES
        for client in clients:
            client.close()
    finally:
        gate.set()
        server.close()
    assert len(spec.seen) == 3 and all(seen == MESSAGES for seen in spec.seen.values())
    assert spec.overlaps == 0
    assert errors(caplog) == []


def test_a_raising_on_message_closes_with_1011_and_gets_nothing_more(
    driver: Driver, caplog: pytest.LogCaptureFixture
) -> None:
    def reply(message: str | bytes) -> str | bytes:
        if message == "boom":
            raise ValueError("boom")
        return message

    gate = threading.Event()  # (held until all three are sent: the close comes after)
    spec = OnMessage(reply=reply, gate=gate)
    server = driver.serve(config=QUIET, on_message=spec)
    try:
        client = driver.connect(server.uri, config=QUIET)
        for message in ["first?q=secret", "boom", "after"]:
            client.send(message)
        gate.set()
        assert client.recv() == "first?q=secret"
        client.wait_closed()
        assert (client.conn.close_code, client.conn.close_reason) == (1011, "internal error")
        assert client.conn.closed_by == "remote"
    finally:
        gate.set()
        server.close()
    assert spec.messages() == ["first?q=secret", "boom"]  # nothing after the failure
    (record,) = errors(caplog)
    assert record.name == (
        "heartbeat_threading" if driver.name == "threading" else "heartbeat_asyncio"
    )
    assert record.exc_info is not None and record.exc_info[0] is ValueError
    text = record.getMessage()
    assert "on_message" in text and "1011" in text
    assert "secret" not in text and "first" not in text  # no message content in the log


@pytest.mark.parametrize(
    ("application", "match"),
    [
        ({"handler": None}, "exactly one"),
        ({"handler": ECHO, "on_message": OnMessage()}, "exactly one"),
        ({"on_message": 42}, "on_message must be a callable .*got 42"),
        ({"handler": "echo"}, "handler must be a callable .*got 'echo'"),
    ],
    ids=["neither", "both", "on_message not callable", "handler not callable"],
)
def test_serve_needs_exactly_one_callable_handler_or_on_message(
    driver: Driver, application: dict[str, Any], match: str
) -> None:
    with pytest.raises(ConfigError, match=match) as caught:
        driver.serve(config=QUIET, **application)
    if match == "exactly one":  # the message says what to pass
        assert "pass handler for" in str(caught.value) and "on_message for" in str(caught.value)


def test_on_message_gets_the_messages_queued_before_the_peer_closed(
    driver: Driver, caplog: pytest.LogCaptureFixture
) -> None:
    """Nothing received is lost: the peer closes while nine messages wait behind a
    slow on_message; all ten are delivered, in order. (Their echoes fail: the
    ConnectionClosedError raised by send() in on_message is ignored.)"""
    gate = threading.Event()
    spec = OnMessage(gate=gate)
    server = driver.serve(config=QUIET, on_message=spec)
    try:
        client = driver.connect(server.uri, config=QUIET)
        for message in MESSAGES[:10]:
            client.send(message)
        wait_until(lambda: spec.messages() == MESSAGES[:1], what="the first message")
        (conn,) = driver.call(lambda: list(server.server.connections))
        wait_until(lambda: driver.call(lambda: len(conn.queue)) == 9, what="9 waiting")
        client.close()
        wait_until(lambda: "Closed" in server.events.names(), what="the server's Closed")
        gate.set()
        wait_until(lambda: len(spec.messages()) == 10, what="10 messages delivered")
    finally:
        gate.set()
        server.close()
    assert spec.messages() == MESSAGES[:10]
    assert (conn.close_code, conn.closed_by) == (1000, "remote")
    assert errors(caplog) == []


@pytest.mark.parametrize(
    "options",
    [
        {"max_queue": 0},
        {"max_queue_bytes": -1},
        {"max_size": 0},
        {"handshake_timeout": 0},
        {"config": {"interval": 1}},
        {"select_subprotocol": "chat"},
        {"http_handler": 42},
        {"reuse_port": "yes"},
    ],
)
def test_a_bad_option_is_raised_by_serve_before_anything_listens(
    driver: Driver, options: dict[str, Any]
) -> None:
    with pytest.raises(ConfigError):
        driver.serve(**options)


def test_a_bad_option_is_raised_by_connect_before_connecting(driver: Driver) -> None:
    # A port nobody listens on: an attempt would be refused, not a ConfigError.
    with pytest.raises(ConfigError, match="max_queue"):
        driver.connect("ws://127.0.0.1:9/", max_queue=0)
    with pytest.raises(ConfigError, match="open_timeout"):
        driver.connect("ws://127.0.0.1:9/", open_timeout=-1)


def test_a_server_that_never_answers_the_upgrade_times_out(driver: Driver) -> None:
    # The core bounds the client's opening handshake (rule open-timeout): TimeoutError.
    with socket.create_server(("127.0.0.1", 0)) as silent:  # listens, never answers
        port = silent.getsockname()[1]
        started = time.monotonic()
        with pytest.raises(TimeoutError, match="open_timeout"):
            driver.connect(f"ws://127.0.0.1:{port}/", config=QUIET, open_timeout=0.3)
        waited = time.monotonic() - started
    assert 0.25 <= waited < 3.0


def test_process_request_sees_every_request_first_and_may_refuse_it(driver: Driver) -> None:
    """Issue 18: a hook with the request's headers (the dashboard checks Origin and Host)."""
    seen: list[str] = []

    def check(request: Any) -> Any:
        seen.append(type(request).__name__)
        headers = dict(getattr(request, "extra_headers", None) or request.headers)
        if headers.get(b"origin") == b"http://evil.example":
            return 403, [], b"Forbidden\n"
        return None

    server = driver.serve(
        config=QUIET, process_request=check, http_handler=lambda target: (200, [], b"ok")
    )
    try:
        refused = exchange(server.port, UPGRADE + b"Origin: http://evil.example\r\n\r\n")
        plain = exchange(server.port, b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
        client = driver.connect(server.uri, config=QUIET)
        client.send("through")
        assert client.recv() == "through"
        client.close()
    finally:
        server.close()
    assert refused.startswith(b"HTTP/1.1 403 ") and refused.endswith(b"Forbidden\n")
    assert plain.startswith(b"HTTP/1.1 200 ") and plain.endswith(b"ok")
    assert seen == ["Request", "HttpRequest", "Request"]


def test_reuse_port_lets_servers_share_a_port_and_spreads_connections(driver: Driver) -> None:
    """Issue 15: ``serve(reuse_port=True)`` (SO_REUSEPORT) under ``heartbeat serve --workers``."""
    first = driver.serve(config=QUIET, reuse_port=True)
    try:
        # Without reuse_port, the port is taken; with it, a second server shares it.
        with pytest.raises(OSError):
            driver.serve(config=QUIET, port=first.port).close()
        second = driver.serve(config=QUIET, port=first.port, reuse_port=True)
        try:
            for handle in (first, second):
                sock = handle.server.sockets[0]
                assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT) != 0
            # The kernel spreads connections by their addresses: both get some soon.
            for _ in range(200):
                if all("Accepted" in h.events.names() for h in (first, second)):
                    break
                client = driver.connect(first.uri, config=QUIET)
                client.send("x")
                assert client.recv() == "x"
                client.close()
            accepted = [h.events.names().count("Accepted") for h in (first, second)]
            assert all(accepted), accepted
        finally:
            second.close()
    finally:
        first.close()


def test_reuse_port_without_so_reuseport_is_a_config_error(
    driver: Driver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delattr(socket, "SO_REUSEPORT", raising=False)
    with pytest.raises(ConfigError, match="SO_REUSEPORT"):
        driver.serve(config=QUIET, reuse_port=True)
