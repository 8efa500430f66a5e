"""Rules ``open-timeout`` and ``fail``, HTTP answers, and the fast path's equivalence.

Regressions of d061d09 covered here: the opening-handshake deadline and the bound on
closing after a refusal or an HTTP answer lived in the drivers (now deadlines of the
core); a flood injected a fake CloseReceived; HEAD answers carried a body in one
driver; ``receive_data``'s fast path skipped the ``now`` check and a user ping's
record was deleted before the state raised.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from heartbeat_core import (
    Abort,
    Accepted,
    Closed,
    CloseRequested,
    CloseTransport,
    Closing,
    ConfigError,
    ConnectionClosed,
    ConnectionOpened,
    HeartbeatConfig,
    HeartbeatConnection,
    HeartbeatPhase,
    HeartbeatState,
    HeartbeatStyle,
    LocalProtocolError,
    Message,
    PingAnswered,
    Request,
    Role,
    RttSample,
    SendClose,
    TimerFired,
)
from heartbeat_core.events import FailRequested, HandshakeStarted
from tests.support.frames import frame

CFG = HeartbeatConfig(interval=1.0, timeout=1.0, close_timeout=2.0)


def masked(opcode: int, payload: bytes, *, fin: bool = True) -> bytes:
    """One client-to-server frame."""
    return frame(opcode, payload, fin=fin)


def requested(head: bytes) -> HeartbeatConnection:
    server = HeartbeatConnection(Role.SERVER, CFG)
    server.connection_made(0.0)
    server.receive_data(head, 0.0)
    return server


def open_server(config: HeartbeatConfig = CFG, **kwargs: object) -> HeartbeatConnection:
    client = HeartbeatConnection(Role.CLIENT, config)
    client.initiate("localhost", "/")
    server = HeartbeatConnection(Role.SERVER, config, **kwargs)  # type: ignore[arg-type]
    (request,) = server.receive_data(client.data_to_send(), 0.0)
    assert isinstance(request, Request)
    server.accept(now=0.0)
    server.data_to_send()
    return server


class TestOpenTimeout:
    def test_the_state_aborts_a_handshake_that_takes_too_long(self) -> None:
        hb = HeartbeatState(CFG, open_timeout=3.0)
        assert hb.deadline is None  # no deadline until the handshake starts
        assert hb.handle(HandshakeStarted(now=1.0)) == ()
        assert hb.deadline == 4.0
        assert hb.handle(HandshakeStarted(now=2.0)) == ()  # the first start counts
        assert hb.deadline == 4.0
        assert hb.handle(TimerFired(now=3.9)) == ()  # early: nothing
        assert hb.handle(TimerFired(now=4.0)) == (Abort(),)
        assert hb.phase is HeartbeatPhase.DRAINING and hb.deadline is None

    def test_opening_in_time_clears_the_deadline(self) -> None:
        hb = HeartbeatState(CFG, open_timeout=3.0)
        hb.handle(HandshakeStarted(now=1.0))
        hb.handle(ConnectionOpened(now=2.0))
        assert hb.deadline == 3.0  # the first heartbeat's, not the handshake's
        with pytest.raises(LocalProtocolError, match="after the connection opened"):
            hb.handle(HandshakeStarted(now=2.5))

    @pytest.mark.parametrize("bad", [0, -1, float("inf"), float("nan"), True, "5"])
    def test_a_bad_open_timeout_is_a_config_error(self, bad: object) -> None:
        with pytest.raises(ConfigError, match="open_timeout"):
            HeartbeatState(CFG, open_timeout=bad)  # type: ignore[arg-type]
        with pytest.raises(ConfigError, match="open_timeout"):
            HeartbeatConnection(Role.SERVER, CFG, open_timeout=bad)  # type: ignore[arg-type]

    @pytest.mark.parametrize("role", [Role.SERVER, Role.CLIENT])
    def test_a_connection_that_never_opens_is_aborted(self, role: Role) -> None:
        conn = HeartbeatConnection(role, CFG, open_timeout=5.0)
        conn.connection_made(10.0)
        if role is Role.CLIENT:
            conn.initiate("h")
        else:
            assert conn.receive_data(b"GET / HTTP/1.1\r\n", 11.0) == []  # half a request
        assert conn.wake_at == 15.0
        assert conn.timer_fired(14.0) == []
        assert conn.timer_fired(15.0) == [Abort()]
        assert conn.receive_data(b"more", 15.5) == []  # dropped unparsed
        assert conn.connection_lost(16.0) == [Closed(code=1006, reason="", by="local")]


class TestFail:
    def test_failing_an_open_connection_sends_a_close_frame_and_releases(self) -> None:
        hb = HeartbeatState(CFG)
        hb.handle(ConnectionOpened(now=0.0))
        assert hb.fail(1.0, 1002, "bad frame") == (
            SendClose(code=1002, reason="bad frame"),
            CloseTransport(),
        )
        assert hb.phase is HeartbeatPhase.DRAINING and hb.deadline == 3.0
        assert hb.fail(1.5) == ()  # already releasing: harmless
        assert hb.handle(TimerFired(now=3.0)) == (Abort(),)

    def test_failing_while_closing_releases_without_a_second_close_frame(self) -> None:
        hb = HeartbeatState(CFG)
        hb.handle(ConnectionOpened(now=0.0))
        hb.handle(CloseRequested(now=1.0))
        assert hb.handle(FailRequested(now=2.0, code=1002)) == (CloseTransport(),)
        assert hb.deadline == 4.0

    def test_failing_before_the_connection_opened_only_releases(self) -> None:
        hb = HeartbeatState(CFG)
        assert hb.fail(1.0) == (CloseTransport(),)
        assert hb.phase is HeartbeatPhase.DRAINING and hb.deadline == 3.0

    def test_a_bad_close_code_raises_and_changes_nothing(self) -> None:
        hb = HeartbeatState(CFG)
        hb.handle(ConnectionOpened(now=0.0))
        with pytest.raises(LocalProtocolError, match="cannot be sent"):
            hb.fail(1.0, 1006)
        assert hb.phase is HeartbeatPhase.IDLE and hb.last_now == 0.0
        hb.handle(ConnectionClosed(now=2.0))
        with pytest.raises(LocalProtocolError, match="after ConnectionClosed"):
            hb.fail(3.0)

    def test_the_connection_fails_through_the_state(self) -> None:
        server = open_server()
        events = server.fail(1.0, 1011, "handler crashed")
        assert [type(e).__name__ for e in events] == ["Closing", "CloseTransport"]
        assert server.data_to_send()[:1] == b"\x88"
        assert server.fail(1.5) == []
        assert server.connection_lost(2.0) == [
            Closed(code=1011, reason="handler crashed", by="local")
        ]
        with pytest.raises(LocalProtocolError, match="after connection_lost"):
            server.fail(3.0)


class TestAnswersAreBounded:
    UPGRADE = (
        b"GET /chat HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )

    def test_closing_after_a_refusal_is_bounded_by_close_timeout(self) -> None:
        server = requested(self.UPGRADE)
        assert server.reject(403, b"no", now=1.0) == [CloseTransport()]
        assert server.data_to_send().startswith(b"HTTP/1.1 403 ")
        assert server.wake_at == 3.0  # a peer that never reads cannot hold us
        assert server.timer_fired(3.0) == [Abort()]

    def test_closing_after_an_http_answer_is_bounded_by_close_timeout(self) -> None:
        server = requested(b"GET /health HTTP/1.1\r\nHost: h\r\n\r\n")
        assert server.respond(200, b"ok\n", now=1.0) == [CloseTransport()]
        assert server.wake_at == 3.0
        assert server.timer_fired(3.0) == [Abort()]
        assert server.connection_lost(3.1) == [Closed(code=1006, reason="", by="local")]

    def test_a_head_answer_has_no_body(self) -> None:
        server = requested(b"HEAD /health HTTP/1.1\r\nHost: h\r\n\r\n")
        server.respond(200, b"hello-body", now=0.5, headers=[("content-type", "text/plain")])
        answer = server.data_to_send()
        assert b"content-length: 10\r\n" in answer  # the size the GET would have
        assert answer.endswith(b"\r\n\r\n") and b"hello-body" not in answer
        server = requested(b"GET /health HTTP/1.1\r\nHost: h\r\n\r\n")
        server.respond(200, b"hello-body", now=0.5)
        assert server.data_to_send().endswith(b"\r\n\r\nhello-body")

    def test_a_bad_request_is_answered_400_and_released(self) -> None:
        server = HeartbeatConnection(Role.SERVER, CFG)
        assert server.receive_data(b"POST / HTTP/1.1\r\nHost: h\r\n\r\n", 1.0) == [CloseTransport()]
        assert server.data_to_send().startswith(b"HTTP/1.1 400 ")
        assert server.wake_at == 3.0

    def test_http_requests_are_described(self) -> None:
        server = requested(b"GET /x?y=1 HTTP/1.1\r\nHost: h\r\nAccept: */*\r\n\r\n")
        assert server.receive_data(b"ignored", 0.1) == []  # nothing more is needed
        with pytest.raises(LocalProtocolError, match="pending Request"):
            server.accept(now=0.2)


class TestAFailedCallChangesNothing:
    def test_the_fast_path_checks_now(self) -> None:
        # Regression (d061d09): the fast path skipped the check, so a lone pong with a
        # backwards now went through.
        server = open_server()
        server.timer_fired(1.0)
        server.data_to_send()
        pong = masked(0xA, b"1")
        with pytest.raises(LocalProtocolError, match="backwards"):
            server.receive_data(pong, 0.5)
        assert server.phase is HeartbeatPhase.AWAITING and server.stats.pongs_received == 0
        assert server.receive_data(pong, 1.1) == [RttSample(seq=1, rtt=pytest.approx(0.1))]

    def test_a_user_ping_survives_a_backwards_pong(self) -> None:
        # Regression (d061d09): the record of a ping() was deleted before the state
        # raised on a backwards now, so its PingAnswered was lost.
        server = open_server()
        server.timer_fired(1.0)
        payload = server.ping(1.0)
        server.data_to_send()
        pong = masked(0xA, payload)
        with pytest.raises(LocalProtocolError, match="backwards"):
            server.receive_data(pong, 0.5)
        assert server.receive_data(pong, 1.25) == [
            PingAnswered(payload=payload, rtt=0.25),
            RttSample(seq=1, rtt=0.25),  # (the ping followed heartbeat 1: it answers it too)
        ]


class TestConstruction:
    def test_a_codec_must_be_a_codec(self) -> None:
        with pytest.raises(ConfigError, match="AppCodec"):
            HeartbeatConnection(Role.SERVER, codec="json")  # type: ignore[arg-type]

    def test_the_config_is_visible(self) -> None:
        assert HeartbeatConnection(Role.CLIENT, CFG).config is CFG

    def test_initiate_after_the_handshake_raises(self) -> None:
        client = HeartbeatConnection(Role.CLIENT, CFG)
        client.initiate("h")
        key = client.data_to_send().split(b"Sec-WebSocket-Key: ")[1].split(b"\r\n")[0]
        del key  # (the accept value is computed by the server below)
        server = HeartbeatConnection(Role.SERVER, CFG)
        client2 = HeartbeatConnection(Role.CLIENT, CFG)
        client2.initiate("h")
        server.receive_data(client2.data_to_send(), 0.0)
        server.accept(now=0.0)
        assert isinstance(client2.receive_data(server.data_to_send(), 0.0)[0], Accepted)
        with pytest.raises(LocalProtocolError, match="after the handshake ended"):
            client2.initiate("h")

    def test_a_bad_response_releases_the_client(self) -> None:
        client = HeartbeatConnection(Role.CLIENT, CFG)
        client.initiate("h")
        events = client.receive_data(b"HTTP/1.1 101 Switching\r\n\r\n", 1.0)
        assert [type(e).__name__ for e in events] == ["HandshakeFailed", "CloseTransport"]
        assert client.connection_lost(1.5) == [Closed(code=1006, reason="", by="local")]


# ------------------------------------------------------------------ fast path


def _frame(kind: str, payload: bytes, fin: bool, rsv: int = 0) -> bytes:
    opcode = {"text": 0x1, "binary": 0x2, "ping": 0x9, "pong": 0xA, "close": 0x8, "cont": 0x0}
    return frame(opcode[kind], payload, fin=fin, rsv=rsv)


_payloads = st.one_of(
    st.sampled_from([b"1", b"0", b"u1", b'{"type":"ping"}', b'{"type":"pong"}', b"\xff\xfe"]),
    st.binary(max_size=40),
    st.binary(min_size=120, max_size=300),
    st.text(max_size=70).map(lambda t: t.encode("utf-8")),  # any code points, valid UTF-8
)
_streams = st.lists(
    st.tuples(
        st.sampled_from(["text", "binary", "ping", "pong", "close", "cont"]),
        _payloads,
        st.booleans(),
        # Reserved bits: mostly none; when set, the frame is a protocol error (1002).
        st.sampled_from([0] * 12 + [1, 4]),
    ),
    min_size=1,
    max_size=8,
).map(
    lambda frames: b"".join(
        _frame(kind, payload[:125] if kind in ("ping", "pong", "close") else payload, fin, rsv)
        for kind, payload, fin, rsv in frames
        # (control frames are never fragmented on the wire)
        if kind not in ("ping", "pong", "close") or fin
    )
)


def _observe(server: HeartbeatConnection, stream: bytes, cuts: list[int]) -> tuple[object, ...]:
    """Feed ``stream`` in pieces cut at ``cuts``; echo every message while open (an echo
    server: the send path is compared too); what came out, and the state after."""
    events: list[object] = []
    out = []
    points = sorted({c % (len(stream) + 1) for c in cuts} | {len(stream)})
    prev, now = 0, 1.5
    for point in points:
        if point > prev:
            got = server.receive_data(stream[prev:point], now)
            for event in got:
                if isinstance(event, Message) and server.is_open:
                    server.send(event.data)
            events += got
            out.append(server.data_to_send())
            prev = point
        now += 0.01
    return (events, b"".join(out), server.phase, server.deadline, server.stats)


@settings(max_examples=300, deadline=None)
@given(
    stream=_streams,
    cuts=st.lists(st.integers(min_value=0, max_value=2000), max_size=6),
    app=st.booleans(),
    strikes=st.sampled_from([0, 2, 100]),
)
def test_the_fast_path_yields_exactly_what_the_general_path_yields(
    stream: bytes, cuts: list[int], app: bool, strikes: int
) -> None:
    config = HeartbeatConfig(
        interval=1.0,
        timeout=1.0,
        style=HeartbeatStyle.APP if app else HeartbeatStyle.PROTOCOL,
        peer_ping_max_strikes=strikes,
    )
    fast, general = (open_server(config, max_message_size=200) for _ in range(2))
    general._fast_path = False
    for server in (fast, general):
        server.timer_fired(1.0)  # heartbeat 1 outstanding: a pong "1" answers it
        server.data_to_send()
    assert _observe(fast, stream, cuts) == _observe(general, stream, cuts)


def test_the_general_path_is_what_the_property_compares_against() -> None:
    # The property above is only worth something if the switch really turns the fast
    # path off: wsproto's frame layer is made only when the general path runs.
    fast, general = open_server(), open_server()
    general._fast_path = False
    for server in (fast, general):
        server.receive_data(masked(0x9, b"p"), 0.5)
    assert fast._ws is None and general._ws is not None
    # ... and an oversized message is left to wsproto, on either side of the switch.
    big = masked(0x2, b"x" * 300)
    general = open_server(max_message_size=200)
    general._fast_path = False
    for server in (open_server(max_message_size=200), general):
        events = server.receive_data(big + masked(0x9, b"q"), 0.6)
        assert [type(e).__name__ for e in events] == ["Closing", "CloseTransport"]


def test_a_text_message_over_the_limit_is_left_to_wsproto() -> None:
    server = open_server(max_message_size=4)
    events = server.receive_data(masked(0x1, b"hello"), 0.5)
    assert events == [Closing(code=1009, reason="message too big", by_peer=False), CloseTransport()]


def test_nothing_is_parsed_after_the_peers_close_frame() -> None:
    server = open_server()
    close = masked(0x8, (1000).to_bytes(2, "big"))
    events = server.receive_data(close + masked(0x9, b"late"), 0.5)
    assert events == [Closing(code=1000, reason="", by_peer=True), CloseTransport()]
    assert b"late" not in server.data_to_send()  # the ping after the close is not answered
