"""Fuzzing ``HeartbeatConnection.receive_data`` with hostile bytes and arbitrary time steps.

Each example builds a connection (server or client, before or after the opening
handshake), a peer byte stream (arbitrary bytes, or valid frames that are then bit-flipped,
truncated, spliced and cut into random chunks) and a schedule interleaving reads, timer
deliveries (early, on time, late), application calls and the end of the stream. A driver
behaving exactly as the contract in ``heartbeat_core.connection`` asks checks, after every
call:

* nothing is raised (the driver never misuses the API, so not even LocalProtocolError);
* while the connection is open it has a finite deadline;
* after ``CloseTransport`` only one ``Abort`` may follow, after ``Abort`` nothing; no bytes
  are queued after the call that asked to close the transport; ``connection_lost`` ends it
  with exactly one ``Closed``;
* what we send parses as legal WebSocket (masking, control frames <= 125 bytes, legal close
  codes, UTF-8 reasons, at most one close frame) and is bounded by what came in: one pong
  per read at most (a ping burst is coalesced), output per call <= input + 1 KiB;
* messages handed to the application respect ``max_message_size``.

``make test`` runs a short, derandomised pass; ``make fuzz`` sets HEARTBEAT_FUZZ_EXAMPLES
for a long random one.
"""

from __future__ import annotations

import math
import os
import random
from collections.abc import Callable
from dataclasses import dataclass, field

from hypothesis import HealthCheck, currently_in_test_context, event, given, settings
from hypothesis import strategies as st

from heartbeat_core import (
    Abort,
    Closed,
    CloseTransport,
    HeartbeatConfig,
    HeartbeatConnection,
    HeartbeatStyle,
    HttpRequest,
    Liveness,
    Message,
    Request,
    Role,
)
from heartbeat_core.wsevents import ConnectionEvent
from tests.support.frames import (
    BINARY,
    CLOSE,
    CONT,
    PING,
    PONG,
    TEXT,
    FrameReader,
    close_payload,
    frame,
    upgrade_request,
    upgrade_response,
)

_LONG = "HEARTBEAT_FUZZ_EXAMPLES" in os.environ
EXAMPLES = int(os.environ.get("HEARTBEAT_FUZZ_EXAMPLES", "120"))
# The short run is derandomised and keeps no example database (same examples every
# run); the long one explores at random and remembers its failures in .hypothesis/.
FUZZ = (
    settings(
        max_examples=EXAMPLES,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    if _LONG
    else settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
)
MAX_SIZE = 64  # a small max_message_size so that 1009 is reached often

# ---------------------------------------------------------------- strategies

_prefixes = st.sampled_from([b"", b"hb-", b"\x00\xff"])


@st.composite
def configs(draw: st.DrawFn) -> tuple[HeartbeatConfig, int]:
    cfg = HeartbeatConfig(
        interval=draw(st.sampled_from([0.2, 1.0])),
        timeout=draw(st.sampled_from([0.1, 0.5])),
        close_timeout=draw(st.sampled_from([0.0, 0.3])),
        style=draw(st.sampled_from(list(HeartbeatStyle))),
        liveness=draw(st.sampled_from(list(Liveness))),
        fixed_rate=draw(st.booleans()),
        adaptive_timeout=draw(st.booleans()),
        min_timeout=0.05,
        jitter=draw(st.sampled_from([0.0, 0.3])),
        peer_ping_max_strikes=draw(st.integers(0, 4)),
        peer_ping_min_interval=draw(st.sampled_from([0.0, 0.05])),
        answer_app_pings=draw(st.booleans()),
        payload_prefix=draw(_prefixes),
    )
    return cfg, draw(st.integers(0, 2**32))


_texts = st.text(max_size=40)
_small_bytes = st.binary(max_size=40)
_ctrl_payloads = st.binary(max_size=125)


@st.composite
def pieces(draw: st.DrawFn) -> Callable[[bytes | None, bytes], bytes]:
    """One logical piece of a peer's stream, as a function of (mask, ping prefix)."""
    kind = draw(
        st.sampled_from(
            [
                "text",
                "binary",
                "app_ping",
                "app_pong",
                "app_nested",
                "ping",
                "pong_ours",
                "pong_random",
                "fragmented",
                "frag_with_ping",
                "close",
                "raw",
                "rsv",
                "bad_opcode",
                "long_control",
                "fragmented_ping",
                "bad_utf8",
                "wrong_mask",
                "big",
                "lying_length",
            ]
        )
    )
    if kind == "text":
        t = draw(_texts)
        return lambda m, p: frame(TEXT, t.encode(), mask=m)
    if kind == "binary":
        b = draw(_small_bytes)
        return lambda m, p: frame(BINARY, b, mask=m)
    if kind in ("app_ping", "app_pong", "app_nested"):
        t = {
            "app_ping": '{"type":"ping"}',
            "app_pong": '{"type": "pong", "ts": 1}',
            "app_nested": '{"data":{"type":"ping"}}',
        }[kind]
        return lambda m, p: frame(TEXT, t.encode(), mask=m)
    if kind == "ping":
        b = draw(_ctrl_payloads)
        return lambda m, p: frame(PING, b, mask=m)
    if kind == "pong_ours":
        suffix = draw(st.sampled_from([b"1", b"2", b"3", b"u1", b"0", b"99999999999999999999"]))
        return lambda m, p: frame(PONG, p + suffix, mask=m)
    if kind == "pong_random":
        b = draw(_ctrl_payloads)
        return lambda m, p: frame(PONG, b, mask=m)
    if kind in ("fragmented", "frag_with_ping"):
        parts = draw(st.lists(_texts, min_size=2, max_size=4))
        ctrl = kind == "frag_with_ping"

        def build(m: bytes | None, p: bytes) -> bytes:
            out = frame(TEXT, parts[0].encode(), fin=False, mask=m)
            for i, part in enumerate(parts[1:], 1):
                if ctrl:
                    out += frame(PING, b"mid", mask=m)
                out += frame(CONT, part.encode(), fin=i == len(parts) - 1, mask=m)
            return out

        return build
    if kind == "close":
        code = draw(
            st.sampled_from(
                [None, 1000, 1001, 1005, 1006, 1011, 1015, 2999, 3000, 4999, 5000, 999, 65535]
            )
        )
        reason = draw(st.sampled_from([b"", b"bye", b"\xff\xfe", "é".encode() * 70]))
        return lambda m, p: frame(CLOSE, close_payload(code, reason), mask=m)
    if kind == "raw":
        b = draw(st.binary(max_size=60))
        return lambda m, p: b
    if kind == "rsv":
        rsv = draw(st.integers(1, 7))
        return lambda m, p: frame(PING, b"x", rsv=rsv, mask=m)
    if kind == "bad_opcode":
        op = draw(st.sampled_from([3, 4, 5, 6, 7, 11, 12, 13, 14, 15]))
        return lambda m, p: frame(op, b"x", mask=m)
    if kind == "long_control":
        op = draw(st.sampled_from([PING, PONG, CLOSE]))
        return lambda m, p: frame(op, b"\x03\xe8" + b"a" * 200, mask=m)
    if kind == "fragmented_ping":
        return lambda m, p: frame(PING, b"ab", fin=False, mask=m) + frame(CONT, b"cd", mask=m)
    if kind == "bad_utf8":
        return lambda m, p: frame(TEXT, b"ok\xc3\x28", mask=m)
    if kind == "wrong_mask":
        return lambda m, p: frame(TEXT, b"hi", mask=None if m else b"\x01\x02\x03\x04")
    if kind == "big":
        n = draw(st.sampled_from([MAX_SIZE + 1, 200, 70_000]))
        op = draw(st.sampled_from([TEXT, BINARY]))
        return lambda m, p: frame(op, b"a" * n, mask=m)
    # lying_length: announce far more than is sent (a 2**40-byte frame).
    return lambda m, p: frame(BINARY, b"abc", mask=m, length=1 << 40)


_mutations = st.lists(
    st.tuples(
        st.sampled_from(["flip", "truncate", "splice", "delete"]),
        st.integers(0, 1 << 20),
        st.integers(0, 7),
        st.binary(min_size=1, max_size=8),
    ),
    max_size=4,
)

_ops = st.lists(
    st.one_of(
        st.tuples(st.just("read"), st.integers(1, 64), st.floats(0, 0.3)),
        st.tuples(st.just("timer"), st.floats(0, 2.0)),
        st.tuples(st.just("deadline"), st.sampled_from([0.0, 0.01, 0.3, 5.0])),
        st.tuples(st.just("send"), _texts),
        st.tuples(st.just("ping"), st.floats(0, 0.1)),
        st.tuples(st.just("close"), st.sampled_from([1000, 1001, 1008, 3000, 4999])),
    ),
    max_size=40,
)


def mutate(data: bytes, plan: list[tuple[str, int, int, bytes]]) -> bytes:
    buf = bytearray(data)
    for kind, pos, bit, blob in plan:
        if not buf:
            buf += blob
            continue
        i = pos % len(buf)
        if kind == "flip":
            buf[i] ^= 1 << bit
        elif kind == "truncate":
            del buf[i:]
        elif kind == "splice":
            buf[i:i] = blob
        else:
            del buf[i : i + bit + 1]
    return bytes(buf)


# ---------------------------------------------------------------- the driver


@dataclass
class Driver:
    """Uses the connection exactly as a correct adapter would, checking every step."""

    conn: HeartbeatConnection
    now: float = 0.0
    closing: bool = False  # CloseTransport seen
    aborted: bool = False
    lost: bool = False
    close_frames: int = 0
    http_done: bool = False
    http_ok: bool = False
    head: bytearray = field(default_factory=bytearray)
    reader: FrameReader | None = None
    messages: int = 0
    reject: bool = False

    def __post_init__(self) -> None:
        # We read what *we* send: a client masks, a server does not.
        self.reader = FrameReader(expect_masked=self.conn.role is Role.CLIENT)

    # Every call goes through here.
    def after(self, events: list[ConnectionEvent], inbound: int, *, reading: bool) -> None:
        conn = self.conn
        out = conn.data_to_send()
        assert len(out) <= inbound + 1024, (len(out), inbound)
        if self.closing and not self.lost:
            # Nothing new after CloseTransport but one Abort.
            assert all(type(e) is Abort for e in events), events
            assert out == b"", out
        if self.aborted:
            assert events == [], events
        pongs = self._parse_out(out)
        if reading:
            assert pongs <= 1, f"{pongs} pongs for one read: a ping burst must be coalesced"
        for e in events:
            if type(e) is CloseTransport:
                assert not self.closing, "CloseTransport twice"
                self.closing = True
            elif type(e) is Abort:
                assert not self.aborted, "Abort twice"
                self.aborted = self.closing = True
            elif type(e) is Message:
                self.messages += 1
                assert len(e.data) <= MAX_SIZE
        if conn.is_open:
            d = conn.deadline
            assert d is not None and math.isfinite(d), d
        if self.closing:
            assert not conn.is_open, "CloseTransport emitted but the connection says it is open"
        self._answer_requests(events)

    def _answer_requests(self, events: list[ConnectionEvent]) -> None:
        for e in events:
            if type(e) is Request:
                evs = (
                    self.conn.reject(403, b"no", now=self.now)
                    if self.reject
                    else self.conn.accept(now=self.now)
                )
                self.after(evs, 0, reading=False)
            elif type(e) is HttpRequest:
                self.after(self.conn.respond(200, b"ok", now=self.now), 0, reading=False)

    def _parse_out(self, out: bytes) -> int:
        if not out:
            return 0
        if not self.http_done:
            self.head += out
            end = self.head.find(b"\r\n\r\n")
            if end < 0:
                return 0
            self.http_done = True
            first = bytes(self.head[: self.head.find(b"\r\n")])
            self.http_ok = first.startswith((b"GET ", b"HTTP/1.1 101 "))
            out = bytes(self.head[end + 4 :])
            if not self.http_ok:
                return 0  # an error response with its body; nothing follows it
        if not self.http_ok:
            raise AssertionError(f"bytes after a non-101 HTTP response: {out!r:.80}")
        assert self.reader is not None
        pongs = 0
        for f in self.reader.feed(out):
            assert self.close_frames == 0, f"a frame after our close frame: {f}"
            if f.opcode == CLOSE:
                self.close_frames += 1
            elif f.opcode == PONG:
                pongs += 1
        return pongs

    # The operations.
    def read(self, data: bytes | None, dt: float) -> None:
        if self.lost:
            return
        self.now += dt
        evs = self.conn.receive_data(data, self.now)
        self.after(evs, len(data or b""), reading=True)

    def timer(self, at: float) -> None:
        if self.lost:
            return
        self.now = max(self.now, at)
        self.after(self.conn.timer_fired(self.now), 0, reading=False)

    def run_out_timers(self) -> None:
        for _ in range(10):
            d = self.conn.deadline
            if d is None or self.lost:
                return
            self.timer(d)

    def lose(self) -> None:
        if self.lost:
            return
        evs = self.conn.connection_lost(self.now)
        assert len(evs) == 1 and type(evs[0]) is Closed, evs
        if currently_in_test_context():
            msgs = "with" if self.messages else "no"
            event(f"closed {evs[0].code} by {evs[0].by}; {msgs} msgs")
        assert self.conn.deadline is None
        self.lost = True


def run_schedule(
    driver: Driver, stream: bytes, ops: list[tuple[object, ...]], *, eof: bool
) -> None:
    conn = driver.conn
    pos = 0
    for op in ops:
        kind = op[0]
        if kind == "read":
            n, dt = op[1], op[2]
            assert isinstance(n, int) and isinstance(dt, float)
            if pos < len(stream):
                driver.read(stream[pos : pos + n], dt)
                pos += n
        elif kind == "timer":
            assert isinstance(op[1], float)
            driver.timer(driver.now + op[1])
        elif kind == "deadline":
            d = conn.deadline
            assert isinstance(op[1], float)
            if d is not None:
                driver.timer(d + op[1])
        elif kind == "send" and conn.is_open and not driver.closing:
            assert isinstance(op[1], str)
            conn.send(op[1])
            driver.after([], len(op[1].encode()) + 16, reading=False)
        elif kind == "ping" and conn.is_open and not driver.closing:
            assert isinstance(op[1], float)
            driver.now += op[1]
            conn.ping(driver.now)
            driver.after([], 0, reading=False)
        elif kind == "close" and conn.is_open and not driver.closing:
            assert isinstance(op[1], int)
            driver.after(conn.close(driver.now, op[1]), 0, reading=False)
    while pos < len(stream) and not driver.lost:
        driver.read(stream[pos : pos + 4096], 0.01)
        pos += 4096
    if eof:
        driver.read(None, 0.0)
    driver.run_out_timers()
    driver.lose()


def make(role: Role, cfg: HeartbeatConfig, seed: int) -> HeartbeatConnection:
    return HeartbeatConnection(
        role, cfg, max_message_size=MAX_SIZE, random=random.Random(seed).random
    )


def open_pair_side(role: Role, cfg: HeartbeatConfig, seed: int) -> Driver:
    """A connection of ``role`` whose opening handshake already completed."""
    d = Driver(make(role, cfg, seed))
    if role is Role.SERVER:
        d.read(upgrade_request(), 0.0)
        assert d.conn.is_open
    else:
        d.conn.initiate("127.0.0.1")
        request = d.conn.data_to_send()
        d.head += request
        key = request.split(b"Sec-WebSocket-Key: ")[1].split(b"\r\n")[0]
        d.http_done = d.http_ok = True
        d.head.clear()
        d.read(upgrade_response(key), 0.0)
        assert d.conn.is_open
    return d


# ---------------------------------------------------------------- the tests


@FUZZ
@given(
    cfgseed=configs(),
    role=st.sampled_from(list(Role)),
    opened=st.booleans(),
    data=st.binary(max_size=600),
    ops=_ops,
    eof=st.booleans(),
)
def test_arbitrary_bytes(
    cfgseed: tuple[HeartbeatConfig, int],
    role: Role,
    opened: bool,
    data: bytes,
    ops: list[tuple[object, ...]],
    eof: bool,
) -> None:
    cfg, seed = cfgseed
    if opened:
        driver = open_pair_side(role, cfg, seed)
    else:
        driver = Driver(make(role, cfg, seed))
        if role is Role.CLIENT:
            driver.conn.initiate("127.0.0.1")
            driver.after([], 1024, reading=False)
    run_schedule(driver, data, ops, eof=eof)


@FUZZ
@given(
    cfgseed=configs(),
    role=st.sampled_from(list(Role)),
    opened=st.booleans(),
    parts=st.lists(pieces(), max_size=12),
    plan=_mutations,
    ops=_ops,
    eof=st.booleans(),
    reject=st.booleans(),
)
def test_mutated_valid_streams(
    cfgseed: tuple[HeartbeatConfig, int],
    role: Role,
    opened: bool,
    parts: list[Callable[[bytes | None, bytes], bytes]],
    plan: list[tuple[str, int, int, bytes]],
    ops: list[tuple[object, ...]],
    eof: bool,
    reject: bool,
) -> None:
    cfg, seed = cfgseed
    mask = b"\x5a\xa5\x0f\xf0" if role is Role.SERVER else None  # peers of servers mask
    body = b"".join(p(mask, cfg.payload_prefix) for p in parts)
    if opened:
        driver = open_pair_side(role, cfg, seed)
        stream = body
    else:
        driver = Driver(make(role, cfg, seed), reject=reject)
        if role is Role.SERVER:
            stream = upgrade_request() + body
        else:
            driver.conn.initiate("127.0.0.1")
            request = driver.conn.data_to_send()
            driver.head += request
            driver.http_done = driver.http_ok = True
            driver.head.clear()
            key = request.split(b"Sec-WebSocket-Key: ")[1].split(b"\r\n")[0]
            stream = upgrade_response(key) + body
    run_schedule(driver, mutate(stream, plan), ops, eof=eof)


@FUZZ
@given(
    cfgseed=configs(),
    role=st.sampled_from(list(Role)),
    parts=st.lists(pieces(), min_size=1, max_size=12),
    steps=st.lists(st.tuples(st.integers(1, 40), st.floats(0, 1.0), st.booleans()), max_size=30),
)
def test_valid_streams_in_random_chunks_with_time(
    cfgseed: tuple[HeartbeatConfig, int],
    role: Role,
    parts: list[Callable[[bytes | None, bytes], bytes]],
    steps: list[tuple[int, float, bool]],
) -> None:
    """Unmutated streams, chunked at random, with timers fired at each deadline in between."""
    cfg, seed = cfgseed
    mask = b"\x01\x02\x03\x04" if role is Role.SERVER else None
    driver = open_pair_side(role, cfg, seed)
    stream = b"".join(p(mask, cfg.payload_prefix) for p in parts)
    ops: list[tuple[object, ...]] = []
    for n, dt, fire in steps:
        ops.append(("read", n, dt))
        if fire:
            ops.append(("deadline", 0.0))
    run_schedule(driver, stream, ops, eof=True)


def test_handshake_flood_is_bounded() -> None:
    """A request head that never ends is refused once it passes the core's 16 KiB limit."""
    driver = Driver(make(Role.SERVER, HeartbeatConfig(), 0))
    driver.read(b"GET / HTTP/1.1\r\nHost: x\r\n", 0.0)
    for i in range(200):
        if driver.closing:
            break
        driver.read(b"X-Slow-%d: %s\r\n" % (i, b"a" * 200), 0.01)
    assert driver.closing, "the handshake buffer grew past 40 KiB without a refusal"
    assert bytes(driver.head).startswith(b"HTTP/1.1 431 ")
    driver.lose()


def test_driver_accepts_a_clean_conversation() -> None:
    """The checking driver itself: a well-behaved peer passes every check and gets its data."""
    driver = open_pair_side(Role.SERVER, HeartbeatConfig(interval=1.0, timeout=0.5), 0)
    m = b"\x01\x02\x03\x04"
    driver.read(frame(TEXT, b"hello", mask=m) + frame(PING, b"p", mask=m), 0.1)
    assert driver.messages == 1
    driver.timer(driver.conn.deadline or 0.0)  # heartbeat 1 goes out
    driver.read(frame(PONG, b"1", mask=m), 0.05)
    assert driver.conn.stats.pongs_received == 1
    driver.read(frame(CLOSE, close_payload(1000), mask=m), 0.0)
    assert driver.closing and driver.close_frames == 1
    driver.lose()
