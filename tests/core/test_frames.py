"""The hot-path framing (heartbeat_core.frames) agrees with wsproto, and a server
connection behaves the same whether or not its reads take the fast path."""

from __future__ import annotations

import os

import wsproto.frame_protocol as fp
from hypothesis import example, given, settings
from hypothesis import strategies as st

from heartbeat_core import HeartbeatConfig, HeartbeatConnection, Role, RttSample
from heartbeat_core.frames import (
    MAX_SIMPLE_RUN,
    OP_BINARY,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    FrameBoundary,
    server_data_frame,
    server_frame,
    simple_prefix,
    unmask,
    unmask_frame,
)
from tests.support import frames as wsframes

CLIENT = fp.FrameProtocol(client=True, extensions=[])


def simple_frames(data: bytes, masked: bool) -> list[tuple[int, bytes]] | None:
    """``data`` as simple frames if it is nothing else (see ``simple_prefix``)."""
    frames, used, more = simple_prefix(data, masked)
    return frames if used == len(data) and not more else None


def _frames(kinds: list[tuple[str, bytes]]) -> list[bytes]:
    out = []
    for kind, payload in kinds:
        if kind == "ping":
            out.append(bytes(CLIENT.ping(payload[:125])))
        elif kind == "pong":
            out.append(bytes(CLIENT.pong(payload[:125])))
        else:
            out.append(bytes(CLIENT.send_data(payload, True)))
    return out


frame_lists = st.lists(
    st.tuples(
        st.sampled_from(["ping", "pong", "data"]),
        st.one_of(st.binary(max_size=130), st.binary(min_size=126, max_size=70_000)),
    ),
    min_size=1,
    max_size=6,
)


@settings(max_examples=150, deadline=None)
@given(kinds=frame_lists, cuts=st.lists(st.integers(min_value=1), max_size=8))
def test_boundary_tracker_knows_where_frames_end(
    kinds: list[tuple[str, bytes]], cuts: list[int]
) -> None:
    frames = _frames(kinds)
    stream = b"".join(frames)
    ends, total = set(), 0
    for frame in frames:
        total += len(frame)
        ends.add(total)
    points = [*sorted({c % len(stream) for c in cuts} - {0}), len(stream)]
    tracker, prev = FrameBoundary(), 0
    for point in points:
        tracker.feed(stream[prev:point])
        prev = point
        assert tracker.between_frames == (point in ends)


def test_simple_frames_unmask_runs_of_pings_pongs_and_whole_messages() -> None:
    run = _frames([("pong", b"17"), ("ping", b""), ("pong", b"x" * 125)])
    assert simple_frames(b"".join(run), masked=True) == [
        (OP_PONG, b"17"),
        (OP_PING, b""),
        (OP_PONG, b"x" * 125),
    ]
    data = _frames([("pong", b"1"), ("data", b"hello")])
    assert simple_frames(b"".join(data), masked=True) == [(OP_PONG, b"1"), (OP_BINARY, b"hello")]
    close = bytes(CLIENT.close(1000, "bye"))
    assert simple_frames(run[0] + close, masked=True) is None  # a close frame: general path
    assert simple_frames(run[0][:-1], masked=True) is None  # incomplete
    assert simple_frames(run[0], masked=False) is None  # masking is wrong for this side
    assert simple_frames(b"\x8a", masked=True) is None
    unfinished = bytes([0x0A]) + run[0][1:]  # FIN clear: a fragmented control frame
    assert simple_frames(unfinished, masked=True) is None
    reserved = bytes([0xCA]) + run[0][1:]  # RSV1 set
    assert simple_frames(reserved, masked=True) is None
    assert simple_frames(server_frame(OP_PING, b"ab"), masked=False) == [(OP_PING, b"ab")]


@settings(max_examples=300, deadline=None)
@given(
    opcode=st.sampled_from([OP_PING, OP_PONG]),
    payload=st.binary(max_size=125),
    key=st.binary(min_size=4, max_size=4),
    extra=st.sampled_from([b"", b"\x8a\x80abcd"]),
)
def test_simple_frames_unmask_any_key_and_length_like_wsproto(
    opcode: int, payload: bytes, key: bytes, extra: bytes
) -> None:
    # The one-frame shortcut and the general walk must both agree with wsproto.
    header = bytes((0x80 | opcode, 0x80 | len(payload))) + key
    masked = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
    frame = header + masked
    parsed = fp.FrameProtocol(client=False, extensions=[])
    parsed.receive_bytes(frame + extra)
    want = [(int(f.opcode), bytes(f.payload)) for f in parsed.received_frames()]
    assert simple_frames(frame + extra, masked=True) == want
    if len(payload) >= 1:  # a length that promises one byte more than there is
        short = bytes((0x80 | opcode, 0x80 | len(payload))) + key + masked[:-1]
        assert simple_frames(short, masked=True) is None


@settings(max_examples=300, deadline=None)
@given(payload=st.binary(max_size=125), key=st.binary(min_size=4, max_size=4))
def test_a_whole_short_frame_unmasks_alike_both_ways(payload: bytes, key: bytes) -> None:
    # unmask_frame (one integer for the whole frame) against unmask and the definition.
    frame = bytes((0x8A, 0x80 | len(payload))) + key
    frame += bytes(b ^ key[i % 4] for i, b in enumerate(payload))
    assert unmask_frame(frame, len(payload)) == unmask(frame, 2, len(payload)) == payload


def _wire(kind: str, payload: bytes, key: bytes, fin: bool = True) -> bytes:
    """One masked frame by hand (any opcode, any length encoding wsproto would use)."""
    opcode = {"text": 0x1, "binary": 0x2, "ping": 0x9, "pong": 0xA, "close": 0x8, "cont": 0x0}
    return wsframes.frame(opcode[kind], payload, fin=fin, mask=key)


simple_kinds = st.lists(
    st.tuples(
        st.sampled_from(["text", "binary", "ping", "pong", "close", "cont"]),
        st.one_of(st.binary(max_size=130), st.binary(min_size=126, max_size=400)),
        st.binary(min_size=4, max_size=4),
        st.booleans(),
    ),
    min_size=1,
    max_size=5,
)


@settings(max_examples=200, deadline=None)
@given(kinds=simple_kinds)
def test_simple_frames_take_whole_short_messages_and_controls_only(
    kinds: list[tuple[str, bytes, bytes, bool]],
) -> None:
    frames, want, simple = [], [], True
    for kind, raw, key, more in kinds:
        control = kind in ("ping", "pong", "close")
        # (Control frames longer than 125 bytes or fragmented are illegal: not generated.)
        payload, fin = (raw[:125], True) if control else (raw, more)
        frames.append(_wire(kind, payload, key, fin))
        want.append(({"text": OP_TEXT, "binary": OP_BINARY}.get(kind, 0), payload))
        if kind in ("ping", "pong"):
            want[-1] = (OP_PING if kind == "ping" else OP_PONG, payload)
        simple = simple and fin and kind not in ("close", "cont")
    stream = b"".join(frames)
    got = simple_frames(stream, masked=True)
    assert got == (want if simple else None)
    ends = {sum(len(f) for f in frames[: i + 1]) for i in range(len(frames))}
    for cut in (1, len(stream) // 2, len(stream) - 1):
        if 0 < cut < len(stream) and cut not in ends:
            assert simple_frames(stream[:cut], masked=True) is None  # a partial frame


def test_simple_frames_refuse_a_long_length_encoding_of_a_short_payload() -> None:
    # RFC 6455 5.2: the minimal number of bytes must encode the length; wsproto fails it.
    key = b"abcd"
    honest = _wire("binary", b"x" * 200, key)
    assert simple_frames(honest, masked=True) == [(OP_BINARY, b"x" * 200)]
    padded = bytes((0x82, 0x80 | 126)) + (5).to_bytes(2, "big") + key + b"hello"
    assert simple_frames(padded, masked=True) is None
    assert simple_frames(bytes((0x82, 0x80 | 126, 0x01)), masked=True) is None  # cut length
    # The 16-bit length's ends: 65535 bytes is taken, 65536 (a 64-bit length) is not.
    assert simple_frames(_wire("binary", b"y" * 65535, key), masked=True) == [
        (OP_BINARY, b"y" * 65535)
    ]
    assert simple_frames(_wire("binary", b"y" * 65536, key), masked=True) is None
    long_ping = bytes((0x89, 0x80 | 126)) + (200).to_bytes(2, "big") + key + b"x" * 200
    assert simple_frames(long_ping, masked=True) is None
    unmasked = server_frame(OP_PING, b"ab") + bytes((0x81, 2)) + b"hi"
    assert simple_frames(unmasked, masked=False) == [(OP_PING, b"ab"), (OP_TEXT, b"hi")]
    assert simple_frames(unmasked, masked=True) is None


def _open_server(config: HeartbeatConfig, first_frames: bytes = b"") -> HeartbeatConnection:
    client = HeartbeatConnection(Role.CLIENT, config)
    client.initiate("localhost", "/")
    server = HeartbeatConnection(Role.SERVER, config)
    server.receive_data(client.data_to_send() + first_frames, 0.0)
    server.accept(now=0.0)
    server.data_to_send()
    return server


@settings(max_examples=100, deadline=None)
@given(kinds=frame_lists, cuts=st.lists(st.integers(min_value=1), max_size=8))
def test_server_events_do_not_depend_on_how_reads_are_cut(
    kinds: list[tuple[str, bytes]], cuts: list[int]
) -> None:
    config = HeartbeatConfig(interval=1.0, timeout=1.0, peer_ping_max_strikes=1000)
    stream = b"".join(_frames(kinds))
    whole = _open_server(config)
    expected = whole.receive_data(stream, 0.5)
    expected_out = whole.data_to_send()
    pieces = _open_server(config)
    got, out, prev = [], b"", 0
    for point in [*sorted({c % len(stream) for c in cuts} - {0}), len(stream)]:
        got += pieces.receive_data(stream[prev:point], 0.5)
        out += pieces.data_to_send()
        prev = point
    assert got == expected
    # Pongs to a burst may be coalesced differently; the last answer is the same.
    assert out.rsplit(b"\x8a", 1)[-1] == expected_out.rsplit(b"\x8a", 1)[-1]


def test_frames_that_arrive_with_the_upgrade_request_are_tracked() -> None:
    config = HeartbeatConfig(interval=1.0, timeout=1.0)
    half = _frames([("data", os.urandom(300))])[0]
    server = _open_server(config, first_frames=half[:100])
    events = server.receive_data(half[100:], 0.1)
    assert [type(e).__name__ for e in events] == ["Message"]
    assert server.timer_fired(1.1) == []
    ping = server.data_to_send()
    assert ping[:1] == b"\x89"
    pong = bytes(CLIENT.pong(ping[2:]))
    assert [type(e) for e in server.receive_data(pong, 1.2)] == [RttSample]


def test_messages_after_an_application_ping_flood_in_one_read_are_dropped() -> None:
    # The flood rule fails the connection (1008) in the middle of a read, as for protocol
    # pings; the messages after it are not delivered, whether the read takes the fast
    # path or wsproto's.
    config = HeartbeatConfig(
        interval=1.0, timeout=1.0, answer_app_pings=True, peer_ping_max_strikes=1
    )
    ping = bytes(CLIENT.send_data('{"type":"ping"}', True))
    stream = ping * 3 + bytes(CLIENT.send_data("after", True))
    whole = _open_server(config)
    fast = whole.receive_data(stream, 0.5)
    split = _open_server(config)
    slow = [e for i in range(len(stream)) for e in split.receive_data(stream[i : i + 1], 0.5)]
    assert fast == slow
    assert [type(e).__name__ for e in fast] == ["Closing", "CloseTransport"]
    assert whole.data_to_send() == split.data_to_send()


def test_simple_prefix_takes_any_run_and_says_where_it_stopped() -> None:
    pong = _wire("pong", b"1", b"abcd")
    text = _wire("text", b"hello", b"wxyz")
    close = _wire("close", b"\x03\xe8", b"abcd")
    run = (pong + text) * 5000  # far more than one call takes: MAX_SIMPLE_RUN at a time
    frames, used, more = simple_prefix(run, masked=True)
    assert frames == [(OP_PONG, b"1"), (OP_TEXT, b"hello")] * (MAX_SIMPLE_RUN // 2)
    assert (used, more) == (len(pong + text) * MAX_SIMPLE_RUN // 2, False)
    rest, end, more = simple_prefix(run, masked=True, start=used, limit=len(run))
    assert frames + rest == [(OP_PONG, b"1"), (OP_TEXT, b"hello")] * 5000
    assert (end, more) == (len(run), False)
    # Cut inside a simple frame (its header or its payload): the frames before it, and
    # where it starts, for the next read to complete.
    for cut in (1, 2, 5, len(text) - 1):
        assert simple_prefix(pong + text[:cut], masked=True) == ([(OP_PONG, b"1")], 7, True)
    # A frame wsproto must parse: the frames before it, and where it starts.
    assert simple_prefix(pong + close + pong, masked=True) == ([(OP_PONG, b"1")], 7, False)
    assert simple_prefix(pong + close[:1], masked=True) == ([(OP_PONG, b"1")], 7, False)
    cut_long = bytes((0x82, 0x80 | 127)) + b"\0" * 3  # a 64-bit length: never simple
    assert simple_prefix(cut_long, masked=True) == ([], 0, False)
    assert simple_prefix(b"", masked=True) == ([], 0, False)


def test_a_flood_of_pings_in_one_read_is_failed_without_a_pong() -> None:
    from heartbeat_core import CloseTransport, Closing

    config = HeartbeatConfig(interval=1.0, timeout=1.0, peer_ping_max_strikes=100)
    server = _open_server(config)
    ping = _wire("ping", b"p", b"abcd")
    events = server.receive_data(ping * (MAX_SIMPLE_RUN * 40), 0.5)
    assert events == [Closing(code=1008, reason="too many pings", by_peer=False), CloseTransport()]
    out = server.data_to_send()
    assert out[:1] == b"\x88" and b"\x8a" not in out  # one close frame, no pong


def test_a_long_run_of_short_messages_is_read_without_wsproto() -> None:
    # A busy peer's messages, read 4,096 bytes at a time: each read ends inside a
    # frame, whose start the fast path keeps for the next read. wsproto is never made.
    config = HeartbeatConfig(interval=1.0, timeout=1.0)
    server = _open_server(config)
    messages = [f"message {i}" for i in range(3000)]
    stream = b"".join(
        _wire("text", m.encode(), b"k%03d" % (i % 1000)) for i, m in enumerate(messages)
    )
    got: list[object] = []
    for at in range(0, len(stream), 4096):
        got += server.receive_data(stream[at : at + 4096], 0.5)
        assert len(server._tail) < 64
    assert [e.data for e in got] == messages  # type: ignore[attr-defined]
    assert server._ws is None and server._tail == b""


def test_invalid_utf8_fails_with_one_reason_however_the_reads_are_cut() -> None:
    from heartbeat_core import CloseTransport, Closing

    config = HeartbeatConfig(interval=1.0, timeout=1.0)
    bad = _wire("text", b"ok \xff\xfe then more", b"abcd")
    whole = _open_server(config).receive_data(bad, 0.5)
    split = _open_server(config)
    bytewise = [e for i in range(len(bad)) for e in split.receive_data(bad[i : i + 1], 0.5)]
    want = [Closing(code=1007, reason="invalid UTF-8 in a text message", by_peer=False)]
    assert whole == bytewise == [*want, CloseTransport()]


@settings(max_examples=60, deadline=None)
@given(
    before=st.integers(MAX_SIMPLE_RUN - 2, 2 * MAX_SIMPLE_RUN + 2),
    kinds=simple_kinds,
    cut=st.integers(0, 40),
)
@example(  # a ping ends the first run; the next frame fails the connection (1007): the
    # ping is not answered, as wsproto's path does not answer it (pings are answered at
    # the end of the read)
    before=MAX_SIMPLE_RUN - 2,
    kinds=[
        ("text", b"", b"\0\0\0\0", True),
        ("ping", b"", b"\0\0\0\0", False),
        ("text", b"\xf5", b"\0\0\0\0", False),
    ],
    cut=0,
)
def test_a_read_of_several_runs_gives_what_wsproto_gives(
    before: int, kinds: list[tuple[str, bytes, bytes, bool]], cut: int
) -> None:
    # Around the end of the first and second runs of simple frames: then anything
    # (fragments, close frames, long payloads), in two reads cut near the end.
    config = HeartbeatConfig(interval=1.0, timeout=1.0)
    stream = b"".join(_wire("text", b"m%d" % i, b"abcd") for i in range(before))
    for kind, raw, key, more in kinds:
        control = kind in ("ping", "pong", "close")
        payload, fin = (raw[:125], True) if control else (raw, more)
        stream += _wire(kind, payload, key, fin)
    at = max(0, len(stream) - cut)
    seen = []
    for fast in (True, False):
        server = _open_server(config)
        server._fast_path = fast
        events = server.receive_data(stream[:at], 0.5) + server.receive_data(stream[at:], 0.6)
        out = server.data_to_send()
        last_pong = out.rsplit(b"\x8a", 1)[-1] if b"\x8a" in out else None
        seen.append((events, server.phase, server.stats, last_pong))
    assert seen[0] == seen[1]


def test_a_kept_frame_start_is_read_by_wsproto_once_the_close_began() -> None:
    # We start the closing handshake while a frame is half read: the rest of the read
    # goes the general way (no fast path while closing), the kept start with it.
    from heartbeat_core import Closed, CloseTransport

    config = HeartbeatConfig(interval=1.0, timeout=1.0)
    server = _open_server(config)
    text = _wire("text", b"late", b"wxyz")
    assert server.receive_data(text[:3], 0.5) == []
    server.close(0.6, 1000, "bye")
    server.data_to_send()
    close = _wire("close", b"\x03\xe8", b"abcd")
    events = server.receive_data(text[3:] + close, 0.7)
    assert events == [CloseTransport()]  # the message is dropped (closing); the close is read
    assert server._tail == b""
    assert server.connection_lost(0.8) == [Closed(code=1000, reason="bye", by="local")]


def test_a_kept_frame_start_goes_to_wsproto_with_what_follows() -> None:
    # The next read begins a frame wsproto must parse: it gets the kept start too.
    config = HeartbeatConfig(interval=1.0, timeout=1.0)
    server = _open_server(config)
    text = _wire("text", b"hello", b"wxyz")
    first, rest = _wire("text", b"ab", b"abcd", fin=False), _wire("cont", b"cd", b"abcd")
    assert server.receive_data(text[:4], 0.5) == []
    assert server._tail == text[:4]
    events = server.receive_data(text[4:] + first + rest, 0.6)
    assert [e.data for e in events] == ["hello", "abcd"]  # type: ignore[attr-defined]
    assert server._tail == b"" and server._ws is not None


SERVER = fp.FrameProtocol(client=False, extensions=[])


@settings(max_examples=150, deadline=None)
@given(
    text=st.booleans(),
    payload=st.one_of(
        st.binary(max_size=130),
        st.integers(65530, 65540).map(os.urandom),  # both sides of the 16-bit length
    ),
)
def test_server_data_frames_are_byte_for_byte_what_wsproto_sends(
    text: bool, payload: bytes
) -> None:
    if text:
        message = payload.decode("latin-1")  # any code points, some of two UTF-8 bytes
        want = bytes(SERVER.send_data(message, True))
        assert server_data_frame(OP_TEXT, message.encode("utf-8")) == want
    else:
        assert server_data_frame(OP_BINARY, payload) == bytes(SERVER.send_data(payload, True))
