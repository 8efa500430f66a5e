"""``HeartbeatConnection``: wsproto plus the heartbeat state, driven through an in-memory pair."""

from __future__ import annotations

import pytest

from heartbeat_core import (
    HEARTBEAT_TIMEOUT_REASON,
    Abort,
    Accepted,
    AppCodec,
    Closed,
    CloseTransport,
    Closing,
    ConfigError,
    ConnectionClosedError,
    HeartbeatConfig,
    HeartbeatConnection,
    HeartbeatPhase,
    HeartbeatStyle,
    HttpRequest,
    Liveness,
    LocalProtocolError,
    Message,
    PeerDead,
    PingAnswered,
    Rejected,
    Request,
    Role,
    RttSample,
)
from tests.support import frames as wsframes
from tests.support.frames import (
    BINARY,
    CLOSE,
    CONT,
    PING,
    PONG,
    TEXT,
    ZERO_MASK,
    close_payload,
    parse_frames,
)

from .helpers import Pair

FAST = HeartbeatConfig(interval=1, timeout=1, close_timeout=2)


def frame(opcode: int, payload: bytes = b"", *, fin: bool = True, masked: bool = True) -> bytes:
    """One raw WebSocket frame (a zero mask key, so the payload is sent as is)."""
    return wsframes.frame(opcode, payload, fin=fin, mask=ZERO_MASK if masked else None)


def frames_in(data: bytes) -> list[tuple[int, bytes]]:
    """Parse unmasked or masked frames: (opcode, payload) each."""
    return [(f.opcode, f.payload) for f in parse_frames(data, complete=True)]


@pytest.fixture
def pair() -> Pair:
    p = Pair(FAST, FAST)
    p.handshake()
    return p


class TestConstruction:
    def test_bad_role(self) -> None:
        with pytest.raises(ConfigError, match="role"):
            HeartbeatConnection("client")  # type: ignore[arg-type]

    @pytest.mark.parametrize("count", [0, -1, 1.5, True, None])
    def test_bad_max_fragments(self, count: object) -> None:
        with pytest.raises(ConfigError, match="max_fragments must be a positive int"):
            HeartbeatConnection(Role.SERVER, max_fragments=count)  # type: ignore[arg-type]

    @pytest.mark.parametrize("size", [0, -1, True, 1.5, "big"])
    def test_bad_max_message_size(self, size: object) -> None:
        with pytest.raises(ConfigError, match="max_message_size"):
            HeartbeatConnection(Role.SERVER, max_message_size=size)  # type: ignore[arg-type]

    def test_fresh_views(self) -> None:
        conn = HeartbeatConnection(Role.CLIENT, max_message_size=None)
        assert conn.phase is HeartbeatPhase.NEW and not conn.is_open
        assert conn.deadline is None and conn.stats.pings_sent == 0
        assert (conn.close_code, conn.close_reason, conn.closed_by) == (1006, "", "remote")
        assert conn.data_to_send() == b""

    def test_config_is_the_heartbeat_config(self) -> None:
        conn = HeartbeatConnection(Role.SERVER, FAST)
        assert conn.config is conn.heartbeat.config
        assert conn.config.interval == FAST.interval


class TestHandshake:
    def test_open_both_ends(self) -> None:
        p = Pair(FAST, FAST, now=10.0)
        client_events, server_events = p.handshake()
        request, accepted = server_events
        assert isinstance(request, Request)
        assert accepted == Accepted(subprotocol=None, extra_headers=[])
        assert (request.host, request.target, request.subprotocols) == ("example.test", "/chat", [])
        assert client_events == [Accepted(subprotocol=None, extra_headers=[])]
        assert p.client.phase is p.server.phase is HeartbeatPhase.IDLE
        assert p.client.deadline == p.server.deadline == 11.0

    def test_subprotocols_and_headers(self) -> None:
        p = Pair(FAST, FAST)
        p.client.initiate("h", "/", subprotocols=["a", "b"], extra_headers=[("x-key", "v")])
        (request,) = p.to_server()
        assert isinstance(request, Request) and request.subprotocols == ["a", "b"]
        assert (b"x-key", b"v") in request.extra_headers
        with pytest.raises(LocalProtocolError, match="not offered"):
            p.server.accept(now=0.0, subprotocol="c")
        assert p.server.phase is HeartbeatPhase.NEW  # the failed call changed nothing
        assert p.server.accept(now=0.0, subprotocol="b", extra_headers=[(b"x-s", b"1")]) == [
            Accepted(subprotocol="b", extra_headers=[(b"x-s", b"1")])
        ]
        (accepted,) = p.to_client()
        assert isinstance(accepted, Accepted) and accepted.subprotocol == "b"
        assert (b"x-s", b"1") in accepted.extra_headers

    def test_misuse(self) -> None:
        server = HeartbeatConnection(Role.SERVER)
        client = HeartbeatConnection(Role.CLIENT)
        with pytest.raises(LocalProtocolError, match="for clients"):
            server.initiate("h")
        client.initiate("h")
        with pytest.raises(LocalProtocolError, match="already"):
            client.initiate("h")
        with pytest.raises(LocalProtocolError, match="pending Request"):
            server.accept(now=0.0)
        with pytest.raises(LocalProtocolError, match="pending Request"):
            server.reject(now=0.0)
        with pytest.raises(LocalProtocolError, match="pending HttpRequest"):
            server.respond(200, now=0.0)
        with pytest.raises(ConnectionClosedError, match="new"):
            client.send("early")

    @pytest.mark.parametrize("body", [b"", b"go away"])
    def test_reject(self, body: bytes) -> None:
        p = Pair(FAST, FAST)
        p.client.initiate("h")
        p.to_server()
        with pytest.raises(LocalProtocolError, match="4xx or 5xx"):
            p.server.reject(200, now=0.0)
        assert p.server.reject(403, body, now=0.0, headers=[("x-why", "because")]) == [
            CloseTransport()
        ]
        rejected, close = p.to_client()
        assert isinstance(rejected, Rejected) and close == CloseTransport()
        assert rejected.status == 403 and rejected.body == body
        assert (b"x-why", b"because") in rejected.headers
        assert p.server.closed_by == "local"
        assert p.client.connection_lost(1.0) == [Closed(code=1006, reason="", by="remote")]
        assert p.server.connection_lost(1.0) == [Closed(code=1006, reason="", by="local")]

    def test_frames_in_the_same_read_as_the_101(self) -> None:
        p = Pair(FAST, FAST)
        p.client.initiate("h")
        p.to_server()
        p.server.accept(now=0.0)
        p.server.send("first")
        p.server.send(b"second")
        p.server.timer_fired(1.0)  # a heartbeat ping too
        events = p.client.receive_data(p.server.data_to_send(), 1.0)
        assert events == [
            Accepted(extra_headers=[]),
            Message(data="first"),
            Message(data=b"second"),
        ]
        assert frames_in(p.client.data_to_send()) == [(PONG, b"1")]

    def test_informational_answer_is_a_rejection(self) -> None:
        client = HeartbeatConnection(Role.CLIENT)
        client.initiate("h")
        events = client.receive_data(b"HTTP/1.1 100 Continue\r\n\r\n", 0.0)
        assert events == [Rejected(status=100, headers=[], body=b""), CloseTransport()]

    def test_plain_http_request(self) -> None:
        server = HeartbeatConnection(Role.SERVER)
        request = b"GET /health HTTP/1.1\r\nHost: x\r\nAccept: */*\r\n\r\n"
        (event,) = server.receive_data(request, 0.0)
        assert event == HttpRequest(
            method="GET", target="/health", headers=[(b"host", b"x"), (b"accept", b"*/*")]
        )
        assert server.receive_data(b"more junk", 0.1) == []
        with pytest.raises(LocalProtocolError, match="200-599"):
            server.respond(100, now=0.0)
        assert server.respond(200, b"ok\n", now=0.0, headers=[("content-type", "text/plain")]) == [
            CloseTransport()
        ]
        data = server.data_to_send()
        assert data.startswith(b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n")
        assert data.endswith(b"content-length: 3\r\nconnection: close\r\n\r\nok\n")

    def test_unknown_status_phrase(self) -> None:
        server = HeartbeatConnection(Role.SERVER)
        server.receive_data(b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n", 0.0)
        server.respond(599, now=0.0)
        assert server.data_to_send().startswith(b"HTTP/1.1 599 Unknown\r\n")

    @pytest.mark.parametrize(
        "request_bytes",
        [
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
            b"\x16\x03\x01 not http at all\r\n\r\n",
        ],
    )
    def test_bad_upgrade_is_answered_400(self, request_bytes: bytes) -> None:
        server = HeartbeatConnection(Role.SERVER)
        assert server.receive_data(request_bytes, 0.0) == [CloseTransport()]
        assert server.data_to_send().startswith(b"HTTP/1.1 400 Bad Request\r\n")
        assert server.receive_data(b"GET / HTTP/1.1\r\n\r\n", 0.1) == []  # already answered

    def test_oversized_handshake_is_answered_431(self) -> None:
        server = HeartbeatConnection(Role.SERVER)
        assert server.receive_data(b"GET / HTTP/1.1\r\n", 0.0) == []
        events = server.receive_data(b"X-Pad: " + b"a" * 17000 + b"\r\n", 0.0)
        assert events == [CloseTransport()]
        assert server.data_to_send().startswith(b"HTTP/1.1 431 ")

    def test_client_hangs_up_on_a_bad_response(self) -> None:
        client = HeartbeatConnection(Role.CLIENT)
        client.initiate("h")
        client.data_to_send()
        events = client.receive_data(b"HTTP/1.1 101 Switching Protocols\r\n\r\n", 0.0)
        assert CloseTransport() in events
        assert client.data_to_send() == b""  # no HTTP answer from a client


class TestMessages:
    def test_text_and_binary_both_ways(self, pair: Pair) -> None:
        pair.client.send("héllo")
        pair.client.send(bytearray(b"\x00\x01"))
        pair.server.send(memoryview(b"bin"))
        pair.server.send("txt")
        client_events, server_events = pair.pump()
        assert server_events == [Message(data="héllo"), Message(data=b"\x00\x01")]
        assert client_events == [Message(data=b"bin"), Message(data="txt")]

    def test_send_rejects_other_types(self, pair: Pair) -> None:
        for side in (pair.client, pair.server):  # (an open server's send takes a shorter way)
            with pytest.raises(TypeError, match="str or bytes"):
                side.send(42)  # type: ignore[arg-type]
            assert side.data_to_send() == b"" and side.is_open

    def test_fragmented_messages_are_reassembled(self, pair: Pair) -> None:
        data = (
            frame(TEXT, b"he", fin=False)
            + frame(PING, b"mid")  # a control frame between fragments
            + frame(CONT, b"ll", fin=False)
            + frame(CONT, b"o")
            + frame(BINARY, b"ab", fin=False)
            + frame(CONT, b"cd")
        )
        events = pair.server.receive_data(data, 0.0)
        assert [e for e in events if isinstance(e, Message)] == [
            Message(data="hello"),
            Message(data=b"abcd"),
        ]
        assert frames_in(pair.server.data_to_send()) == [(PONG, b"mid")]

    def test_byte_by_byte_delivery(self, pair: Pair) -> None:
        pair.client.send("x" * 300)
        data = pair.client.data_to_send()
        events = []
        for i in range(len(data)):
            events += pair.server.receive_data(data[i : i + 1], 0.0)
        assert events == [Message(data="x" * 300)]

    def test_too_big_message_closes_1009(self) -> None:
        p = Pair(FAST, FAST, max_message_size=10)
        p.handshake()
        p.client.send("0123456789")
        _, server_events = p.pump()
        assert server_events == [Message(data="0123456789")]
        events = p.server.receive_data(
            frame(BINARY, b"x" * 6, fin=False) + frame(CONT, b"y" * 6, fin=False), 0.0
        )
        # The connection fails at once (rule fail): the rest is not even parsed.
        assert events == [
            Closing(code=1009, reason="message too big", by_peer=False),
            CloseTransport(),
        ]
        assert p.server.receive_data(frame(CONT, b"z"), 0.0) == []
        assert frames_in(p.server.data_to_send()) == [
            (CLOSE, close_payload(1009, b"message too big"))
        ]
        assert p.server.phase is HeartbeatPhase.DRAINING
        with pytest.raises(ConnectionClosedError) as info:
            p.server.send("late")
        assert info.value.code == 1009

    def test_too_big_single_frame(self) -> None:
        p = Pair(FAST, FAST, max_message_size=4)
        p.handshake()
        p.client.send(b"12345")
        _, server_events = p.pump()
        assert server_events[0] == Closing(code=1009, reason="message too big", by_peer=False)

    def test_fragments_are_assembled_on_both_roles(self) -> None:
        # Text split inside a code point and binary, in several frames, some split
        # across reads; each side gets the whole message once.
        text = "h\u00e9llo w\u00f6rld \U0001f600!".encode()
        pieces = [text[:2], text[2:7], text[7:16], text[16:]]
        for role_masked in (True, False):
            p = Pair(FAST, FAST)
            p.handshake()
            receiver = p.server if role_masked else p.client
            wire = frame(TEXT, pieces[0], fin=False, masked=role_masked)
            wire += b"".join(frame(CONT, x, fin=False, masked=role_masked) for x in pieces[1:-1])
            wire += frame(CONT, pieces[-1], masked=role_masked)
            wire += frame(BINARY, b"ab", fin=False, masked=role_masked)
            wire += frame(CONT, b"", fin=False, masked=role_masked)
            wire += frame(CONT, b"cd", masked=role_masked)
            events = []
            for i in range(0, len(wire), 5):
                events += receiver.receive_data(wire[i : i + 5], 0.0)
            assert events == [Message(data=text.decode()), Message(data=b"abcd")]

    def test_fragments_past_max_fragments_fail_1009(self) -> None:
        for masked in (True, False):
            p = Pair(FAST, FAST, max_fragments=3)
            p.handshake()
            receiver = p.server if masked else p.client
            three = frame(BINARY, b"a", fin=False, masked=masked)
            three += frame(CONT, b"b", fin=False, masked=masked) + frame(CONT, b"c", masked=masked)
            assert receiver.receive_data(three, 0.0) == [Message(data=b"abc")]
            four = frame(TEXT, b"a", fin=False, masked=masked)
            four += frame(CONT, b"b", fin=False, masked=masked) * 3
            events = receiver.receive_data(four + frame(PING, b"p", masked=masked), 0.0)
            reason = "message in too many fragments"
            assert events == [Closing(code=1009, reason=reason, by_peer=False), CloseTransport()]
            # Failed at once: the ping after the fourth fragment is not even parsed.
            assert frames_in(receiver.data_to_send()) == [(CLOSE, close_payload(1009, reason))]
            assert receiver.receive_data(frame(CONT, b"z", masked=masked), 0.0) == []

    def test_a_frame_split_across_reads_is_one_fragment(self) -> None:
        p = Pair(FAST, FAST, max_fragments=2)
        p.handshake()
        wire = frame(BINARY, b"x" * 300, fin=False) + frame(CONT, b"y" * 300)
        events = []
        for i in range(0, len(wire), 7):  # many wsproto events per frame
            events += p.server.receive_data(wire[i : i + 7], 0.0)
        assert events == [Message(data=b"x" * 300 + b"y" * 300)]

    def test_a_fragmented_message_is_held_in_one_buffer(self) -> None:
        # 1,000 two-byte fragments: the pending message is one bytearray of 2,000
        # bytes, not an object per fragment.
        p = Pair(FAST, FAST)
        p.handshake()
        wire = frame(TEXT, b"ab", fin=False) + frame(CONT, b"cd", fin=False) * 998
        assert p.server.receive_data(wire, 0.0) == []
        assert p.server._partial == b"ab" + b"cd" * 998
        assert p.server.receive_data(frame(CONT, b"!"), 0.0) == [
            Message(data="ab" + "cd" * 998 + "!")
        ]
        assert p.server._partial is None

    def test_messages_while_closing_are_dropped(self, pair: Pair) -> None:
        pair.server.close(0.0)
        assert pair.server.receive_data(frame(TEXT, b"a", fin=False), 0.0) == []
        assert pair.server.receive_data(frame(CONT, b"b"), 0.0) == []


class TestAppLevel:
    def test_app_heartbeat_round_trip(self) -> None:
        app = HeartbeatConfig(interval=1, timeout=1, style=HeartbeatStyle.APP)
        p = Pair(app, FAST)
        p.handshake()
        p.now = 1.0
        assert p.client.timer_fired(1.0) == []
        ping = p.client.data_to_send()
        assert frames_in(ping) == [(TEXT, b'{"type":"ping"}')]
        assert p.server.receive_data(ping, 1.0) == []  # consumed, not a Message
        reply = p.server.data_to_send()
        assert frames_in(reply) == [(TEXT, b'{"type":"pong"}')]
        assert p.client.receive_data(reply, 1.25) == [RttSample(seq=1, rtt=0.25)]
        assert p.client.deadline == 2.25

    def test_json_variants_are_recognised(self, pair: Pair) -> None:
        events = pair.server.receive_data(frame(TEXT, b'{"type": "ping", "ts": 5}'), 0.0)
        assert events == []
        assert frames_in(pair.server.data_to_send()) == [(TEXT, b'{"type":"pong"}')]

    def test_a_pong_message_is_consumed(self, pair: Pair) -> None:
        assert pair.server.receive_data(frame(TEXT, b'{"type":"pong"}'), 0.0) == []

    def test_binary_heartbeat_lookalike_is_a_message(self, pair: Pair) -> None:
        events = pair.server.receive_data(frame(BINARY, b'{"type":"ping"}'), 0.0)
        assert events == [Message(data=b'{"type":"ping"}')]

    def test_not_classified_when_off(self) -> None:
        cfg = HeartbeatConfig(answer_app_pings=False)
        p = Pair(cfg, cfg)
        p.handshake()
        assert p.server.receive_data(frame(TEXT, b'{"type":"ping"}'), 0.0) == [
            Message(data='{"type":"ping"}')
        ]

    def test_custom_codec(self) -> None:
        codec = AppCodec(ping_text="hb?", pong_text="hb!", json_type_key=None)
        cfg = HeartbeatConfig(interval=1, timeout=1, style=HeartbeatStyle.APP)
        p = Pair(cfg, cfg, codec=codec)
        p.handshake()
        p.now = 1.0
        p.client.timer_fired(1.0)
        client_events, server_events = p.pump()
        assert server_events == []
        assert client_events == [RttSample(seq=1, rtt=0.0)]


class TestHeartbeats:
    def test_protocol_heartbeat_round_trip(self, pair: Pair) -> None:
        assert pair.client.timer_fired(1.0) == []
        ping = pair.client.data_to_send()
        assert frames_in(ping) == [(PING, b"1")]
        assert pair.server.receive_data(ping, 1.0) == []
        pong = pair.server.data_to_send()
        assert frames_in(pong) == [(PONG, b"1")]
        assert pair.client.receive_data(pong, 1.5) == [RttSample(seq=1, rtt=0.5)]
        assert pair.client.stats.pongs_received == 1
        assert pair.client.deadline == 2.5

    def test_early_timer_does_nothing(self, pair: Pair) -> None:
        assert pair.client.timer_fired(0.5) == []
        assert pair.client.data_to_send() == b""

    def test_user_ping_is_answered_and_timed(self, pair: Pair) -> None:
        payload = pair.client.ping(0.0)
        assert payload == b"u1"
        pair.now = 0.25
        client_events, _ = pair.pump()
        assert client_events == [PingAnswered(payload=b"u1", rtt=0.25)]
        assert pair.client.stats.pings_sent == 0  # not a heartbeat
        with pytest.raises(LocalProtocolError, match="backwards"):
            pair.client.ping(0.1)

    def test_a_coalesced_pong_answers_the_heartbeat_too(self) -> None:
        # Regression: the peer answered our heartbeat ping and a ping() sent right after
        # it with one pong (for the latter, as RFC 6455 5.5.3 allows). With PONG_ONLY,
        # the heartbeat went unanswered and a healthy peer was declared dead.
        strict = HeartbeatConfig(interval=1, timeout=1, liveness=Liveness.PONG_ONLY)
        p = Pair(strict, FAST)
        p.handshake()
        p.now = 1.0
        p.client.timer_fired(1.0)
        p.client.ping(1.0)
        p.now = 1.25
        client_events, _ = p.pump()
        assert client_events == [
            PingAnswered(payload=b"u1", rtt=0.25),
            RttSample(seq=1, rtt=0.25),
        ]
        assert p.client.timer_fired(2.0) == []
        assert p.client.phase is HeartbeatPhase.IDLE

    def test_a_ping_after_the_answer_does_not_answer_again(self, pair: Pair) -> None:
        pair.now = 1.0
        pair.client.timer_fired(1.0)
        pair.pump()  # heartbeat 1 answered
        pair.client.ping(1.0)
        client_events, _ = pair.pump()
        assert [type(e) for e in client_events] == [PingAnswered]
        assert pair.client.stats.pongs_received == 1

    def test_a_pong_answers_every_earlier_ping(self, pair: Pair) -> None:
        # Regression: the peer answered only the latest of a burst (RFC 6455 5.5.3, and
        # what our own side does); the earlier ping() calls were never answered, so a
        # driver awaiting them waited forever.
        pair.client.ping(0.0)
        pair.client.ping(0.1)
        pair.client.ping(0.2)
        pair.now = 0.3
        client_events, _ = pair.pump()
        assert client_events == [
            PingAnswered(payload=b"u1", rtt=0.3),
            PingAnswered(payload=b"u2", rtt=pytest.approx(0.2)),  # type: ignore[arg-type]
            PingAnswered(payload=b"u3", rtt=pytest.approx(0.1)),  # type: ignore[arg-type]
        ]

    def test_a_heartbeat_pong_answers_the_pings_sent_before_it(self, pair: Pair) -> None:
        pair.client.ping(0.5)  # u1, before heartbeat 1
        pair.client.timer_fired(1.0)  # heartbeat 1
        pair.client.ping(1.0)  # u2, after it
        pair.client.data_to_send()
        events = pair.client.receive_data(frame(PONG, b"1", masked=False), 1.5)
        assert events == [PingAnswered(payload=b"u1", rtt=1.0), RttSample(seq=1, rtt=0.5)]
        events = pair.client.receive_data(frame(PONG, b"u2", masked=False), 1.6)
        assert events == [PingAnswered(payload=b"u2", rtt=pytest.approx(0.6))]  # type: ignore[arg-type]
        assert pair.client.stats.pongs_received == 1

    def test_a_heartbeat_pong_with_only_earlier_pings_pending(self, pair: Pair) -> None:
        pair.client.ping(0.5)
        pair.client.ping(0.75)
        pair.client.timer_fired(1.0)
        pair.client.data_to_send()
        events = pair.client.receive_data(frame(PONG, b"1", masked=False), 1.5)
        assert events == [
            PingAnswered(payload=b"u1", rtt=1.0),
            PingAnswered(payload=b"u2", rtt=0.75),
            RttSample(seq=1, rtt=0.5),
        ]

    def test_a_heartbeat_pong_with_only_later_pings_pending(self, pair: Pair) -> None:
        pair.client.timer_fired(1.0)
        pair.client.ping(1.0)
        pair.client.data_to_send()
        events = pair.client.receive_data(frame(PONG, b"1", masked=False), 1.5)
        assert events == [RttSample(seq=1, rtt=0.5)]

    def test_a_burst_of_pings_gets_one_pong(self, pair: Pair) -> None:
        events = pair.server.receive_data(
            frame(PING, b"a") + frame(PING, b"b") + frame(PING, b"c"), 0.0
        )
        assert events == []
        assert frames_in(pair.server.data_to_send()) == [(PONG, b"c")]
        assert pair.server.stats.peer_pings == 3

    def test_ping_flood_closes_1008_and_sends_no_pong(self) -> None:
        strict = HeartbeatConfig(peer_ping_max_strikes=1)
        p = Pair(strict, strict)
        p.handshake()
        events = p.server.receive_data(frame(PING, b"a") + frame(PING, b"b") + frame(PING, b"c"), 0)
        assert events[0] == Closing(code=1008, reason="too many pings", by_peer=False)
        assert events[1:] in ([], [CloseTransport()])  # waiting for the peer, or dropping it
        assert frames_in(p.server.data_to_send()) == [
            (CLOSE, close_payload(1008, b"too many pings"))
        ]

    def test_dead_peer_is_dropped_without_waiting_for_it(self, pair: Pair) -> None:
        pair.now = 1.0
        pair.client.timer_fired(1.0)
        pair.client.data_to_send()  # the ping is lost: the peer is frozen
        assert pair.client.timer_fired(1.9) == []
        events = pair.client.timer_fired(2.0)
        assert events == [
            PeerDead(seq=1, waited=1.0),
            Closing(code=1011, reason=HEARTBEAT_TIMEOUT_REASON, by_peer=False),
            CloseTransport(),
        ]
        assert frames_in(pair.client.data_to_send()) == [
            (CLOSE, close_payload(1011, b"heartbeat-timeout"))
        ]
        assert pair.client.deadline == 4.0
        assert pair.client.timer_fired(4.0) == [Abort()]
        assert pair.client.timer_fired(5.0) == []
        assert pair.client.connection_lost(5.0) == [
            Closed(code=1011, reason=HEARTBEAT_TIMEOUT_REASON, by="local")
        ]


class TestClose:
    def test_close_handshake(self, pair: Pair) -> None:
        assert pair.client.close(0.0, 1001, "bye") == [
            Closing(code=1001, reason="bye", by_peer=False)
        ]
        assert pair.client.close(0.0) == []  # twice is harmless
        with pytest.raises(ConnectionClosedError, match="closing"):
            pair.client.send("x")
        with pytest.raises(ConnectionClosedError):
            pair.client.ping(0.0)
        client_events, server_events = pair.pump()
        assert server_events == [Closing(code=1001, reason="bye", by_peer=True), CloseTransport()]
        assert client_events == [CloseTransport()]
        assert pair.client.phase is pair.server.phase is HeartbeatPhase.DRAINING
        assert pair.server.close_code == 1001 and pair.server.closed_by == "remote"
        assert type(server_events[0].code) is int  # type: ignore[union-attr]  # not an enum
        assert pair.client.connection_lost(0.5) == [Closed(code=1001, reason="bye", by="local")]
        assert pair.server.connection_lost(0.5) == [Closed(code=1001, reason="bye", by="remote")]
        with pytest.raises(LocalProtocolError, match="twice"):
            pair.client.connection_lost(0.6)
        with pytest.raises(LocalProtocolError):
            pair.client.receive_data(b"x", 0.7)

    def test_close_without_an_answer_aborts(self, pair: Pair) -> None:
        pair.client.close(0.0)
        pair.client.data_to_send()
        assert pair.client.deadline == 2.0
        assert pair.client.timer_fired(2.0) == [Abort()]

    def test_peer_close_without_reason(self, pair: Pair) -> None:
        events = pair.server.receive_data(frame(CLOSE, b""), 0.0)
        assert events == [Closing(code=1005, reason="", by_peer=True), CloseTransport()]
        assert frames_in(pair.server.data_to_send()) == [(CLOSE, close_payload(1000))]

    @pytest.mark.parametrize("code", [1000, 1001, 3000, 4999])
    def test_peer_close_code_is_echoed(self, pair: Pair, code: int) -> None:
        pair.server.receive_data(frame(CLOSE, close_payload(code, b"why")), 0.0)
        assert frames_in(pair.server.data_to_send()) == [(CLOSE, close_payload(code))]

    def test_bytes_after_the_close_handshake_are_ignored(self, pair: Pair) -> None:
        pair.client.close(0.0)
        pair.pump()
        assert pair.client.receive_data(b"\x81\x00", 0.5) == []
        with pytest.raises(LocalProtocolError, match="backwards"):
            pair.client.receive_data(b"\x81\x00", 0.1)

    def test_close_before_open_just_releases(self) -> None:
        client = HeartbeatConnection(Role.CLIENT)
        client.initiate("h")
        assert client.close(1.0) == [CloseTransport()]
        assert client.close(1.0) == []
        client.timer_fired(1.5)
        with pytest.raises(LocalProtocolError, match="backwards"):
            client.close(0.5)
        assert client.connection_lost(2.0) == [Closed(code=1006, reason="", by="local")]

    def test_close_validates_before_anything(self, pair: Pair) -> None:
        with pytest.raises(LocalProtocolError, match="1005"):
            pair.client.close(0.0, 1005)
        assert pair.client.is_open


class TestErrors:
    @pytest.mark.parametrize(
        ("data", "code"),
        [
            (frame(TEXT, b"x", masked=False), 1002),  # a client must mask
            (frame(0x3, b""), 1002),  # reserved opcode
            (frame(TEXT, b"\xff\xfe"), 1007),  # invalid UTF-8
            (frame(PING, b"p" * 126), 1002),  # control frame too long
        ],
    )
    def test_bad_frames_close_and_drop(self, pair: Pair, data: bytes, code: int) -> None:
        events = pair.server.receive_data(data, 0.0)
        (closing, close_transport) = events
        assert isinstance(closing, Closing) and closing.code == code and not closing.by_peer
        assert close_transport == CloseTransport()
        ((opcode, payload),) = frames_in(pair.server.data_to_send())
        assert opcode == CLOSE and payload[:2] == code.to_bytes(2, "big")
        assert len(payload) <= 125
        assert pair.server.phase is HeartbeatPhase.DRAINING
        assert pair.server.connection_lost(1.0)[0].code == code  # type: ignore[union-attr]

    def test_bad_frame_while_closing(self, pair: Pair) -> None:
        pair.server.close(0.0)
        pair.server.data_to_send()
        events = pair.server.receive_data(frame(0x3), 0.1)
        assert events == [CloseTransport()]

    def test_bad_frame_after_the_peer_closed(self, pair: Pair) -> None:
        pair.server.receive_data(frame(CLOSE, close_payload(1000)), 0.0)
        pair.server.data_to_send()
        assert pair.server.receive_data(frame(0x3), 0.1) == []

    def test_eof(self, pair: Pair) -> None:
        assert pair.server.receive_data(None, 0.5) == [CloseTransport()]
        assert pair.server.receive_data(None, 0.6) == []
        assert pair.server.timer_fired(1.0) == []  # no heartbeat on a stream that ended
        assert pair.server.connection_lost(1.0) == [Closed(code=1006, reason="", by="remote")]

    def test_eof_time_must_not_run_backwards(self, pair: Pair) -> None:
        pair.server.receive_data(b"", 0.5)
        with pytest.raises(LocalProtocolError, match="backwards"):
            pair.server.receive_data(None, 0.1)

    def test_eof_during_the_handshake(self) -> None:
        server = HeartbeatConnection(Role.SERVER)
        assert server.receive_data(None, 0.0) == [CloseTransport()]
        assert server.connection_lost(0.0) == [Closed(code=1006, reason="", by="remote")]

    def test_connection_lost_while_open(self, pair: Pair) -> None:
        assert pair.client.connection_lost(3.0) == [Closed(code=1006, reason="", by="remote")]
        assert pair.client.phase is HeartbeatPhase.CLOSED and pair.client.deadline is None
        with pytest.raises(ConnectionClosedError, match="closed") as info:
            pair.client.send("x")
        assert info.value.code == 1006


class TestAfterTheEnd:
    def test_late_input_does_not_swallow_the_abort(self, pair: Pair) -> None:
        # Regression: input after CloseTransport was "validated" by feeding the core a
        # TimerFired, which fired the abort deadline and threw the Abort away.
        pair.client.close(0.0)
        pair.pump()
        assert pair.client.deadline == 2.0
        assert pair.client.receive_data(b"late junk", 3.0) == []
        assert pair.client.deadline == 2.0
        assert pair.client.timer_fired(3.0) == [Abort()]

    def test_no_open_after_close_before_open(self) -> None:
        p = Pair(FAST, FAST)
        p.client.initiate("h")
        p.to_server()
        p.server.accept(now=0.0)
        assert p.client.close(0.0) == [CloseTransport()]
        assert p.to_client() == []  # the 101 that crossed our close is not acted on
        # Released, bounded by close_timeout (rule fail): never open.
        assert p.client.phase is HeartbeatPhase.DRAINING and p.client.deadline == 2.0

    def test_receive_after_connection_lost(self, pair: Pair) -> None:
        pair.client.connection_lost(1.0)
        with pytest.raises(LocalProtocolError, match="after connection_lost"):
            pair.client.receive_data(b"x", 2.0)

    def test_eof_while_closing(self, pair: Pair) -> None:
        pair.client.close(0.0, 1001)
        pair.client.data_to_send()
        assert pair.client.receive_data(None, 0.5) == [CloseTransport()]
        assert pair.client.timer_fired(2.0) == [Abort()]
        assert pair.client.connection_lost(2.5) == [Closed(code=1001, reason="", by="local")]

    def test_reject_body_in_pieces(self) -> None:
        client = HeartbeatConnection(Role.CLIENT)
        client.initiate("h")
        head = b"HTTP/1.1 403 Forbidden\r\ncontent-length: 7\r\n\r\n"
        assert client.receive_data(head + b"go", 0.0) == []
        events = client.receive_data(b" away", 0.0)
        assert events == [
            Rejected(status=403, headers=[(b"content-length", b"7")], body=b"go away"),
            CloseTransport(),
        ]

    def test_no_pong_after_the_peer_closed(self, pair: Pair) -> None:
        events = pair.server.receive_data(frame(PING, b"p") + frame(CLOSE, close_payload(1000)), 0)
        assert events == [Closing(code=1000, reason="", by_peer=True), CloseTransport()]
        assert frames_in(pair.server.data_to_send()) == [(CLOSE, close_payload(1000))]

    def test_nothing_is_parsed_after_a_flood(self) -> None:
        strict = HeartbeatConfig(peer_ping_max_strikes=0)
        p = Pair(strict, strict)
        p.handshake()
        events = p.server.receive_data(frame(PING) + frame(PING) + frame(TEXT, b"after"), 0.0)
        assert Message(data="after") not in events
        assert events[-1] == CloseTransport()

    def test_stray_pongs_are_a_flood_too(self) -> None:
        strict = HeartbeatConfig(peer_ping_max_strikes=1)
        p = Pair(strict, strict)
        p.handshake()
        assert p.server.receive_data(frame(PONG, b"?"), 0.0) == []
        assert p.server.receive_data(frame(PONG, b"?"), 1.0) == []  # spaced: no strike
        events = p.server.receive_data(frame(PONG, b"?") + frame(PONG) + frame(PONG), 1.0)
        assert events[0] == Closing(code=1008, reason="too many pongs", by_peer=False)
        assert events[-1] == CloseTransport()

    def test_stray_pongs_one_per_read_are_a_flood_too(self) -> None:
        # Each read is exactly one masked pong: the server's shortest path, which must
        # count strikes and fail the connection as the general path does.
        strict = HeartbeatConfig(peer_ping_max_strikes=1)
        p = Pair(strict, strict)
        p.handshake()
        assert p.server.receive_data(frame(PONG, b"?"), 0.0) == []
        assert p.server.receive_data(frame(PONG, b"?"), 0.0) == []  # the first strike
        events = p.server.receive_data(frame(PONG, b"?"), 0.0)  # one too many
        reason = "too many pongs"
        assert events == [Closing(code=1008, reason=reason, by_peer=False), CloseTransport()]
        assert frames_in(p.server.data_to_send()) == [(CLOSE, close_payload(1008, reason.encode()))]

    def test_a_client_fails_a_stray_pong_flood_too(self) -> None:
        strict = HeartbeatConfig(peer_ping_max_strikes=1)
        p = Pair(strict, strict)
        p.handshake()
        events = p.client.receive_data(frame(PONG, b"?", masked=False) * 3, 0.5)
        reason = "too many pongs"
        assert events == [Closing(code=1008, reason=reason, by_peer=False), CloseTransport()]
        sent = frames_in(p.client.data_to_send())
        assert sent == [(CLOSE, close_payload(1008, reason.encode()))]
        assert p.client.connection_lost(0.6) == [Closed(code=1008, reason=reason, by="local")]

    def test_pongs_to_our_pings_are_never_strikes(self) -> None:
        # Each answers a ping() sent after heartbeat 1, which was answered already: the
        # state learns nothing about heartbeats from them, yet they are not stray.
        strict = HeartbeatConfig(interval=1, timeout=1, peer_ping_max_strikes=0)
        p = Pair(strict, strict)
        p.handshake()
        p.now = 1.0
        p.client.timer_fired(1.0)
        p.pump()  # heartbeat 1 answered
        payloads = [p.client.ping(1.0) for _ in range(5)]
        answers = b"".join(frame(PONG, x, masked=False) for x in payloads)
        events = p.client.receive_data(answers, 1.1)
        assert [type(e) for e in events] == [PingAnswered] * 5
        assert p.client.is_open
        # Answers to heartbeat 1 again (replays) are stray pongs.
        assert p.client.receive_data(frame(PONG, b"1", masked=False), 1.2) == []
        events = p.client.receive_data(frame(PONG, b"1", masked=False), 1.2)
        assert events[0] == Closing(code=1008, reason="too many pongs", by_peer=False)

    def test_pong_while_closing_is_ignored(self, pair: Pair) -> None:
        pair.server.close(0.0)
        assert pair.server.receive_data(frame(PONG, b"?") * 5, 0.0) == []

    def test_calls_after_connection_lost_raise(self, pair: Pair) -> None:
        pair.client.connection_lost(1.0)
        for call in (
            lambda: pair.client.close(2.0),
            lambda: pair.client.timer_fired(2.0),
            lambda: pair.client.receive_data(None, 2.0),
        ):
            with pytest.raises(LocalProtocolError):
                call()
        with pytest.raises(ConnectionClosedError):
            pair.client.ping(2.0)
        assert pair.client.phase is HeartbeatPhase.CLOSED
