"""What every driver does with the core's events, written once.

A driver owns a transport, a clock and a timer; everything else it does is the
same for every runtime, and lives here, in :class:`DriverBase`: carrying out the
events a :class:`~heartbeat_core.HeartbeatConnection` returns (write, queue a
message and pause reading when the queue is full, answer a request through the
:class:`~heartbeat_core.policy.ServerPolicy`, close or abort), recording how the
connection closed, logging, and reporting every event to ``on_event``.

A subclass supplies the runtime through a few small methods (the ``_rt_*``
methods: clock, write, close, abort, pause and resume reading, file the timer)
and through the notifications it cares about (``_opened``, ``_refused``,
``_ping_answered``, ``_gone``). None of them decides *when* or *whether*
anything happens: the core does.

``on_event(conn, event)`` sees every event of the core, in the order the core
produced them, each once the driver has carried it out (so ``conn.close_code``
is set when it sees ``Closing``); follow-up events (an ``Accepted`` after a
``Request``) come after the event that caused them. Every connection reports
exactly one ``Closed``, whether or not it ever opened.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, ClassVar, Protocol, TypeAlias

from heartbeat_core.connection import HeartbeatConnection, Role
from heartbeat_core.errors import ConnectionClosedError, HandshakeError
from heartbeat_core.policy import ServerPolicy
from heartbeat_core.queue import ReceiveQueue
from heartbeat_core.timers import TimerItem
from heartbeat_core.uri import loggable
from heartbeat_core.wsevents import (
    Abort,
    Accepted,
    Closed,
    CloseTransport,
    Closing,
    ConnectionEvent,
    HandshakeFailed,
    HttpRequest,
    Message,
    PeerDead,
    PingAnswered,
    Rejected,
    Request,
    RttSample,
)

__all__ = ["DriverBase", "EventCallback", "ServerSide", "report_event"]

_CLIENT = Role.CLIENT  # (a global: cheaper than the enum's attribute on 3.10/3.11)

#: ``on_event(connection, event)``: every event of every connection.
EventCallback: TypeAlias = Callable[[Any, ConnectionEvent], None]


def report_event(
    on_event: EventCallback, owner: object, event: ConnectionEvent, logger: logging.Logger
) -> None:
    """``on_event(owner, event)``; what it raises is logged on ``logger`` and goes no
    further (a failing callback never breaks the connection that called it)."""
    try:
        on_event(owner, event)
    except Exception:
        # (the event's name only: a Request's repr holds the target's query and headers)
        logger.exception("on_event callback failed on %s", type(event).__name__)


class ServerSide(Protocol):
    """What a driver's connection needs of the server that accepted it: ``closing``
    (new upgrades are then refused with 503), ``_start(conn)`` when the connection
    opened (run the application's handler), ``_forget(conn)`` when it is gone."""

    @property
    def closing(self) -> bool: ...

    def _start(self, conn: Any) -> None: ...

    def _forget(self, conn: Any) -> None: ...


class DriverBase(TimerItem):
    """The runtime-neutral half of a driver's connection (see the module's docstring)."""

    __slots__ = (
        "_debug",
        "_fixed_rate",
        "_has_opened",
        "_logger",
        "_on_event",
        "_policy",
        "_running",
        "close_code",
        "close_reason",
        "closed_by",
        "core",
        "headers",
        "path",
        "queue",
        "remote_address",
        "subprotocol",
    )

    _HANDLER_NAMES: ClassVar[dict[type, str]] = {
        RttSample: "_on_rtt_sample",
        Message: "_on_message",
        PingAnswered: "_on_ping_answered",
        Closing: "_on_closing",
        PeerDead: "_on_peer_dead",
        Accepted: "_on_accepted",
        Request: "_on_request",
        HttpRequest: "_on_request",
        Rejected: "_on_rejected",
        HandshakeFailed: "_on_handshake_failed",
        CloseTransport: "_on_end",
        Abort: "_on_end",
    }
    #: Event type -> handler function, made per class (so subclasses may override).
    _HANDLERS: ClassVar[dict[type, Callable[..., Any]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._HANDLERS = {kind: getattr(cls, name) for kind, name in cls._HANDLER_NAMES.items()}

    def __init__(
        self,
        core: HeartbeatConnection,
        queue: ReceiveQueue,
        *,
        logger: logging.Logger,
        on_event: EventCallback | None = None,
        policy: ServerPolicy | None = None,
    ) -> None:
        super().__init__()  # (TimerItem: where the driver's timer wheel files it)
        #: The sans-IO connection underneath (read it only, e.g. ``core.phase``).
        self.core: HeartbeatConnection = core
        #: Messages that arrived and wait for the application.
        self.queue: ReceiveQueue = queue
        self._logger = logger
        # Per-heartbeat lines are logged if DEBUG was on when the connection was made
        # (a disabled debug() call on every pong costs more than the rest of its logging).
        self._debug = logger.isEnabledFor(logging.DEBUG)
        self._on_event = on_event
        self._policy = policy
        # A fixed-rate heartbeat can be overdue when its pong comes (a wake-up while it
        # was outstanding filed the connection at the timeout): its pong files it anew.
        self._fixed_rate = core.config.fixed_rate
        self.remote_address: tuple[str, int] | None = None
        self.subprotocol: str | None = None
        #: The request target (server) or the URI's target (client).
        self.path: str = "/"
        #: The request's headers (server) or the response's headers (client).
        self.headers: list[tuple[bytes, bytes]] = []
        self.close_code: int | None = None
        self.close_reason: str | None = None
        self.closed_by: str | None = None
        self._has_opened = False
        self._running: list[ConnectionEvent] | None = None  # what _process is carrying out

    def __str__(self) -> str:  # formatted only when a log record is emitted
        return f"{self.core.role.value} {self.remote_address}"

    # ------------------------------------------------------------- the runtime

    def _rt_now(self) -> float:
        """The driver's monotonic clock."""
        raise NotImplementedError

    def _rt_write(self, data: bytes) -> None:
        raise NotImplementedError

    def _rt_close(self) -> None:
        """Close the transport once written data is flushed."""
        raise NotImplementedError

    def _rt_abort(self) -> None:
        """Drop the transport now."""
        raise NotImplementedError

    def _rt_pause(self) -> None:
        """Stop reading the transport."""
        raise NotImplementedError

    def _rt_resume(self) -> None:
        """Read the transport again."""
        raise NotImplementedError

    def _rt_file(self, when: float | None) -> None:
        """Make sure :meth:`_timer_due` runs at or after ``when`` (``None``: no timer)."""
        raise NotImplementedError

    def _rt_deliver(self, data: str | bytes) -> bool:
        """Queue a message for the application (``self.queue.push``) and wake a reader;
        True when reading must pause. Threaded drivers hold their lock here."""
        raise NotImplementedError

    def _rt_stop_pausing(self) -> bool:
        """``self.queue.stop_pausing()`` (under the driver's lock, if it has one)."""
        raise NotImplementedError

    # ----------------------------------------------------------- notifications

    def _opened(self) -> None:
        """The opening handshake completed (either side)."""

    def _refused(self, error: HandshakeError) -> None:
        """Client side: the server refused the upgrade."""

    def _ping_answered(self, payload: bytes, rtt: float) -> None:
        """A ping of the application's was answered."""

    def _closing(self) -> None:
        """A close began (either side): no more messages will arrive."""

    def _refusing(self) -> bool:
        """Server side: True while new upgrades must be refused (shutting down)."""
        return False

    # ------------------------------------------------------------------ input

    def _received(self, data: bytes | None) -> None:
        """Bytes read from the transport (``None``: end of file)."""
        now = self._rt_now()
        self._process(self.core.receive_data(data, now), now)

    def _timer_due(self) -> None:
        """The timer filed with :meth:`_rt_file` is due (or early: harmless)."""
        now = self._rt_now()
        core = self.core
        frame = core.ping_due(now)
        if frame is not None:  # the common timer: a heartbeat (what _process does with it)
            self._rt_write(frame)
            self._rt_file(core.heartbeat.wake_at)
            return
        self._process(core.timer_fired(now), now)

    def _transport_made(self) -> None:
        """The transport connected: the opening handshake is now bounded."""
        now = self._rt_now()
        self.core.connection_made(now)
        self._rt_file(self.core.heartbeat.wake_at)

    def _transport_lost(self) -> Closed:
        """The transport is gone: the final ``Closed`` (reported to ``on_event``)."""
        closed = self.core.connection_lost(self._rt_now())[0]
        assert isinstance(closed, Closed)
        self.close_code, self.close_reason, self.closed_by = closed.code, closed.reason, closed.by
        if self._has_opened:
            self._logger.info(
                "%s closed: code=%d reason=%r by %s", self, closed.code, closed.reason, closed.by
            )
        self._emit(closed)
        return closed

    # ----------------------------------------------------------------- output

    def _flush(self) -> None:
        data = self.core.data_to_send()
        if data:
            self._rt_write(data)

    def _process(self, events: list[ConnectionEvent], now: float) -> None:
        """Carry out the core's events in order, report each to ``on_event``, write what
        the core queued, end the transport if told, and file the timer anew.

        Handling an event may cause more (a ``Request``'s answer, the pause a full
        queue causes), and so may ``on_event`` (closing the connection): they are
        appended to ``events`` and carried out after it."""
        running = self._running
        if running is not None:
            # Called again from a handler or from on_event (which closed the connection,
            # say): these come after the events being carried out, in the core's order.
            running += events
            return
        core = self.core
        if len(events) == 1:
            event = events[0]
            if type(event) is RttSample:
                # The common read of an idle connection: a pong, which _on_rtt_sample
                # only logs (at DEBUG); on_event hears of it below, once it is carried out.
                quiet = not self._debug
            elif type(event) is Message and self._on_event is None:
                # The common read of a busy connection: one message, handed over here
                # (and carried out: with on_message, perhaps answered already). Its
                # handler pauses reading when the queue is full: the pause's own
                # events, none today, are carried out below like any others.
                events = self._on_message(event, now) or []
                quiet = not events
            else:
                quiet = False
            if quiet:
                # The read queued no frame of its own, but may have held more (a ping of
                # the peer's, to answer now). A pong or a message is a sign of life, which
                # never brings wake_at earlier (HeartbeatState.wake_at) unless to a
                # fixed-rate heartbeat already due: a connection filed at (or before) the
                # last wake_at needs no new filing. (What the application did meanwhile,
                # e.g. close, was carried out and filed already.)
                if core._out:  # (data_to_send()'s own test, without the call)
                    self._rt_write(core.data_to_send())
                if self._timer_key is None or self._fixed_rate:  # (TimerItem's: not filed)
                    self._rt_file(core.heartbeat.wake_at)
                if self._on_event is not None:  # (an RttSample: on_event may close, say,
                    self._emit(event)  # which is carried out at once, after this read)
                return
        if not events:
            # The other common call: a timer that sent a heartbeat.
            data = core.data_to_send()
            if data:
                self._rt_write(data)
            self._rt_file(core.heartbeat.wake_at)
            return
        end: type | None = None
        handlers = self._HANDLERS
        on_event = self._on_event
        self._running = events
        try:
            i = 0
            while i < len(events):
                event = events[i]
                i += 1
                more = handlers[type(event)](self, event, now)
                if more is True:
                    end = Abort if type(event) is Abort or end is Abort else CloseTransport
                elif more:
                    events += more
                if on_event is not None:
                    self._emit(event)
        finally:
            self._running = None
        data = core.data_to_send()
        if data:
            self._rt_write(data)
        if end is Abort:
            self._rt_abort()
        elif end is CloseTransport:
            self._rt_close()
        self._rt_file(core.heartbeat.wake_at)

    def _emit(self, event: ConnectionEvent) -> None:
        if self._on_event is not None:
            report_event(self._on_event, self, event, self._logger)

    # --------------------------------------------------------------- handlers

    def _on_rtt_sample(self, event: RttSample, now: float) -> None:
        if self._debug:
            self._logger.debug("%s: heartbeat %d rtt=%.6f", self, event.seq, event.rtt)

    def _on_peer_dead(self, event: PeerDead, now: float) -> None:
        self._logger.info(
            "%s: heartbeat %d unanswered after %.3f s: peer dead", self, event.seq, event.waited
        )

    def _on_message(self, event: Message, now: float) -> list[ConnectionEvent] | None:
        if not self._rt_deliver(event.data):
            return None
        # Backpressure: stop reading, and tell the core, so that nobody is declared dead
        # while the peer's answers wait unread (rule paused-reading).
        self._rt_pause()
        self._logger.debug(
            "%s: %d messages (%d bytes) wait unread: reading paused",
            self,
            len(self.queue),
            self.queue.size,
        )
        return self.core.pause_reading(now)

    def _resume(self, now: float) -> list[ConnectionEvent]:
        """Read again (the application took enough messages, or a close began); an
        outstanding heartbeat gets a fresh timeout (rule paused-reading)."""
        self._rt_resume()
        self._logger.debug("%s: reading resumed", self)
        return self.core.resume_reading(now)

    def _on_ping_answered(self, event: PingAnswered, now: float) -> None:
        self._ping_answered(event.payload, event.rtt)

    def _on_closing(self, event: Closing, now: float) -> list[ConnectionEvent] | None:
        self.close_code, self.close_reason = event.code, event.reason
        self.closed_by = "remote" if event.by_peer else "local"
        self._logger.debug(
            "%s closing: code=%d reason=%r by %s", self, event.code, event.reason, self.closed_by
        )
        self._closing()
        if self._rt_stop_pausing():
            # No more messages are delivered: read on, for the peer's close frame.
            return self._resume(now)
        return None

    def _on_accepted(self, event: Accepted, now: float) -> None:
        self.subprotocol = event.subprotocol
        self._has_opened = True
        if self.core.role is _CLIENT:
            self.headers = list(event.extra_headers)
        if self._logger.isEnabledFor(logging.INFO):  # (loggable() costs a regex)
            self._logger.info(
                "%s open: path=%s subprotocol=%s", self, loggable(self.path), self.subprotocol
            )
        self._opened()

    def _on_request(self, event: Request | HttpRequest, now: float) -> list[ConnectionEvent]:
        assert self._policy is not None  # (only servers see requests)
        if isinstance(event, Request):
            self.path = event.target
            self.headers = list(event.extra_headers)
        return self._policy.answer(self.core, event, now, refusing=self._refusing())

    def _on_rejected(self, event: Rejected, now: float) -> None:
        self._refused(
            HandshakeError(
                f"the server answered the upgrade with HTTP {event.status}, not 101: "
                "check the URI's path and the server's logs",
                status=event.status,
            )
        )

    def _on_handshake_failed(self, event: HandshakeFailed, now: float) -> None:
        self._logger.info("%s: opening handshake failed: %s", self, event.reason)
        self._refused(
            HandshakeError(
                f"the opening handshake failed: {event.reason}: check that the URI points "
                "at a WebSocket server"
            )
        )

    def _on_end(self, event: CloseTransport | Abort, now: float) -> bool:
        return True

    # ----------------------------------------------------------------- errors

    def _closed_error(self, what: str) -> ConnectionClosedError:
        core = self.core
        code, reason = core.close_code, core.close_reason
        detail = f"{code} {reason!r}" if reason else str(code)
        return ConnectionClosedError(
            f"cannot {what}: the connection is closed ({detail}); open a new one to continue",
            code,
            reason,
        )


DriverBase._HANDLERS = {
    kind: getattr(DriverBase, name) for kind, name in DriverBase._HANDLER_NAMES.items()
}
