"""Faults from issue 3 against heartbeat_threading: half-open peers, frozen servers, our own
I/O thread stalling, a slow 20 MB message, and a server restart under connect_forever."""

from __future__ import annotations

import hashlib
import threading
import time
from typing import Any

import pytest
from heartbeat_threading import (
    Connected,
    Connection,
    Disconnected,
    Retrying,
    connect,
    connect_forever,
    serve,
)

from heartbeat_core import (
    HEARTBEAT_TIMEOUT_REASON,
    BackoffPolicy,
    Closed,
    ConfigError,
    HeartbeatConfig,
    HeartbeatPhase,
    PeerDead,
)
from heartbeat_core.errors import ConnectionClosedError
from tests.support.frames import ZERO_MASK, close_frame, frame
from tests.support.peers import FrozenServer, open_websocket
from tests.support.waiting import wait_until

from .helpers import SLACK, read_frame

INTERVAL, TIMEOUT = 0.1, 0.2
DETECT = HeartbeatConfig(interval=INTERVAL, timeout=TIMEOUT, close_timeout=1.0)


def echo(conn: Connection) -> None:
    try:
        for message in conn:
            conn.send(message)
    except ConnectionClosedError:
        pass


class Recorder:
    def __init__(self) -> None:
        self.items: list[tuple[float, Any]] = []
        self.lock = threading.Lock()

    def __call__(self, *args: Any) -> None:
        with self.lock:
            self.items.append((time.monotonic(), args[-1]))

    def first(self, kind: type) -> tuple[float, Any] | None:
        with self.lock:
            return next(((t, e) for t, e in self.items if isinstance(e, kind)), None)

    def kinds(self) -> list[type]:
        with self.lock:
            return [type(e) for _, e in self.items]


def test_server_frees_a_half_open_peer() -> None:
    events = Recorder()
    with serve(echo, config=DETECT, on_event=events) as server:
        sock = open_websocket(server.port)  # handshakes, then never reads or answers
        try:
            opened = time.monotonic()
            closed_at, closed = wait_until(lambda: events.first(Closed), timeout=5)
            took = closed_at - opened
            assert (closed.code, closed.reason) == (1011, HEARTBEAT_TIMEOUT_REASON)
            assert events.first(PeerDead) is not None
            # interval + timeout, plus slack; the socket is released with the close frame
            assert INTERVAL + TIMEOUT - 0.1 < took < INTERVAL + TIMEOUT + SLACK
            wait_until(lambda: not server._conns)
        finally:
            sock.close()
    print(
        f"FIGURE threading server frees a half-open peer in {took * 1e3:.0f} ms "
        f"(interval {INTERVAL}s + timeout {TIMEOUT}s)"
    )


def test_client_detects_a_frozen_server() -> None:
    raw = FrozenServer()  # answers the upgrade, then freezes
    try:
        opened = time.monotonic()
        conn = connect(f"ws://127.0.0.1:{raw.port}/", config=DETECT, open_timeout=SLACK)
        with pytest.raises(ConnectionClosedError) as info:
            conn.recv(timeout=5)
        took = time.monotonic() - opened
        conn.wait_closed()
        assert info.value.code == 1011
        assert (conn.close_code, conn.close_reason, conn.closed_by) == (
            1011,
            HEARTBEAT_TIMEOUT_REASON,
            "local",
        )
        assert INTERVAL + TIMEOUT - 0.1 < took < INTERVAL + TIMEOUT + SLACK
        assert conn.stats.misses == 1
    finally:
        raw.close()
    print(f"FIGURE threading client detects a frozen server in {took * 1e3:.0f} ms")


@pytest.mark.parametrize("where", ["before-select", "stale-select"])
def test_our_stalled_io_thread_declares_nobody_dead(where: str) -> None:
    """The server's I/O thread stops for 3 x timeout while a ping is outstanding; the peer
    answers meanwhile.

    ``before-select``: the stall comes before select() and the core's late-timer rule is
    switched off (huge ``stall_threshold``), so only the adapter's order (read ready input,
    then deliver timers) keeps the peer alive. ``stale-select``: select() returned nothing
    just before the stall, so the timer is judged before the pong is read; the adapter must
    hand the core the true, late ``now`` so its late-timer rule grants a grace period.
    """
    events = Recorder()
    stall = 3 * TIMEOUT
    threshold = 10.0 if where == "before-select" else DETECT.stall_threshold
    config = HeartbeatConfig(
        interval=INTERVAL, timeout=TIMEOUT, close_timeout=1.0, stall_threshold=threshold
    )
    with serve(echo, config=config, on_event=events) as server:
        selector = server._reactor.selector
        real_select = selector.select
        stalled = threading.Event()

        def awaiting() -> bool:
            return any(c.core.phase is HeartbeatPhase.AWAITING for c in list(server._conns))

        def select(timeout: float | None = None) -> Any:
            if stalled.is_set() or not awaiting():
                return real_select(timeout)
            stalled.set()
            if where == "before-select":
                time.sleep(stall)  # the pong arrives meanwhile and is ready below
                return real_select(timeout)
            time.sleep(stall)  # as if select() had returned (empty) just before the stall
            return []

        selector.select = select  # type: ignore[method-assign]
        quiet = HeartbeatConfig(interval=30.0, timeout=10.0)  # the peer only answers
        with connect(f"ws://127.0.0.1:{server.port}/", config=quiet) as conn:
            assert stalled.wait(5)
            (server_conn,) = wait_until(lambda: server.connections)
            pongs = server_conn.stats.pongs_received
            wait_until(lambda: server_conn.stats.pongs_received >= pongs + 3)
            assert server_conn.stats.misses == 0
            assert conn.is_open and server_conn.is_open
            assert events.first(PeerDead) is None
            conn.send("still here")
            assert conn.recv(timeout=SLACK) == "still here"


def test_our_stalled_client_io_thread_declares_nobody_dead() -> None:
    """The before-select stall on the client's own I/O thread (late-timer rule off)."""
    events = Recorder()
    quiet = HeartbeatConfig(interval=30.0, timeout=10.0)  # the server only answers
    config = HeartbeatConfig(interval=INTERVAL, timeout=TIMEOUT, stall_threshold=10.0)
    with (
        serve(echo, config=quiet) as server,
        connect(f"ws://127.0.0.1:{server.port}/", config=config, on_event=events) as conn,
    ):
        selector = conn._reactor.selector
        real_select = selector.select
        stalled = threading.Event()

        def select(timeout: float | None = None) -> Any:
            if not stalled.is_set() and conn.core.phase is HeartbeatPhase.AWAITING:
                stalled.set()
                time.sleep(3 * TIMEOUT)
            return real_select(timeout)

        selector.select = select  # type: ignore[method-assign]
        assert stalled.wait(5)
        pongs = conn.stats.pongs_received
        wait_until(lambda: conn.stats.pongs_received >= pongs + 3)
        assert conn.is_open and conn.stats.misses == 0
        assert events.first(PeerDead) is None


def test_slow_20mb_message_is_not_mistaken_for_a_dead_peer() -> None:
    config = HeartbeatConfig(interval=0.5, timeout=0.5, close_timeout=1.0)
    size, piece = 20 * 1024 * 1024, 64 * 1024
    digest: dict[str, str] = {}

    def measure(conn: Connection) -> None:
        message = conn.recv(timeout=30)
        assert isinstance(message, bytes)
        digest["server"] = hashlib.sha256(message).hexdigest()
        conn.send(f"{len(message)}")
        conn.recv(timeout=5)  # wait for the client's close

    events = Recorder()
    with serve(measure, config=config, max_size=32 * 1024 * 1024, on_event=events) as server:
        sock = open_websocket(server.port)
        try:
            sock.sendall(frame(0x2, length=size, mask=ZERO_MASK))
            payload = bytes(range(256)) * (piece // 256)
            started = time.monotonic()
            budget = 2.5  # spread the message over 5 x interval
            for i in range(size // piece):
                sock.sendall(payload)
                ahead = started + budget * (i + 1) / (size // piece) - time.monotonic()
                if ahead > 0:
                    time.sleep(ahead)  # pacing the sender, not waiting for a result
            took = time.monotonic() - started
            buf = bytearray()
            while True:
                opcode, data = read_frame(sock, buf)
                if opcode == 0x1:
                    break
                assert opcode == 0x9, (opcode, data[:20])  # only pings may come first
            assert data == str(size).encode()
            expected = hashlib.sha256(payload * (size // piece)).hexdigest()
            assert digest["server"] == expected
            assert events.first(PeerDead) is None
            (server_conn,) = server.connections
            assert server_conn.stats.misses == 0
            sock.sendall(close_frame(1000))
            opcode, data = read_frame(sock, buf)
            while opcode == 0x9:
                opcode, data = read_frame(sock, buf)
            assert opcode == 0x8
        finally:
            sock.close()
    assert took > 4 * config.interval
    print(f"FIGURE threading 20 MB over {took:.2f} s at interval=timeout=0.5 s: not declared dead")


def test_connect_forever_comes_back_after_a_server_restart() -> None:
    states = Recorder()
    policy = BackoffPolicy(initial=0.1, multiplier=2.0, maximum=0.4, full_jitter=False)
    server = serve(echo, config=DETECT)
    port = server.port
    uri = f"ws://127.0.0.1:{port}/"
    connections = connect_forever(
        uri, backoff=policy, on_state=states, config=DETECT, open_timeout=SLACK
    )
    second: dict[str, Any] = {}
    restarter = threading.Timer(0.8, lambda: None)
    try:
        conn = next(connections)
        conn.send("one")
        assert conn.recv(timeout=SLACK) == "one"
        server.close()
        assert list(conn) == [] and conn.close_code == 1001

        def restart() -> None:
            second["server"] = serve(echo, port=port, config=DETECT)
            second["at"] = time.monotonic()

        restarter = threading.Timer(0.8, restart)  # the server stays down for 0.8 s
        restarter.start()
        conn = next(connections)  # blocks through failed attempts until the server is back
        reconnected = time.monotonic()
        restarter.join(SLACK)
        conn.send("two")
        assert conn.recv(timeout=SLACK) == "two"
    finally:
        connections.close()
        if restarter.ident is not None:
            restarter.join(5)
        if "server" in second:
            second["server"].close()
    kinds = states.kinds()
    assert kinds[:3] == [Connected, Disconnected, Retrying]
    assert kinds[-1] is Connected and kinds.count(Connected) == 2
    disconnects = [e for _, e in states.items if isinstance(e, Disconnected)]
    assert disconnects[0].code == 1001 and disconnects[0].error is None
    assert all(isinstance(e.error, OSError) for e in disconnects[1:])
    delays = [e.delay for _, e in states.items if isinstance(e, Retrying)]
    assert delays[:3] == [0.1, 0.2, 0.4] and max(delays) == 0.4  # exponential, capped
    back_after = reconnected - second["at"]
    assert back_after < policy.maximum + SLACK
    print(
        f"FIGURE threading connect_forever: {len(delays)} retries {delays}, back "
        f"{back_after * 1e3:.0f} ms after the restart"
    )


def test_connect_forever_reconnects_when_the_heartbeat_declares_the_server_dead() -> None:
    raw = FrozenServer()  # frozen after the upgrade
    states = Recorder()
    policy = BackoffPolicy(initial=0.05, maximum=0.1, full_jitter=False)
    uri = f"ws://127.0.0.1:{raw.port}/"
    connections = connect_forever(uri, backoff=policy, on_state=states, config=DETECT)
    server = None
    try:
        conn = next(connections)
        assert list(conn) == []  # ends when the heartbeat gives up on the frozen server
        assert conn.close_code == 1011
        raw.close()
        server = serve(echo, port=raw.port, config=DETECT)
        conn = next(connections)
        conn.send("back")
        assert conn.recv(timeout=SLACK) == "back"
    finally:
        connections.close()
        raw.close()
        if server is not None:
            server.close()
    assert states.kinds() == [Connected, Disconnected, Retrying, Connected]
    disconnected = states.first(Disconnected)
    assert disconnected is not None
    assert (disconnected[1].code, disconnected[1].reason) == (1011, HEARTBEAT_TIMEOUT_REASON)


def test_connect_forever_raises_a_configuration_error_instead_of_retrying() -> None:
    # Found in review: ConfigError is a HeartbeatError, so a bad URI was retried forever.
    seen: list[object] = []
    raised: list[BaseException] = []

    def first() -> None:
        try:
            next(connect_forever("http://127.0.0.1:1/", on_state=seen.append))
        except BaseException as exc:
            raised.append(exc)

    runner = threading.Thread(target=first, daemon=True)  # (a retry loop must not hang pytest)
    runner.start()
    runner.join(5.0)
    assert raised and isinstance(raised[0], ConfigError), (raised, seen)
    assert "ws://" in str(raised[0])
    assert seen == []  # no Disconnected / Retrying: nothing was attempted
