"""``HeartbeatConnection``: wsproto and the heartbeat state machine, sans-IO.

Bytes in (with ``now``), bytes out, events out. A driver does four things:

1. ``events = conn.receive_data(data, now)`` for every read (``None`` at EOF);
2. writes ``conn.data_to_send()`` after every call;
3. arms one timer at ``conn.deadline`` and calls ``conn.timer_fired(now)``;
4. carries out ``CloseTransport`` / ``Abort`` events and hands the rest to
   the application; calls ``conn.connection_lost(now)`` when the socket is gone.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable
from http import HTTPStatus

import wsproto
import wsproto.events as ws
from wsproto.connection import Connection as WsFrames
from wsproto.connection import ConnectionState, ConnectionType
from wsproto.utilities import LocalProtocolError as WsLocalProtocolError
from wsproto.utilities import RemoteProtocolError as WsRemoteProtocolError

from heartbeat_core.actions import (
    Abort,
    Action,
    CloseTransport,
    RttSample,
    SendAppPing,
    SendAppPong,
    SendClose,
    SendPing,
    SendPong,
)
from heartbeat_core.codec import JSON_CODEC, AppCodec, AppKind
from heartbeat_core.config import HeartbeatConfig, HeartbeatStyle
from heartbeat_core.errors import ConfigError, ConnectionClosedError, LocalProtocolError
from heartbeat_core.events import (
    AppPingReceived,
    AppPongReceived,
    BytesReceived,
    CloseReceived,
    CloseRequested,
    ConnectionClosed,
    ConnectionOpened,
    PingReceived,
    PongReceived,
    ReadingPaused,
    ReadingResumed,
)
from heartbeat_core.frames import (
    OP_BINARY,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    FrameBoundary,
    server_frame,
    simple_frames,
)
from heartbeat_core.state import HeartbeatPhase, HeartbeatState, validate_close
from heartbeat_core.stats import HeartbeatStats
from heartbeat_core.wsevents import (
    Accepted,
    Closed,
    Closing,
    ConnectionEvent,
    HttpRequest,
    Message,
    PingAnswered,
    Rejected,
    Request,
)

__all__ = ["HeartbeatConnection", "Role"]

_Headers = Iterable[tuple[bytes | str, bytes | str]]


class Role(enum.Enum):
    CLIENT = "client"
    SERVER = "server"


def _phrase(status: int) -> bytes:
    try:
        return HTTPStatus(status).phrase.encode("ascii")
    except ValueError:
        return b"Unknown"


def _header_pairs(headers: _Headers) -> list[tuple[bytes, bytes]]:
    pairs = []
    for name, value in headers:
        pairs.append(
            (
                name.encode("ascii") if isinstance(name, str) else name,
                value.encode("latin-1") if isinstance(value, str) else value,
            )
        )
    return pairs


class HeartbeatConnection:
    """One WebSocket connection with heartbeats, as a sans-IO object.

    ``max_message_size`` bounds an incoming message (bytes for binary,
    characters for text); a larger one closes the connection with 1009.
    ``random`` is the random source for jitter (see :class:`HeartbeatState`).
    Application-level heartbeat messages (``codec``) are recognised when the
    style is ``APP`` or ``config.answer_app_pings`` is true; they are consumed,
    never delivered as messages.

    Pongs that answer nothing (neither a heartbeat nor :meth:`ping`) are legal and
    ignored, but the state counts them under its flood rule (rule ``peer-ping``):
    one closer than ``peer_ping_min_interval`` to the previous one is a strike,
    and past ``peer_ping_max_strikes`` the connection fails with 1008 ("too many
    pongs"), as it does for a ping flood. A pong answering a :meth:`ping` call
    reaches the state marked ``solicited``, so it is never a strike.
    """

    def __init__(
        self,
        role: Role,
        config: HeartbeatConfig | None = None,
        *,
        codec: AppCodec = JSON_CODEC,
        max_message_size: int | None = 1 << 20,
        random: Callable[[], float] | None = None,
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
        self.role = role
        self.heartbeat = HeartbeatState(config, random=random)
        self._config = self.heartbeat.config
        self._codec = codec
        self._classify = self._config.style is HeartbeatStyle.APP or self._config.answer_app_pings
        self._max_size = max_message_size
        # The handshake object until the connection opens, then only its frame layer
        # (the HTTP state is dropped: about 2.8 KB per connection). An open server
        # makes its frame layer at first use (None until then, see _frame_layer).
        self._ws: wsproto.WSConnection | WsFrames | None = wsproto.WSConnection(
            ConnectionType.CLIENT if role is Role.CLIENT else ConnectionType.SERVER
        )
        self._out: list[bytes] = []
        # Made when first needed: most connections never use them.
        self._parts: list[str | bytes] | None = None
        self._size = 0
        self._skip_message = False
        # payload -> (sent at, the heartbeat seq outstanding then)
        self._user_pings: dict[bytes, tuple[float, int]] | None = None
        self._user_seq = 0
        self._request: ws.Request | None = None
        self._reject_status: int | None = None
        self._reject_headers: list[tuple[bytes, bytes]] = []
        self._reject_body: list[bytes] | None = None
        self._close_code: int | None = None
        self._close_reason = ""
        self._closed_by = "remote"
        self._transport_closing = False
        self._done = False
        # Server side: the request bytes, kept until the handshake ends, to describe a
        # plain HTTP request (not an upgrade) to the application.
        self._handshake: bytearray | None = bytearray() if role is Role.SERVER else None
        self._http_pending = False
        # Server side, once open: where wsproto's frame parser stands (see frames.py).
        self._frames: FrameBoundary | None = None
        self._after_request = b""

    # ------------------------------------------------------------------ views

    @property
    def phase(self) -> HeartbeatPhase:
        """The heartbeat phase (see :class:`HeartbeatPhase`)."""
        return self.heartbeat.phase

    @property
    def is_open(self) -> bool:
        """True while messages can be sent."""
        frame_layer = self._ws
        return self.heartbeat.is_open and (
            frame_layer is None or frame_layer.state is ConnectionState.OPEN
        )

    @property
    def deadline(self) -> float | None:
        """When to call :meth:`timer_fired` next (``None``: no timer needed)."""
        return self.heartbeat.deadline

    @property
    def wake_at(self) -> float | None:
        """:attr:`deadline`, or earlier while a heartbeat is outstanding: a time to file
        the timer at that a pong never moves earlier (see ``HeartbeatState.wake_at``)."""
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

    def data_to_send(self) -> bytes:
        """The bytes to write to the transport now (empty when there are none)."""
        if not self._out:
            return b""
        data = b"".join(self._out) if len(self._out) > 1 else self._out[0]
        self._out.clear()
        return data

    # ------------------------------------------------------------- handshake

    def initiate(
        self,
        host: str,
        target: str = "/",
        *,
        subprotocols: Iterable[str] = (),
        extra_headers: _Headers = (),
    ) -> None:
        """Client side: queue the upgrade request."""
        if self.role is not Role.CLIENT:
            raise LocalProtocolError("initiate() is for clients; servers wait for a Request")
        if self._frame_layer().state is not ConnectionState.CONNECTING or self._out:
            raise LocalProtocolError("initiate() was already called")
        self._out.append(
            self._frame_layer().send(
                ws.Request(
                    host=host,
                    target=target,
                    subprotocols=list(subprotocols),
                    extra_headers=_header_pairs(extra_headers),
                )
            )
        )

    def accept(
        self, *, now: float, subprotocol: str | None = None, extra_headers: _Headers = ()
    ) -> list[ConnectionEvent]:
        """Server side: accept the pending :class:`Request`; heartbeats start at ``now``."""
        if self._request is None:
            raise LocalProtocolError("accept() needs a pending Request from receive_data()")
        if subprotocol is not None and subprotocol not in self._request.subprotocols:
            raise LocalProtocolError(
                f"subprotocol {subprotocol!r} was not offered by the client "
                f"(offered: {self._request.subprotocols!r})"
            )
        self.heartbeat.handle(ConnectionOpened(now=now))
        self._request = None
        self._frames = FrameBoundary()
        early, self._after_request = self._after_request, b""
        self._out.append(
            self._frame_layer().send(
                ws.AcceptConnection(
                    subprotocol=subprotocol, extra_headers=_header_pairs(extra_headers)
                )
            )
        )
        self._drop_handshake()
        if early:
            # wsproto's server drops bytes that came in the same read as the request
            # (a client should not send them, but nothing received is lost here).
            return self.receive_data(early, now)
        return self._pump(now, [])

    def reject(
        self, status: int = 403, body: bytes = b"", *, headers: _Headers = ()
    ) -> list[ConnectionEvent]:
        """Server side: refuse the pending :class:`Request` with an HTTP response."""
        if self._request is None:
            raise LocalProtocolError("reject() needs a pending Request from receive_data()")
        if not 400 <= status <= 599:
            raise LocalProtocolError(f"reject() needs a 4xx or 5xx status, got {status}")
        self._request = None
        pairs = _header_pairs(headers)
        pairs.append((b"content-length", b"%d" % len(body)))
        handshake = self._frame_layer()
        self._out.append(
            handshake.send(ws.RejectConnection(status_code=status, headers=pairs, has_body=True))
        )
        self._out.append(handshake.send(ws.RejectData(data=body, body_finished=True)))
        self._closed_by = "local"
        self._transport_closing = True
        return [CloseTransport()]

    # ----------------------------------------------------------------- input

    def receive_data(self, data: bytes | None, now: float) -> list[ConnectionEvent]:
        """Feed bytes read from the transport (``None`` at end of file)."""
        frames = self._frames
        if (
            frames is not None
            and data
            and self.heartbeat.is_open
            and (
                self._ws is None  # (wsproto never saw a byte: nothing of it is pending)
                or (frames.between_frames and not self._parts and not self._skip_message)
            )
        ):
            # The common read on an open server: a pong, a ping, a short message or a
            # few, complete, while wsproto holds no partial frame or message.
            simple = simple_frames(data, masked=True)
            if simple is not None:
                done = self._simple_read(simple, now)
                if done is not None:
                    return done
        events: list[ConnectionEvent] = []
        hb = self.heartbeat
        if self._done:
            raise LocalProtocolError("receive_data() after connection_lost(): the connection ended")
        self._check_now(now)
        if self._transport_closing or self._http_pending:
            # The transport is being released (or an HTTP response is on its way):
            # nothing read from now on is needed; it is dropped unparsed.
            if hb.phase is not HeartbeatPhase.NEW:
                hb.handle(BytesReceived(now=now))  # records now; a no-op when closing
            return events
        if data is None:
            return self._eof(now, events)
        if hb.is_open:
            hb.bytes_received(now)
            if frames is not None:
                frames.feed(data)
        elif self._request is not None:
            # Between the Request and accept(): wsproto would drop these bytes, so
            # they wait, with any that came in the request's own read, for accept().
            self._after_request += data
            return events
        elif self._handshake is not None:
            self._handshake += data  # h11 bounds an incomplete request to 16 KiB
        try:
            self._frame_layer().receive_data(data)
            self._pump(now, events)
        except (WsRemoteProtocolError, WsLocalProtocolError, UnicodeError):
            # (wsproto's handshake raises UnicodeError on a non-ASCII Host header.)
            if self.role is Role.SERVER and hb.phase is HeartbeatPhase.NEW:
                self._bad_handshake(events)
            else:  # a client never answers a bad response with HTTP: it just hangs up
                self._fail(now, events, 1002, "protocol error")
        return events

    def respond(
        self, status: int, body: bytes = b"", *, headers: _Headers = ()
    ) -> list[ConnectionEvent]:
        """Server side: answer the pending :class:`HttpRequest`; the transport then closes."""
        if not self._http_pending:
            raise LocalProtocolError("respond() needs a pending HttpRequest from receive_data()")
        if not 200 <= status <= 599:
            raise LocalProtocolError(f"respond() needs a status in 200-599, got {status}")
        self._http_pending = False
        return self._http_response(status, body, _header_pairs(headers))

    def timer_fired(self, now: float) -> list[ConnectionEvent]:
        """The timer armed at :attr:`deadline` went off (early calls change nothing)."""
        actions = self.heartbeat.timer_fired(now)
        events: list[ConnectionEvent] = []
        if actions:
            self._apply(actions, now, events)
        return events

    def pause_reading(self, now: float) -> list[ConnectionEvent]:
        """The driver stopped reading the transport (its receive queue is full).

        Until :meth:`resume_reading`, no dead-peer verdict is given: the peer's
        answer may be waiting unread (rule ``paused-reading``). Heartbeats still
        go out when due. Pausing twice is harmless. Returns the events to carry
        out (none today; re-arm the timer at :attr:`deadline`). Raises
        :class:`LocalProtocolError` before the connection opened or after
        :meth:`connection_lost`.
        """
        events: list[ConnectionEvent] = []
        self._apply(self.heartbeat.handle(ReadingPaused(now=now)), now, events)
        return events

    def resume_reading(self, now: float) -> list[ConnectionEvent]:
        """The driver reads the transport again: an outstanding heartbeat gets a
        fresh timeout from ``now``. Harmless when not paused; raises like
        :meth:`pause_reading`. Re-arm the timer at :attr:`deadline` afterwards."""
        events: list[ConnectionEvent] = []
        self._apply(self.heartbeat.handle(ReadingResumed(now=now)), now, events)
        return events

    @property
    def reading_paused(self) -> bool:
        """True between :meth:`pause_reading` and :meth:`resume_reading`."""
        return self.heartbeat.reading_paused

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
        self._out.append(self._frame_layer().send(ws.Ping(payload=payload)))
        return payload

    def close(self, now: float, code: int = 1000, reason: str = "") -> list[ConnectionEvent]:
        """Start the closing handshake (bounded by ``close_timeout``). Harmless when closing."""
        validate_close(code, reason)
        events: list[ConnectionEvent] = []
        if self.heartbeat.phase is HeartbeatPhase.NEW:
            self._check_now(now)
            # Not open yet: nothing to hand-shake; just release the transport.
            if not self._transport_closing:
                self._closed_by = "local"
                self._transport_closing = True
                events.append(CloseTransport())
            return events
        self._apply(
            self.heartbeat.handle(CloseRequested(now=now, code=code, reason=reason)), now, events
        )
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

    def _eof(self, now: float, events: list[ConnectionEvent]) -> list[ConnectionEvent]:
        # (Reached only while the transport is not being closed yet.)
        if self.heartbeat.is_open:
            # The peer hung up without a close frame: stop heartbeats (no ping, no
            # dead-peer verdict on a stream that has ended) and bound the release by
            # close_timeout. The close frame the core asks for cannot be sent: dropped.
            self.heartbeat.handle(CloseReceived(now=now, code=1006, error=True))
        self._transport_closing = True
        events.append(CloseTransport())
        return events

    def _fail(self, now: float, events: list[ConnectionEvent], code: int, reason: str) -> None:
        if self.heartbeat.is_open or self.heartbeat.phase is HeartbeatPhase.CLOSING:
            self._apply(
                self.heartbeat.handle(CloseReceived(now=now, code=code, reason=reason, error=True)),
                now,
                events,
            )
        else:  # still in the opening handshake (input stops at CloseTransport)
            self._closed_by = "local"
            self._transport_closing = True
            events.append(CloseTransport())

    def _frame_layer(self) -> wsproto.WSConnection | WsFrames:
        """wsproto: the handshake object, then its frame layer, made on an open server
        at first use (a fresh one is exactly what accept() left: OPEN, nothing buffered;
        until then every read was complete pings and pongs, taken by _control_read)."""
        layer = self._ws
        if layer is None:
            layer = self._ws = WsFrames(ConnectionType.SERVER)
        return layer

    def _simple_read(
        self, frames: list[tuple[int, bytes]], now: float
    ) -> list[ConnectionEvent] | None:
        """A read of nothing but complete simple frames (see :func:`simple_frames`) on an
        open server, handled as wsproto's events would be. ``None`` (nothing changed)
        when wsproto must take the read: invalid UTF-8 (1007) or a message over
        ``max_message_size`` (1009)."""
        if len(frames) == 1 and frames[0][0] == OP_PONG:  # the common read: one pong
            events: list[ConnectionEvent] = []
            self._on_pong_frame(frames[0][1], now, events)
            return events
        messages: list[str | bytes] = []
        if frames[0][0] <= OP_BINARY or len(frames) > 1:
            for opcode, payload in frames:
                if opcode == OP_TEXT:
                    try:
                        messages.append(payload.decode("utf-8"))
                    except UnicodeDecodeError:
                        return None
                elif opcode == OP_BINARY:
                    messages.append(payload)
            limit = self._max_size
            if limit is not None and any(len(m) > limit for m in messages):
                return None
        hb = self.heartbeat
        events = []
        if messages:
            hb.bytes_received(now)  # (pings and pongs count as signs of life themselves)
        pong = None
        next_message = iter(messages).__next__
        for opcode, payload in frames:
            if opcode == OP_PONG:
                self._on_pong_frame(payload, now, events)
            elif opcode == OP_PING:
                pong = self._on_ping_frame(payload, now, events)
            else:
                message = next_message()
                if hb.is_open:  # (a peer's application-level ping flood may have closed it)
                    self._on_message(message, now, events)
            if self._transport_closing:
                return events
        if pong is not None:
            self._out.append(server_frame(OP_PONG, pong))
        return events

    def _pump(self, now: float, events: list[ConnectionEvent]) -> list[ConnectionEvent]:
        hb = self.heartbeat
        pong: bytes | None = None
        if self._ws is None:
            return events  # an open server whose frame layer was never needed
        for event in self._ws.events():
            if self._transport_closing:
                # The connection was failed (protocol error, ping flood): whatever else
                # the peer sent is never parsed. A flood of tiny frames in one read
                # would otherwise hold the driver's thread for as long as it takes.
                break
            if isinstance(event, ws.Pong):
                self._on_pong_frame(bytes(event.payload), now, events)
            elif isinstance(event, ws.Ping):
                answer = self._on_ping_frame(bytes(event.payload), now, events)
                if answer is not None:
                    pong = answer  # coalesce a burst: answer the latest (RFC 6455 5.5.3)
            elif isinstance(event, (ws.TextMessage, ws.BytesMessage)):
                self._on_data(event, now, events)
            elif isinstance(event, ws.CloseConnection):
                self._on_close(event, now, events)
            elif isinstance(event, ws.Request):
                # Bytes after the request's blank line reach wsproto's frame parser
                # as its first input once we accept.
                head = self._handshake or b""
                self._after_request = bytes(head.partition(b"\r\n\r\n")[2])
                self._handshake = None
                self._request = event
                events.append(
                    Request(
                        host=event.host,
                        target=event.target,
                        subprotocols=list(event.subprotocols),
                        extra_headers=list(event.extra_headers),
                    )
                )
            elif isinstance(event, ws.AcceptConnection):
                self._drop_handshake()
                hb.handle(ConnectionOpened(now=now))
                events.append(
                    Accepted(subprotocol=event.subprotocol, extra_headers=list(event.extra_headers))
                )
            elif isinstance(event, ws.RejectConnection):
                self._reject_status = event.status_code
                self._reject_headers = list(event.headers)
                if not event.has_body:
                    self._rejected(events)
            else:  # the last kind of event wsproto has
                assert isinstance(event, ws.RejectData)
                if self._reject_body is None:
                    self._reject_body = []
                self._reject_body.append(bytes(event.data))
                if event.body_finished:
                    self._rejected(events)
        if pong is not None and self._ws.state is ConnectionState.OPEN:
            self._out.append(self._ws.send(ws.Pong(payload=pong)))
        return events

    def _drop_handshake(self) -> None:
        handshake = self._ws
        assert isinstance(handshake, wsproto.WSConnection) and handshake.connection is not None
        # A server's frame layer is made again at first use (see _frame_layer).
        self._ws = handshake.connection if self.role is Role.CLIENT else None

    def _on_pong_frame(self, payload: bytes, now: float, events: list[ConnectionEvent]) -> None:
        # A peer may answer only the latest of several pings (RFC 6455 5.5.3), so a
        # pong answers its ping and every earlier one: ping() calls and heartbeats alike.
        hb = self.heartbeat
        user_pings = self._user_pings
        sent = user_pings.get(payload) if user_pings else None
        if sent is None:
            actions = hb.pong_received(now, payload)
        else:
            self._answer_pings(now, events, last=payload)
            if sent[1]:  # the heartbeat sent before this ping
                payload = hb.payload_for(sent[1])
            # Answers our ping(): never a stray pong, even if it acknowledges no heartbeat.
            actions = hb.handle(PongReceived(now=now, payload=payload, solicited=True))
        if actions:
            first = actions[0]
            if type(first) is RttSample:
                if self._user_pings:
                    self._answer_pings(now, events, heartbeat=first.seq)
                assert len(actions) == 1  # a pong's answer: the sample, nothing to send
                events.append(first)
            else:
                # The only other answer is SendClose: stray pongs flood us (rule
                # peer-ping). Fail the connection, as for a ping flood.
                assert isinstance(first, SendClose)
                self._apply(actions, now, events)
                self._fail(now, events, first.code, first.reason)

    def _on_ping_frame(
        self, payload: bytes, now: float, events: list[ConnectionEvent]
    ) -> bytes | None:
        """Returns the pong payload to send, or ``None``."""
        pong = None
        for action in self.heartbeat.handle(PingReceived(now=now, payload=payload)):
            if type(action) is SendPong:
                pong = action.payload
            else:
                # The only other answer is SendClose: the peer floods us (rule
                # peer-ping). Fail the connection (RFC 6455 7.1.7) rather than
                # wait for its close frame.
                assert isinstance(action, SendClose)
                self._apply((action,), now, events)
                self._fail(now, events, action.code, action.reason)
        return pong

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

    def _bad_handshake(self, events: list[ConnectionEvent]) -> None:
        """The client's bytes are not a WebSocket upgrade: describe a plain HTTP
        request to the application, or answer 400 and close."""
        buf, self._handshake = bytes(self._handshake or b""), None
        head, sep, _ = buf.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        parts = lines[0].split(b" ")
        headers = []
        for line in lines[1:]:
            name, colon, value = line.partition(b":")
            if colon:
                headers.append((name.strip().lower(), value.strip()))
        upgrade = any(name == b"upgrade" for name, _ in headers)
        if (
            sep
            and len(parts) == 3
            and parts[0] in (b"GET", b"HEAD")
            and parts[2].startswith(b"HTTP/1.")
            and not upgrade
        ):
            self._http_pending = True
            events.append(
                HttpRequest(
                    method=parts[0].decode("ascii"),
                    target=parts[1].decode("ascii", "replace"),
                    headers=headers,
                )
            )
            return
        events.extend(self._http_response(400, b"Bad WebSocket upgrade request\n", []))

    def _http_response(
        self, status: int, body: bytes, headers: list[tuple[bytes, bytes]]
    ) -> list[ConnectionEvent]:
        self._handshake = None
        lines = [b"HTTP/1.1 %d %s" % (status, _phrase(status))]
        lines += [b"%s: %s" % pair for pair in headers]
        lines += [b"content-length: %d" % len(body), b"connection: close", b"", b""]
        self._out.append(b"\r\n".join(lines) + body)
        self._closed_by = "local"
        self._transport_closing = True
        return [CloseTransport()]

    def _rejected(self, events: list[ConnectionEvent]) -> None:
        assert self._reject_status is not None
        events.append(
            Rejected(
                status=self._reject_status,
                headers=self._reject_headers,
                body=b"".join(self._reject_body or ()),
            )
        )
        self._transport_closing = True
        events.append(CloseTransport())

    def _on_data(
        self, event: ws.TextMessage | ws.BytesMessage, now: float, events: list[ConnectionEvent]
    ) -> None:
        if self._skip_message or not self.heartbeat.is_open:
            self._skip_message = not event.message_finished
            return
        data: str | bytes = event.data if isinstance(event.data, str) else bytes(event.data)
        self._size += len(data)
        if self._max_size is not None and self._size > self._max_size:
            self._parts = None
            self._size = 0
            self._skip_message = not event.message_finished
            self._apply(
                self.heartbeat.handle(CloseRequested(now=now, code=1009, reason="message too big")),
                now,
                events,
            )
            return
        parts = self._parts
        if not event.message_finished:
            if parts is None:
                parts = self._parts = []
            parts.append(data)
            return
        if parts:
            parts.append(data)
            if isinstance(data, str):
                data = "".join(p for p in parts if isinstance(p, str))
            else:
                data = b"".join(p for p in parts if isinstance(p, bytes))
            self._parts = None
        self._size = 0
        self._on_message(data, now, events)

    def _on_message(self, data: str | bytes, now: float, events: list[ConnectionEvent]) -> None:
        """A whole message arrived while open: a heartbeat of the application's, or data."""
        if isinstance(data, str) and self._classify:
            kind = self._codec.classify(data)
            if kind is AppKind.PING:
                self._apply(self.heartbeat.handle(AppPingReceived(now=now)), now, events)
                return
            if kind is AppKind.PONG:
                self._apply(self.heartbeat.handle(AppPongReceived(now=now)), now, events)
                return
        events.append(Message(data=data))

    def _on_close(
        self, event: ws.CloseConnection, now: float, events: list[ConnectionEvent]
    ) -> None:
        # wsproto reports a frame it cannot parse as a CloseConnection without
        # changing its state; a real close frame moves it out of OPEN.
        error = self._frame_layer().state in (ConnectionState.OPEN, ConnectionState.LOCAL_CLOSING)
        code, reason = int(event.code), event.reason or ""  # a plain int, not wsproto's enum
        if self._close_code is None:
            self._close_code, self._close_reason = code, reason
            self._closed_by = "local" if error else "remote"
            events.append(Closing(code=code, reason=reason, by_peer=not error))
        # (Frames only arrive while open or closing: never before the handshake or after
        # connection_lost(), and input stops at CloseTransport.)
        self._apply(
            self.heartbeat.handle(CloseReceived(now=now, code=code, reason=reason, error=error)),
            now,
            events,
        )

    def _apply(
        self, actions: Iterable[Action], now: float, events: list[ConnectionEvent]
    ) -> list[ConnectionEvent]:
        # The heartbeat is open exactly while wsproto is OPEN, and it asks for a close
        # frame only while wsproto can send one (OPEN or REMOTE_CLOSING), so every send
        # below is legal. Pongs never come here: _pump coalesces them.
        out = self._out
        for action in actions:
            cls = type(action)
            if cls is SendPing:
                payload: bytes = action.payload  # type: ignore[union-attr]
                if self._frames is not None:  # an open server: unmasked, no wsproto needed
                    out.append(server_frame(OP_PING, payload))
                else:
                    out.append(self._frame_layer().send(ws.Ping(payload=payload)))
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
                events.append(action)  # type: ignore[arg-type]
        return events
