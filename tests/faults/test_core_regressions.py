"""Regression tests for the bugs the fuzzer found in ``HeartbeatConnection`` (issue 6)."""

from __future__ import annotations

from heartbeat_core import (
    Abort,
    Closed,
    CloseTransport,
    HandshakeFailed,
    HeartbeatConfig,
    HeartbeatConnection,
    HeartbeatPhase,
    PeerDead,
    Role,
)
from tests.support.frames import upgrade_request, upgrade_response

CFG = HeartbeatConfig(interval=1.0, timeout=0.5, close_timeout=0.3)


def test_client_does_not_answer_a_garbage_response_with_http() -> None:
    # Found: a client fed a non-HTTP response wrote "HTTP/1.1 400 Bad Request" to the server.
    conn = HeartbeatConnection(Role.CLIENT, CFG)
    conn.initiate("127.0.0.1")
    conn.data_to_send()
    events = conn.receive_data(b"\x00garbage\r\n\r\n", 0.0)
    assert [type(e) for e in events] == [HandshakeFailed, CloseTransport]
    assert conn.data_to_send() == b""
    assert conn.connection_lost(0.1) == [Closed(code=1006, reason="", by="local")]


def test_non_ascii_host_header_is_refused_not_raised() -> None:
    # Found: wsproto raised UnicodeDecodeError (idna) out of receive_data for this request.
    conn = HeartbeatConnection(Role.SERVER, CFG)
    raw = upgrade_request().replace(b"Host: 127.0.0.1", b"Host: \x80 127")
    events = conn.receive_data(raw, 0.0)
    assert events == [CloseTransport()]
    assert conn.data_to_send().startswith(b"HTTP/1.1 400 ")
    assert conn.connection_lost(0.1) == [Closed(code=1006, reason="", by="local")]


def test_eof_while_open_stops_heartbeats_and_bounds_the_release() -> None:
    # Found: after the peer's EOF the connection still said it was open, and a timer
    # delivered before connection_lost() sent a heartbeat and then declared the peer dead
    # (PeerDead, close 1011) on a stream that had already ended.
    conn = HeartbeatConnection(Role.CLIENT, CFG)
    conn.initiate("127.0.0.1")
    key = conn.data_to_send().split(b"Sec-WebSocket-Key: ")[1].split(b"\r\n")[0]
    conn.receive_data(upgrade_response(key), 0.0)
    assert conn.is_open
    assert conn.receive_data(None, 0.5) == [CloseTransport()]
    assert not conn.is_open
    assert conn.phase is HeartbeatPhase.DRAINING
    assert conn.deadline == 0.5 + CFG.close_timeout
    events = conn.timer_fired(5.0)
    assert not any(isinstance(e, PeerDead) for e in events)
    assert events == [Abort()]
    assert conn.data_to_send() == b""
    assert conn.connection_lost(5.0) == [Closed(code=1006, reason="", by="remote")]


def test_a_ping_flood_fails_the_connection_and_stops_parsing() -> None:
    # Found: 23,000 pings in one 256 KiB read held the server's thread for ~650 ms: after
    # the flood rule closed with 1008, the rest of the read was still parsed, and the
    # connection then waited close_timeout for the flooder's close frame while reading on.
    from heartbeat_core import Closing
    from tests.support.frames import PING, frame

    cfg = HeartbeatConfig(peer_ping_max_strikes=100, peer_ping_min_interval=0.05)
    conn = HeartbeatConnection(Role.SERVER, cfg)
    conn.receive_data(upgrade_request(), 0.0)
    conn.accept(now=0.0)
    conn.data_to_send()
    parsed = 0
    events_of = conn._frame_layer().events

    def counting():  # type: ignore[no-untyped-def]
        nonlocal parsed
        for e in events_of():
            parsed += 1
            yield e

    conn._frame_layer().events = counting  # type: ignore[method-assign]
    events = conn.receive_data(frame(PING, b"flood") * 20_000, 1.0)
    assert events == [Closing(code=1008, reason="too many pings", by_peer=False), CloseTransport()]
    assert parsed < 200, f"{parsed} frames parsed after deciding to fail the connection"
    assert conn.phase is HeartbeatPhase.DRAINING
    out = conn.data_to_send()
    assert out.startswith(b"\x88") and out[4:] == b"too many pings"  # one close frame, no pong
    assert conn.receive_data(frame(PING, b"more"), 1.1) == []
    assert conn.timer_fired(1.0 + cfg.close_timeout) == [Abort()]


def test_a_flood_of_stray_pongs_fails_the_connection() -> None:
    # Found: unsolicited pongs at line rate were parsed forever (each 256 KiB read held
    # the server's thread for ~100+ ms; other connections' echoes took 150 ms to 3 s).
    from heartbeat_core import Closing
    from tests.support.frames import PONG, frame

    cfg = HeartbeatConfig(peer_ping_max_strikes=10, peer_ping_min_interval=0.05)
    conn = HeartbeatConnection(Role.SERVER, cfg)
    conn.receive_data(upgrade_request(), 0.0)
    conn.accept(now=0.0)
    conn.data_to_send()
    # Spaced stray pongs (a unidirectional heartbeat, RFC 6455 5.5.3) are fine.
    for i in range(30):
        assert conn.receive_data(frame(PONG, b"x%d" % i), 1.0 + i * 0.05) == []
    assert conn.is_open
    events = conn.receive_data(frame(PONG, b"junk") * 1000, 3.0)
    assert events == [Closing(code=1008, reason="too many pongs", by_peer=False), CloseTransport()]
    assert conn.data_to_send()[4:] == b"too many pongs"
    assert conn.connection_lost(3.1) == [Closed(code=1008, reason="too many pongs", by="local")]


def test_pongs_to_our_own_pings_are_never_strikes() -> None:
    cfg = HeartbeatConfig(peer_ping_max_strikes=0, peer_ping_min_interval=0.05)
    conn = HeartbeatConnection(Role.SERVER, cfg)
    conn.receive_data(upgrade_request(), 0.0)
    conn.accept(now=0.0)
    conn.data_to_send()
    from tests.support.frames import PONG, frame

    payloads = [conn.ping(1.0) for _ in range(50)]
    data = b"".join(frame(PONG, p) for p in payloads)
    events = conn.receive_data(data, 1.001)
    assert len(events) == 50 and conn.is_open
