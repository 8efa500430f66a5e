"""``HeartbeatConnection``: wsproto and the heartbeat state machine, sans-IO.

Bytes in (with ``now``), bytes out, events out. A driver does four things:

1. ``conn.connection_made(now)`` when the transport connects (the opening
   handshake is then bounded by ``open_timeout``), and
   ``events = conn.receive_data(data, now)`` for every read (``None`` at EOF);
2. writes ``conn.data_to_send()`` after every call;
3. arms one timer at ``conn.wake_at`` and calls ``conn.timer_fired(now)``;
4. carries out ``CloseTransport`` / ``Abort`` events and hands the rest to
   the application; calls ``conn.connection_lost(now)`` when the socket is gone.

The opening handshake lives in :mod:`heartbeat_core.handshake`; once open, frames
go through wsproto's frame layer, or, for the common reads of a server (complete
pings, pongs and short messages), through :func:`~heartbeat_core.frames.simple_prefix`.
Both paths end in the same frame handler, :meth:`HeartbeatConnection._on_frames`.
"""

from __future__ import annotations

import codecs
import enum
from collections.abc import Iterable, Iterator

import wsproto.events as ws
from wsproto.connection import Connection as WsFrames
from wsproto.connection import ConnectionState, ConnectionType

from heartbeat_core.actions import (
    Abort,
    Action,
    CloseTransport,
    RttSample,
    SendAppPing,
    SendAppPong,
    SendClose,
    SendPing,
)
from heartbeat_core.codec import JSON_CODEC, AppCodec, AppKind
from heartbeat_core.config import HeartbeatConfig, HeartbeatStyle
from heartbeat_core.errors import ConfigError, ConnectionClosedError, LocalProtocolError
from heartbeat_core.events import (
    AppPingReceived,
    AppPongReceived,
    CloseReceived,
    CloseRequested,
    ConnectionClosed,
    PingReceived,
    PongReceived,
    ReadingPaused,
    ReadingResumed,
    connection_opened,
    handshake_started,
)
from heartbeat_core.frames import (
    MAX_FRAGMENTS,
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
from heartbeat_core.handshake import (
    BadRequest,
    BadResponse,
    ClientHandshake,
    HeaderPairs,
    ServerHandshake,
    header_pairs,
    http_response,
)
from heartbeat_core.randomness import RandomSource
from heartbeat_core.state import _OPEN_PHASES, HeartbeatPhase, HeartbeatState, validate_close
from heartbeat_core.stats import HeartbeatStats
from heartbeat_core.wsevents import (
    Closed,
    Closing,
    ConnectionEvent,
    HandshakeFailed,
    PingAnswered,
    Rejected,
    message,
)

__all__ = ["MAX_FRAGMENTS", "HeartbeatConnection", "Role"]

_Frame = tuple[int, "bytes | str"]


class Role(enum.Enum):
    CLIENT = "client"
    SERVER = "server"


# Enum members read per connection or per message, as module constants (see the note on
# the phases in heartbeat_core.state: cheaper than reading them off their class on 3.10/3.11).
_SERVER = Role.SERVER
_APP = HeartbeatStyle.APP
_WS_OPEN = ConnectionState.OPEN
_APP_PING = AppKind.PING
_APP_PONG = AppKind.PONG
_DATA_OPCODES = frozenset({OP_TEXT, OP_BINARY})
_INVALID_UTF8 = "invalid UTF-8 in a text message"
_utf8_decoder = codecs.getincrementaldecoder("utf-8")


class HeartbeatConnection:
    """One WebSocket connection with heartbeats, as a sans-IO object.

    ``max_message_size`` bounds an incoming message (bytes for binary,
    characters for text) and ``max_fragments`` the number of frames it comes in;
    past either, the connection fails with 1009 (rule ``fail``: the rest of the
    read is not parsed). A fragmented message is assembled in one buffer as it
    arrives (text as UTF-8), so it holds about its own size, whatever its frames.
    ``random`` is the random source for jitter and ``open_timeout`` the bound on
    the opening handshake (see :class:`HeartbeatState`).
    Application-level heartbeat messages (``codec``) are recognised when the
    style is ``APP`` or ``config.answer_app_pings`` is true; they are consumed,
    never delivered as messages.

    Pongs that answer nothing (neither a heartbeat nor :meth:`ping`) are legal and
    ignored, but the state counts them under its flood rule (rule ``peer-ping``):
    one closer than ``peer_ping_min_interval`` to the previous one is a strike,
    and past ``peer_ping_max_strikes`` the connection fails with 1008 ("too many
    pongs"), as it does for a ping flood. A pong answering a :meth:`ping` call
    reaches the state marked ``solicited``, so it is never a strike.

    Every method that raises :class:`LocalProtocolError` changes nothing.
    """

    # (Slots: each connection is smaller, and the attributes the hot paths read sit in
    # the object itself, not in a dictionary beside it.)
    __slots__ = (
        "_classify",
        "_close_code",
        "_close_reason",
        "_closed_by",
        "_codec",
        "_config",
        "_done",
        "_fast_path",
        "_fragments",
        "_frames",
        "_handshake",
        "_max_fragments",
        "_max_size",
        "_out",
        "_partial",
        "_size",
        "_skip_message",
        "_tail",
        "_transport_closing",
        "_user_pings",
        "_user_seq",
        "_ws",
        "heartbeat",
        "role",
    )

    def __init__(
        self,
        role: Role,
        config: HeartbeatConfig | None = None,
        *,
        codec: AppCodec = JSON_CODEC,
        max_message_size: int | None = 1 << 20,
        max_fragments: int = MAX_FRAGMENTS,
        random: RandomSource | None = None,
        open_timeout: float = 10.0,
    ) -> None:
        if not isinstance(role, Role):
            raise ConfigError(f"role must be Role.CLIENT or Role.SERVER, got {role!r}")
        if max_message_size is not None and (
            isinstance(max_message_size, bool)
            or not isinstance(max_message_size, int)
            or max_message_size < 1
        ):
            raise ConfigError(
                f"max_message_size must be a positive int or None, got {max_message_size!r}"
            )
        if (
            isinstance(max_fragments, bool)
            or not isinstance(max_fragments, int)
            or max_fragments < 1
        ):
            raise ConfigError(f"max_fragments must be a positive int, got {max_fragments!r}")
        if not isinstance(codec, AppCodec):
            raise ConfigError(f"codec must be an AppCodec, got {codec!r}")
        self.role: Role = role
        self.heartbeat: HeartbeatState = HeartbeatState(
            config, random=random, open_timeout=open_timeout
        )
        self._config = self.heartbeat.config
        self._codec = codec
        self._classify = self._config.style is _APP or self._config.answer_app_pings
        self._max_size = max_message_size
        self._max_fragments = max_fragments
        self._handshake: ServerHandshake | ClientHandshake | None = (
            ServerHandshake() if role is _SERVER else ClientHandshake()
        )
        # wsproto's frame layer once open. An open server makes it at first use (None
        # until then, see _frame_layer): most reads never need it.
        self._ws: WsFrames | None = None
        # Server side, once open: where wsproto's frame parser stands (see frames.py).
        self._frames: FrameBoundary | None = None
        self._out: list[bytes] = []
        # An open server's last read ended inside a simple frame: its start, for the fast
        # path to complete (see frames.simple_prefix); wsproto has not seen it.
        self._tail = b""
        # A fragmented message so far (text as UTF-8), made at its first fragment:
        # most connections never need one.
        self._partial: bytearray | None = None
        self._size = 0  # its size (characters for text)
        self._fragments = 0  # its complete frames
        self._skip_message = False
        # payload -> (sent at, the heartbeat seq outstanding then)
        self._user_pings: dict[bytes, tuple[float, int]] | None = None
        self._user_seq = 0
        self._close_code: int | None = None
        self._close_reason = ""
        self._closed_by = "remote"
        self._transport_closing = False
        self._done = False
        #: The fast path for simple reads (a test turns it off to compare both paths).
        self._fast_path = True

    # ------------------------------------------------------------------ views

    @property
    def phase(self) -> HeartbeatPhase:
        """The heartbeat phase (see :class:`HeartbeatPhase`)."""
        return self.heartbeat.phase

    @property
    def is_open(self) -> bool:
        """True while messages can be sent."""
        frame_layer = self._ws
        return self.heartbeat.is_open and (frame_layer is None or frame_layer.state is _WS_OPEN)

    @property
    def deadline(self) -> float | None:
        """When to call :meth:`timer_fired` next (``None``: no timer needed)."""
        return self.heartbeat.deadline

    @property
    def wake_at(self) -> float | None:
        """When to call :meth:`timer_fired` (or :meth:`ping_due`): :attr:`deadline`, or
        earlier: when the next heartbeat may go out, on the grid of ``timer_slack`` that
        connections share (rule ``early-timer``); a time to file the timer at that a pong
        never moves earlier (see ``HeartbeatState.wake_at``)."""
        return self.heartbeat.wake_at

    @property
    def stats(self) -> HeartbeatStats:
        return self.heartbeat.stats

    @property
    def config(self) -> HeartbeatConfig:
        """The configuration this connection's heartbeats run by (read-only)."""
        return self._config

    @property
    def close_code(self) -> int:
        """The close code sent or received first; 1006 when none was exchanged."""
        return 1006 if self._close_code is None else self._close_code

    @property
    def close_reason(self) -> str:
        return self._close_reason

    @property
    def closed_by(self) -> str:
        """``"local"`` when we started the close, ``"remote"`` otherwise."""
        return self._closed_by

    @property
    def reading_paused(self) -> bool:
        """True between :meth:`pause_reading` and :meth:`resume_reading`."""
        return self.heartbeat.reading_paused

    def data_to_send(self) -> bytes:
        """The bytes to write to the transport now (empty when there are none)."""
        out = self._out
        if not out:
            return b""
        data = b"".join(out) if len(out) > 1 else out[0]
        out.clear()
        return data

    # ------------------------------------------------------------- handshake

    def connection_made(self, now: float) -> None:
        """The transport connected: the opening handshake must complete within
        ``open_timeout`` (else :attr:`deadline` brings an ``Abort``)."""
        self.heartbeat.handle(handshake_started(now))

    def initiate(
        self,
        host: str,
        target: str = "/",
        *,
        subprotocols: Iterable[str] = (),
        extra_headers: HeaderPairs = (),
    ) -> None:
        """Client side: queue the upgrade request."""
        hs = self._handshake
        if not isinstance(hs, ClientHandshake):
            if self.role is Role.SERVER:
                raise LocalProtocolError("initiate() is for clients; servers wait for a Request")
            raise LocalProtocolError("initiate() after the handshake ended")
        if hs.started:
            raise LocalProtocolError("initiate() was already called")
        self._out.append(hs.initiate(host, target, subprotocols, extra_headers))

    def accept(
        self, *, now: float, subprotocol: str | None = None, extra_headers: HeaderPairs = ()
    ) -> list[ConnectionEvent]:
        """Server side: accept the pending :class:`Request`; heartbeats start at ``now``.
        Returns :class:`Accepted`, then the events of any bytes that followed the request."""
        hs = self._pending_upgrade("accept")
        assert hs.request is not None
        if subprotocol is not None and subprotocol not in hs.request.subprotocols:
            raise LocalProtocolError(
                f"subprotocol {subprotocol!r} was not offered by the client "
                f"(offered: {hs.request.subprotocols!r})"
            )
        pairs = header_pairs(extra_headers)
        self.heartbeat.handle(connection_opened(now))  # (raises before any change)
        data, accepted, early = hs.accept(subprotocol, pairs)
        self._handshake = None
        self._frames = FrameBoundary(self._max_fragments)
        self._out.append(data)
        events: list[ConnectionEvent] = [accepted]
        if early:
            # wsproto's server drops bytes that came in the same read as the request
            # (a client should not send them, but nothing received is lost here).
            events += self.receive_data(early, now)
        return events

    def reject(
        self, status: int = 403, body: bytes = b"", *, now: float, headers: HeaderPairs = ()
    ) -> list[ConnectionEvent]:
        """Server side: refuse the pending :class:`Request` with an HTTP response; the
        transport then closes, bounded by ``close_timeout`` (rule ``fail``)."""
        hs = self._pending_upgrade("reject")
        if not 400 <= status <= 599:
            raise LocalProtocolError(f"reject() needs a 4xx or 5xx status, got {status}")
        pairs = header_pairs(headers)
        self._check_now(now)
        self._out.append(hs.reject(status, body, pairs))
        return self._release(now)

    def respond(
        self, status: int, body: bytes = b"", *, now: float, headers: HeaderPairs = ()
    ) -> list[ConnectionEvent]:
        """Server side: answer the pending :class:`HttpRequest` (without the body when it
        is a HEAD request); the transport then closes, bounded by ``close_timeout``."""
        hs = self._handshake
        if not isinstance(hs, ServerHandshake) or hs.http_request is None:
            raise LocalProtocolError("respond() needs a pending HttpRequest from receive_data()")
        if not 200 <= status <= 599:
            raise LocalProtocolError(f"respond() needs a status in 200-599, got {status}")
        pairs = header_pairs(headers)
        self._check_now(now)
        self._out.append(hs.respond(status, body, pairs))
        return self._release(now)

    def _pending_upgrade(self, what: str) -> ServerHandshake:
        hs = self._handshake
        if not isinstance(hs, ServerHandshake) or hs.request is None:
            raise LocalProtocolError(f"{what}() needs a pending Request from receive_data()")
        return hs

    # ----------------------------------------------------------------- input

    def receive_data(self, data: bytes | None, now: float) -> list[ConnectionEvent]:
        """Feed bytes read from the transport (``None`` at end of file)."""
        if self._done:
            raise LocalProtocolError("receive_data() after connection_lost(): the connection ended")
        hb = self.heartbeat
        if not now >= hb._last_now:  # (HeartbeatState.last_now, without the call)
            self._check_now(now)  # raises
        if self._transport_closing:
            # The transport is being released: nothing read from now on is needed; it
            # is dropped unparsed.
            hb.bytes_received(now)  # records now (a no-op while draining)
            return []
        if data is None:
            return self._eof(now)
        hs = self._handshake
        if hs is not None:
            if isinstance(hs, ServerHandshake):
                return self._request_data(hs, data, now)
            return self._response_data(hs, data, now)
        frames = self._frames
        tail = self._tail
        if (
            frames is not None
            and self._fast_path
            and hb._phase in _OPEN_PHASES  # (HeartbeatState.is_open, without the call)
            and (
                self._ws is None  # (wsproto never saw a byte: nothing of it is pending)
                or (frames.between_frames and self._partial is None and not self._skip_message)
            )
        ):
            # The common read on an open server: pongs, pings and short messages, while
            # wsproto holds no partial frame or message.
            size = len(data)
            if not tail and 6 <= size <= 131 and data[0] == 0x8A and data[1] == size + 0x7A:
                # The common read of an idle connection: exactly one masked pong
                # (0x8A: FIN and the pong opcode; then the mask bit and the payload
                # length, size - 6).
                payload = unmask_frame(data, size - 6)
                events: list[ConnectionEvent] = []
                if self._user_pings:
                    self._on_pong_frame(payload, now, events)
                    return events
                # What _on_pong_frame does when no ping() of the driver's waits, inline.
                actions = hb.pong_received(now, payload)
                if actions:
                    if type(actions[0]) is RttSample:
                        events.append(actions[0])
                    else:  # stray pongs flood us (rule peer-ping): the state fails it
                        self._apply(actions, now, events)
                return events
            if tail:
                data = tail + data
            events = []
            end = len(data)
            simple, used, more = simple_prefix(data, True)
            if used == end and len(simple) == 1:
                opcode, payload = simple[0]
                # (a lone pong never comes here: it took the branch above)
                if opcode in _DATA_OPCODES and self._one_message(opcode, payload, now, events):
                    if tail:
                        self._tail = b""
                    return events  # the common read of a busy one: one short message
            start = 0  # (after a full run: where the next one begins)
            pong: bytes | None = None  # owed to a ping of an earlier run of this read
            while True:
                run_ends = used < end and not more and len(simple) == MAX_SIMPLE_RUN
                if not (used == end or run_ends or (more and self._may_keep(data, used))):
                    break  # wsproto takes the rest, from where it began
                # Only simple frames, the last perhaps incomplete: kept (at most one frame
                # of 64 KiB) until a read completes it; wsproto never sees it.
                decoded = self._decode(simple)
                if decoded is None:
                    break
                if decoded is not simple:  # (a lone ping counts itself)
                    hb.bytes_received(now)  # as the general path does, below
                # (a run that ends where another begins answers no ping: the read's
                # pings are answered once, at its end, as on the general path)
                pong = self._on_frames(decoded, now, events, pong, answer=not run_ends)
                if not run_ends or self._transport_closing:
                    self._tail = data[used:] if more else b""
                    return events
                start = used  # a long read: the next run, once this one is carried out
                simple, used, more = simple_prefix(data, True, start)
            self._tail = b""
            if start:
                data = data[start:]
            return self._general(data, now, events, pong)
        if tail:  # (not on the fast path now: closing, say)
            data, self._tail = tail + data, b""
        return self._general(data, now, [])

    def _general(
        self, data: bytes, now: float, events: list[ConnectionEvent], pong: bytes | None = None
    ) -> list[ConnectionEvent]:
        """An open connection's read through wsproto (appended to ``events``); ``pong``:
        the answer owed to a ping earlier in the same read (the fast path's runs)."""
        self.heartbeat.bytes_received(now)
        frames = self._frames
        if frames is not None and not frames.feed(data):
            # A message in too many frames: refused before wsproto parses any of the
            # read (its frames would cost far more than this count did).
            self._drop_message(now, events, "message in too many fragments")
            return events
        layer = self._frame_layer()
        layer.receive_data(data)
        self._on_frames(self._parsed(layer, now, events), now, events, pong)
        return events

    def ping_due(self, now: float) -> bytes | None:
        """The common :meth:`timer_fired` of an open server, for a driver to write at once:
        when a protocol heartbeat is due (:meth:`HeartbeatState.ping_due`) and no other
        bytes wait to be sent, the ping frame is returned instead of queued, and the
        state changes exactly as ``timer_fired(now)`` changes it. Otherwise ``None``,
        and nothing changed: call :meth:`timer_fired`."""
        if self._frames is None or self._out:
            return None  # (not an open server, or the ping would have to queue behind)
        payload = self.heartbeat.ping_due(now)
        if payload is None:
            return None
        return bytes((0x89, len(payload))) + payload  # (server_frame(OP_PING, ...), inline)

    def timer_fired(self, now: float) -> list[ConnectionEvent]:
        """The timer armed at :attr:`wake_at` went off (early calls change nothing)."""
        hb = self.heartbeat
        if self._frames is not None:  # an open server: a heartbeat is an unmasked ping frame
            payload = hb.ping_due(now)
            if payload is not None:  # the common timer (what _apply does with its SendPing)
                self._out.append(server_frame(OP_PING, payload))
                return []
        actions = hb.timer_fired(now)
        events: list[ConnectionEvent] = []
        if actions:
            self._apply(actions, now, events)
        return events

    def pause_reading(self, now: float) -> list[ConnectionEvent]:
        """The driver stopped reading the transport (its receive queue is full).

        Until :meth:`resume_reading`, no dead-peer verdict is given: the peer's
        answer may be waiting unread (rule ``paused-reading``). Heartbeats still
        go out when due. Pausing twice is harmless. Returns the events to carry
        out (none today; re-arm the timer at :attr:`wake_at`). Raises
        :class:`LocalProtocolError` before the connection opened or after
        :meth:`connection_lost`.
        """
        events: list[ConnectionEvent] = []
        self._apply(self.heartbeat.handle(ReadingPaused(now=now)), now, events)
        return events

    def resume_reading(self, now: float) -> list[ConnectionEvent]:
        """The driver reads the transport again: an outstanding heartbeat gets a
        fresh timeout from ``now``. Harmless when not paused; raises like
        :meth:`pause_reading`. Re-arm the timer at :attr:`wake_at` afterwards."""
        events: list[ConnectionEvent] = []
        self._apply(self.heartbeat.handle(ReadingResumed(now=now)), now, events)
        return events

    def connection_lost(self, now: float) -> list[ConnectionEvent]:
        """The transport is gone. Returns the final :class:`Closed` event."""
        if self._done:
            raise LocalProtocolError("connection_lost() called twice")
        self.heartbeat.handle(ConnectionClosed(now=now))
        self._done = True
        self._user_pings = None
        return [Closed(code=self.close_code, reason=self._close_reason, by=self._closed_by)]

    # ---------------------------------------------------------------- output

    def send(self, data: str | bytes | bytearray | memoryview) -> None:
        """Queue a text (``str``) or binary (bytes-like) message."""
        if (
            self._frames is not None
            and self._fast_path
            and self.heartbeat._phase in _OPEN_PHASES  # (is_open, without the calls)
            and (self._ws is None or self._ws.state is _WS_OPEN)
        ):
            # An open server: unmasked frames, built as wsproto would, without it.
            if isinstance(data, str):
                self._out.append(server_data_frame(OP_TEXT, data.encode("utf-8")))
                return
            if isinstance(data, (bytes, bytearray, memoryview)):
                self._out.append(server_data_frame(OP_BINARY, bytes(data)))
                return
        if not isinstance(data, (str, bytes, bytearray, memoryview)):
            raise TypeError(f"send() takes str or bytes, got {type(data).__name__}")
        self._require_open("send a message")
        payload = data if isinstance(data, str) else bytes(data)
        self._out.append(self._frame_layer().send(ws.Message(data=payload)))  # type: ignore[type-var]

    def ping(self, now: float) -> bytes:
        """Send a ping of our own; a :class:`PingAnswered` event reports its RTT.

        Returns the payload. These pings are separate from the heartbeat
        (they never count as one) and exist to measure RTT on demand.
        """
        self._require_open("ping")
        self._check_now(now)
        self._user_seq += 1
        payload = self._config.payload_prefix + b"u%d" % self._user_seq
        if self._user_pings is None:
            self._user_pings = {}
        self._user_pings[payload] = (now, self.heartbeat.seq)
        self._send_control(OP_PING, payload)
        return payload

    def close(self, now: float, code: int = 1000, reason: str = "") -> list[ConnectionEvent]:
        """Start the closing handshake (bounded by ``close_timeout``). Harmless when
        closing. Before the connection opened there is nothing to hand-shake: the
        transport is released (as :meth:`fail` does)."""
        validate_close(code, reason)
        events: list[ConnectionEvent] = []
        if self.heartbeat.phase is HeartbeatPhase.NEW:
            return self._release(now)
        self._apply(
            self.heartbeat.handle(CloseRequested(now=now, code=code, reason=reason)), now, events
        )
        return events

    def fail(self, now: float, code: int = 1011, reason: str = "") -> list[ConnectionEvent]:
        """Fail the connection (the core's rule ``fail``): a close frame with ``code``
        and ``reason`` if it is open, then release the transport without waiting for
        the peer's close frame, bounded by ``close_timeout``. Harmless when releasing."""
        events: list[ConnectionEvent] = []
        if self._done:
            raise LocalProtocolError("fail() after connection_lost(): the connection ended")
        self._apply(self.heartbeat.fail(now, code, reason), now, events)
        return events

    # -------------------------------------------------------------- internal

    def _require_open(self, what: str) -> None:
        if not self.is_open:
            raise ConnectionClosedError(
                f"cannot {what}: the connection is {self.heartbeat.phase.value}",
                self.close_code,
                self._close_reason,
            )

    def _check_now(self, now: float) -> None:
        """Raise :class:`LocalProtocolError` if ``now`` is before the last event's time."""
        if not now >= self.heartbeat.last_now:
            raise LocalProtocolError(
                f"time ran backwards: now={now!r} after an event at "
                f"now={self.heartbeat.last_now!r}; pass a monotonic clock"
            )

    def _release(self, now: float) -> list[ConnectionEvent]:
        """Before the connection opened: release the transport (rule ``fail``)."""
        events: list[ConnectionEvent] = []
        self._closed_by = "local"
        self._apply(self.heartbeat.fail(now), now, events)
        return events

    def _request_data(self, hs: ServerHandshake, data: bytes, now: float) -> list[ConnectionEvent]:
        try:
            request = hs.receive_data(data)
        except BadRequest as error:
            body = b"Bad WebSocket upgrade request: %s\n" % str(error).encode()
            self._out.append(http_response(error.status, body, error.headers))
            return self._release(now)
        return [] if request is None else [request]

    def _response_data(self, hs: ClientHandshake, data: bytes, now: float) -> list[ConnectionEvent]:
        try:
            answer = hs.receive_data(data)
        except BadResponse as error:
            # A client never answers a bad response: it says why, and hangs up.
            self._closed_by = "local"
            events: list[ConnectionEvent] = [HandshakeFailed(reason=str(error))]
            self._apply(self.heartbeat.fail(now), now, events)
            return events
        if answer is None:
            return []
        if isinstance(answer, Rejected):
            self._closed_by = "remote"
            events = [answer]
            self._apply(self.heartbeat.fail(now), now, events)
            return events
        self.heartbeat.handle(connection_opened(now))
        self._handshake = None
        layer = self._ws = hs.frames  # holding any frames that came with the 101
        assert layer is not None
        events = [answer]
        self._on_frames(self._parsed(layer, now, events), now, events)
        return events

    def _eof(self, now: float) -> list[ConnectionEvent]:
        if self.heartbeat.phase is HeartbeatPhase.CLOSING:
            self._transport_closing = True  # (the close deadline stays as it is)
            return [CloseTransport()]
        if self.heartbeat.is_open:
            # The peer hung up without a close frame: stop heartbeats (no ping, no
            # dead-peer verdict on a stream that has ended) and bound the release by
            # close_timeout. The close frame the core asks for cannot be sent: dropped.
            self.heartbeat.handle(CloseReceived(now=now, code=1006, error=True))
            self._transport_closing = True
            return [CloseTransport()]
        events: list[ConnectionEvent] = []  # the peer hung up during the opening handshake
        self._apply(self.heartbeat.fail(now), now, events)
        return events

    def _frame_layer(self) -> WsFrames:
        """wsproto's frame layer, made on an open server at first use (a fresh one is
        exactly what accept() left: OPEN, nothing buffered; until then every read was
        simple frames, taken by the fast path, which hands wsproto a frame it kept
        aside together with the read that follows it)."""
        layer = self._ws
        if layer is None:
            layer = self._ws = WsFrames(ConnectionType.SERVER)
        return layer

    def _send_control(self, opcode: int, payload: bytes) -> None:
        if self._frames is not None:  # an open server: unmasked, no wsproto needed
            self._out.append(server_frame(opcode, payload))
        elif opcode == OP_PING:
            self._out.append(self._frame_layer().send(ws.Ping(payload=payload)))
        else:
            self._out.append(self._frame_layer().send(ws.Pong(payload=payload)))

    def _may_keep(self, data: bytes, at: int) -> bool:
        """Whether the start of a simple frame at ``data[at:]`` may wait for the next
        read on the fast path: wsproto, handed it now, would not fail the connection
        over it yet (a data frame within ``max_message_size``; text, valid UTF-8 so
        far). Otherwise wsproto takes the read, and fails it as soon as it would."""
        end = len(data)
        first = data[at]
        if first & 0x08 or end - at < 2:
            return True  # a control frame (checked when whole), or no length yet
        length, start = data[at + 1] & 0x7F, at + 6
        if length == 126:
            if end - at < 4:
                return True
            length, start = int.from_bytes(data[at + 2 : at + 4], "big"), at + 8
        if self._max_size is not None and length > self._max_size:
            return False
        if first & 0x0F == OP_TEXT and end > start:
            try:
                _utf8_decoder().decode(unmask(data, start - 4, end - start), False)
            except UnicodeDecodeError:
                return False
        return True

    def _one_message(
        self, opcode: int, payload: bytes, now: float, events: list[ConnectionEvent]
    ) -> bool:
        """A read of exactly one whole short text or binary message: what :meth:`_decode`
        and :meth:`_on_frames` do with it, without their lists. False (nothing changed)
        when wsproto must take the read: invalid UTF-8 or a message over the limit."""
        limit = self._max_size
        if opcode == OP_TEXT:
            try:
                data: str | bytes = payload.decode("utf-8")
            except UnicodeDecodeError:
                return False
        else:
            data = payload
        if limit is not None and len(data) > limit:
            return False
        self.heartbeat.bytes_received(now)
        self._on_message(data, now, events)
        return True

    def _decode(self, frames: list[tuple[int, bytes]]) -> list[_Frame] | None:
        """The fast path's frames with text decoded, or ``None`` (nothing changed) when
        wsproto must take the read: invalid UTF-8 (1007) or a message over
        ``max_message_size`` (1009)."""
        if len(frames) == 1 and frames[0][0] == OP_PING:  # a lone ping: nothing to decode
            return frames  # type: ignore[return-value]
        decoded: list[_Frame] = []
        limit = self._max_size
        for opcode, payload in frames:
            if opcode == OP_TEXT:
                try:
                    text = payload.decode("utf-8")
                except UnicodeDecodeError:
                    return None
                if limit is not None and len(text) > limit:
                    return None
                decoded.append((OP_TEXT, text))
            else:
                if opcode == OP_BINARY and limit is not None and len(payload) > limit:
                    return None
                decoded.append((opcode, payload))
        return decoded

    def _parsed(
        self, layer: WsFrames, now: float, events: list[ConnectionEvent]
    ) -> Iterator[_Frame]:
        """wsproto's events as frames for :meth:`_on_frames`: pings, pongs and whole
        messages; close frames and parse errors are handled here, in order."""
        for event in layer.events():  # (_on_frames stops pulling once the transport closes)
            cls = type(event)
            if cls is ws.Pong:
                yield OP_PONG, bytes(event.payload)  # type: ignore[attr-defined]
            elif cls is ws.Ping:
                yield OP_PING, bytes(event.payload)  # type: ignore[attr-defined]
            elif cls is ws.CloseConnection:
                self._on_close(event, layer, now, events)  # type: ignore[arg-type]
            else:
                message = self._assemble(event, now, events)  # type: ignore[arg-type]
                if message is not None:
                    yield (OP_TEXT if isinstance(message, str) else OP_BINARY), message
                elif self._transport_closing:  # refused (1009): parse no further
                    return

    def _on_frames(
        self,
        frames: Iterable[_Frame],
        now: float,
        events: list[ConnectionEvent],
        pong: bytes | None = None,
        answer: bool = True,
    ) -> bytes | None:
        """The one frame handler, for both paths: pongs, pings (a read's burst is
        answered once, at its end, with the latest payload: RFC 6455 5.5.3; ``pong``
        is that of an earlier part of the read) and whole messages. Once the connection
        fails (a flood), nothing more is parsed. Unless ``answer``, the answer owed is
        returned, not sent (more of the read follows)."""
        hb = self.heartbeat
        for opcode, payload in frames:
            if opcode == OP_PONG:
                self._on_pong_frame(payload, now, events)  # type: ignore[arg-type]
            elif opcode == OP_PING:
                reply = self._on_ping_frame(payload, now, events)  # type: ignore[arg-type]
                if reply is not None:
                    pong = reply
            else:  # (only while open: a failure ends the loop, wsproto's path skips)
                self._on_message(payload, now, events)
            if self._transport_closing:
                return None
        if not answer:
            return pong
        if pong is not None and hb.is_open:
            self._send_control(OP_PONG, pong)
        return None

    def _on_pong_frame(self, payload: bytes, now: float, events: list[ConnectionEvent]) -> None:
        # A peer may answer only the latest of several pings (RFC 6455 5.5.3), so a
        # pong answers its ping and every earlier one: ping() calls and heartbeats alike.
        hb = self.heartbeat
        user_pings = self._user_pings
        sent = user_pings.get(payload) if user_pings else None
        if sent is None:
            actions = hb.pong_received(now, payload)
        else:
            # Answers our ping(): never a stray pong, even if it acknowledges no heartbeat.
            # The state first: if it raises, nothing has changed.
            heartbeat = hb.payload_for(sent[1]) if sent[1] else payload
            actions = hb.handle(PongReceived(now=now, payload=heartbeat, solicited=True))
            self._answer_pings(now, events, last=payload)
        if actions:
            first = actions[0]
            if type(first) is RttSample:
                if self._user_pings:
                    self._answer_pings(now, events, heartbeat=first.seq)
                events.append(first)
            else:  # stray pongs flood us (rule peer-ping): the state fails the connection
                self._apply(actions, now, events)

    def _on_ping_frame(
        self, payload: bytes, now: float, events: list[ConnectionEvent]
    ) -> bytes | None:
        """Returns the pong payload to send, or ``None``."""
        actions = self.heartbeat.handle(PingReceived(now=now, payload=payload))
        if actions and type(actions[0]) is not SendClose:
            return payload  # SendPong: answered by _on_frames, once per burst
        self._apply(actions, now, events)  # the peer floods us (rule peer-ping): failed
        return None

    def _answer_pings(
        self,
        now: float,
        events: list[ConnectionEvent],
        *,
        last: bytes | None = None,
        heartbeat: int = 0,
    ) -> None:
        """Report :meth:`ping` calls answered, oldest first: up to and including the one
        with payload ``last``, or else those sent before heartbeat number ``heartbeat``."""
        pings = self._user_pings
        assert pings is not None
        for payload, (sent, seq) in list(pings.items()):
            if last is None and seq >= heartbeat:
                return
            del pings[payload]
            events.append(PingAnswered(payload=payload, rtt=now - sent))
            if payload == last:
                return

    def _assemble(
        self, event: ws.TextMessage | ws.BytesMessage, now: float, events: list[ConnectionEvent]
    ) -> str | bytes | None:
        """A whole message from wsproto's pieces, or ``None`` while incomplete. The
        pieces go into one buffer as they come (text re-encoded: wsproto hands over
        whole code points), so a message of many tiny frames costs its size, not an
        object per frame; past ``max_message_size`` or ``max_fragments``, fail (1009)."""
        if self._skip_message or not self.heartbeat.is_open:
            self._skip_message = not event.message_finished
            return None
        data = event.data
        self._size += len(data)
        if event.frame_finished:
            self._fragments += 1
        if self._max_size is not None and self._size > self._max_size:
            self._drop_message(now, events, "message too big")
            return None
        if self._fragments > self._max_fragments:
            self._drop_message(now, events, "message in too many fragments")
            return None
        partial = self._partial
        if not event.message_finished:
            if partial is None:
                partial = self._partial = bytearray()
            partial += data.encode("utf-8") if isinstance(data, str) else data
            return None
        self._size = self._fragments = 0
        if partial is None:  # a message in one piece
            return data if isinstance(data, str) else bytes(data)
        self._partial = None
        if isinstance(data, str):
            partial += data.encode("utf-8")
            return partial.decode("utf-8")
        partial += data
        return bytes(partial)

    def _drop_message(self, now: float, events: list[ConnectionEvent], reason: str) -> None:
        """Refuse the message being received: fail the connection with 1009 (no more
        of the read is parsed: the transport is released)."""
        self._partial = None
        self._size = self._fragments = 0
        self._apply(self.heartbeat.fail(now, 1009, reason), now, events)

    def _on_message(self, data: str | bytes, now: float, events: list[ConnectionEvent]) -> None:
        """A whole message arrived while open: a heartbeat of the application's, or data."""
        if isinstance(data, str) and self._classify:
            kind = self._codec.classify(data)
            if kind is _APP_PING:
                self._apply(self.heartbeat.handle(AppPingReceived(now=now)), now, events)
                return
            if kind is _APP_PONG:
                self._apply(self.heartbeat.handle(AppPongReceived(now=now)), now, events)
                return
        events.append(message(data))

    def _on_close(
        self, event: ws.CloseConnection, layer: WsFrames, now: float, events: list[ConnectionEvent]
    ) -> None:
        code, reason = int(event.code), event.reason or ""  # a plain int, not wsproto's enum
        if layer.state in (ConnectionState.OPEN, ConnectionState.LOCAL_CLOSING):
            # wsproto reports a frame it cannot parse as a CloseConnection without
            # changing its state: a protocol error, and we fail the connection.
            if code == 1007:
                # (wsproto's reason is the decoder's error, whose byte position counts
                # from the start of whichever read held the byte: not the peer's news.)
                reason = _INVALID_UTF8
            reason = reason.encode("utf-8")[:123].decode("utf-8", "ignore")
            self._apply(self.heartbeat.fail(now, code, reason), now, events)
            return
        if self._close_code is None:
            self._close_code, self._close_reason = code, reason
            self._closed_by = "remote"
            events.append(Closing(code=code, reason=reason, by_peer=True))
        self._apply(
            self.heartbeat.handle(CloseReceived(now=now, code=code, reason=reason)), now, events
        )

    def _apply(
        self, actions: Iterable[Action], now: float, events: list[ConnectionEvent]
    ) -> list[ConnectionEvent]:
        # The heartbeat is open exactly while wsproto is OPEN, and it asks for a close
        # frame only while wsproto can send one (OPEN or REMOTE_CLOSING), so every send
        # below is legal. Pongs never come here: _on_frames coalesces them.
        out = self._out
        for action in actions:
            cls = type(action)
            if cls is SendPing:
                self._send_control(OP_PING, action.payload)  # type: ignore[union-attr]
            elif cls is RttSample:
                events.append(action)  # type: ignore[arg-type]
            elif cls is SendAppPing:
                out.append(self._frame_layer().send(ws.Message(data=self._codec.ping_text)))
            elif cls is SendAppPong:
                out.append(self._frame_layer().send(ws.Message(data=self._codec.pong_text)))
            elif cls is SendClose:
                assert isinstance(action, SendClose)
                if self._close_code is None:
                    self._close_code, self._close_reason = action.code, action.reason
                    self._closed_by = "local"
                    events.append(Closing(code=action.code, reason=action.reason, by_peer=False))
                close = ws.CloseConnection(code=action.code, reason=action.reason)
                out.append(self._frame_layer().send(close))
            else:  # CloseTransport, Abort, PeerDead: for the driver / application
                if cls is CloseTransport or cls is Abort:
                    self._transport_closing = True
                    if cls is Abort and self._handshake is not None:
                        self._closed_by = "local"  # the opening handshake timed out
                events.append(action)  # type: ignore[arg-type]
        return events
