"""heartbeat_threading.testing: the link proxy, the misbehaving peers, the pytest fixtures
(used here as a user would: by name, from the installed plugin)."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable

import pytest
from heartbeat_threading import connect, serve
from heartbeat_threading.testing import (
    Direction,
    FrozenPeer,
    FrozenServer,
    LinkProxy,
    SlowReader,
)

from heartbeat_core import HeartbeatConfig, RttSample
from tests.support.waiting import wait_until

QUIET = HeartbeatConfig(interval=3600, timeout=10)


def echo(conn: object) -> None:
    for message in conn:  # type: ignore[attr-defined]
        conn.send(message)  # type: ignore[attr-defined]


def round_trip(url: str, n: int = 3) -> list[float]:
    times = []
    with connect(url, config=QUIET) as conn:
        for i in range(n):
            t = time.monotonic()
            conn.send(f"m{i}")
            assert conn.recv(timeout=10) == f"m{i}"
            times.append(time.monotonic() - t)
    return times


def test_delay_each_way_adds_up_to_the_round_trip(
    heartbeat_link_proxy: Callable[..., LinkProxy],
) -> None:
    with serve(echo, "127.0.0.1", 0, config=QUIET) as server:
        proxy = heartbeat_link_proxy(
            server.port, up=Direction(delay=0.05), down=Direction(delay=0.1)
        )
        assert all(0.15 <= t < 0.25 for t in round_trip(proxy.url())), "RTT"
        assert proxy.accepted == 1
        # Settings change while the proxy runs: the next bytes follow them.
        proxy.up = Direction()
        proxy.down = Direction(jitter=0.02)
        assert all(t < 0.1 for t in round_trip(proxy.url()))


def test_stalls_hold_everything_then_release_it_in_order() -> None:
    with serve(echo, "127.0.0.1", 0, config=QUIET) as server:
        stall = Direction(stall_every=1.0, stall=0.5)
        with LinkProxy(server.port, up=stall) as proxy, connect(proxy.url(), config=QUIET) as c:
            # Sent through one second: some wait for the end of a stall, none overtakes.
            for i in range(10):
                c.send(f"m{i}")
                time.sleep(0.1)
            assert [c.recv(timeout=10) for _ in range(10)] == [f"m{i}" for i in range(10)]


def test_a_bandwidth_cap_spaces_the_bytes() -> None:
    with serve(echo, "127.0.0.1", 0, config=QUIET) as server:
        slow = Direction(bandwidth=20_000.0)  # 20 KB/s
        with LinkProxy(server.port, down=slow) as proxy, connect(proxy.url(), config=QUIET) as c:
            t = time.monotonic()
            c.send(b"x" * 10_000)
            assert c.recv(timeout=10) == b"x" * 10_000
            assert time.monotonic() - t >= 0.45  # 10 KB at 20 KB/s


def test_a_blackhole_keeps_connections_open_and_silent() -> None:
    with (
        serve(echo, "127.0.0.1", 0, config=QUIET) as server,
        LinkProxy(server.port) as proxy,
        connect(proxy.url(), config=QUIET) as conn,
    ):
        conn.send("before")
        assert conn.recv(timeout=10) == "before"
        proxy.blackhole()
        conn.send("lost")
        with pytest.raises(TimeoutError):
            conn.recv(timeout=0.3)
        assert proxy.connections == 1
        proxy.blackhole(False)
        conn.send("after")
        assert conn.recv(timeout=10) == "after"


def test_an_idle_limit_cuts_and_records_when() -> None:
    busy_cfg = HeartbeatConfig(interval=0.2, timeout=1)
    with (
        serve(echo, "127.0.0.1", 0, config=busy_cfg) as server,
        LinkProxy(server.port, idle_limit=0.5) as busy,
        connect(busy.url(), config=busy_cfg),
    ):
        time.sleep(1.0)
        assert busy.cuts == [] and busy.connections == 1
    with (
        serve(echo, "127.0.0.1", 0, config=QUIET) as server,
        LinkProxy(server.port, idle_limit=0.3) as idle,
        connect(idle.url(), config=QUIET),
    ):
        wait_until(lambda: idle.cuts, 5, "the idle cut")
        assert idle.connections == 0


def test_a_closed_end_passes_its_eof_through() -> None:
    with serve(echo, "127.0.0.1", 0, config=QUIET) as server, LinkProxy(server.port) as proxy:
        conn = connect(proxy.url(), config=QUIET)
        conn.close()
        wait_until(lambda: proxy.connections == 0, 5, "the connection through the proxy to end")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"delay": -1}, "delay must be a finite number"),
        ({"bandwidth": 0}, "bandwidth must be a finite number > 0"),
        ({"stall_every": 1.0, "stall": 1.0}, "stall .* must be shorter"),
    ],
)
def test_direction_checks_its_figures(options: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Direction(**options)


def test_a_frozen_peer_is_found_dead_and_sees_why(
    heartbeat_frozen_peer: Callable[..., FrozenPeer],
) -> None:
    cfg = HeartbeatConfig(interval=0.2, timeout=0.3)
    with serve(echo, "127.0.0.1", 0, config=cfg) as server:
        peer = heartbeat_frozen_peer(server.port)
        frames, eof = peer.drain(5.0)
    assert eof
    assert [f.opcode for f in frames] == [0x9, 0x8]  # a ping, unanswered; then the close
    assert frames[1].close_code == 1011 and frames[1].close_reason == b"heartbeat-timeout"
    assert frames[0].close_code is None and frames[0].close_reason == b""


def test_a_server_that_stops_answering_is_found_dead(
    heartbeat_frozen_server: Callable[..., FrozenServer],
) -> None:
    raw = heartbeat_frozen_server()
    events: list[object] = []
    with connect(
        raw.url(),
        config=HeartbeatConfig(interval=0.2, timeout=0.3),
        on_event=lambda c, e: events.append(e),
    ) as conn:
        conn.wait_closed()  # (bounded: interval + timeout, then close_timeout)
    assert conn.close_code == 1011 and raw.accepted == 1


def test_a_slow_reader_answers_pings_while_what_is_sent_piles_up(
    heartbeat_slow_reader: Callable[..., SlowReader],
) -> None:
    events: list[object] = []
    cfg = HeartbeatConfig(interval=0.2, timeout=2)
    with serve(echo, "127.0.0.1", 0, config=cfg, on_event=lambda c, e: events.append(e)) as server:
        reader = heartbeat_slow_reader(server.port, rate=50_000.0, chunk=4096)
        wait_until(lambda: sum(isinstance(e, RttSample) for e in events) >= 2, 10, "answers")
        (conn,) = server.connections
        conn.close()
        wait_until(lambda: reader.eof, 10, "the slow reader's EOF")
    assert any(f.opcode == 0x8 for f in reader.frames) and reader.received > 0
    with pytest.raises(ValueError, match="rate must be > 0"):
        SlowReader("127.0.0.1", server.port, rate=0)


def test_open_websocket_refused_upgrade_is_a_connection_error() -> None:
    with FrozenServer(status=404) as raw, pytest.raises(ConnectionError, match="refused"):
        from heartbeat_threading.testing import open_websocket

        open_websocket(raw.port)
    probe = socket.socket()
    probe.close()
