"""Carrying out the core's actions for a framework that owns the frames, written once.

:class:`~heartbeat_core.DriverBase` drives a :class:`~heartbeat_core.HeartbeatConnection`:
it owns the bytes. When a WebSocket library already parses the frames (websockets,
aiohttp, an ASGI server), the core's :class:`~heartbeat_core.HeartbeatState` is
driven instead, and its actions (``SendPing``, ``SendClose``, ``CloseTransport`` ...)
must be carried out through that library. :class:`ActionRunner` is that dispatch:
the framework integrations (``heartbeat_websockets``, ``heartbeat_aiohttp``,
``heartbeat_asgi``) are each a subclass of it, and so is any integration you write.

The subclassing contract: override :meth:`~ActionRunner.now` (a monotonic clock),
:meth:`~ActionRunner.file_timer` (call :meth:`~ActionRunner.timer_due` at or after
``when``), and the sends your heartbeat style needs: :meth:`~ActionRunner.send_ping`
and :meth:`~ActionRunner.send_pong` (protocol style), :meth:`~ActionRunner.send_text`
(application style), :meth:`~ActionRunner.send_close`,
:meth:`~ActionRunner.close_transport` and :meth:`~ActionRunner.abort`. Then call the
input methods (:meth:`~ActionRunner.opened`, :meth:`~ActionRunner.received`,
:meth:`~ActionRunner.pong_received` ...) as things happen: each reads the clock
once, feeds the state, carries out what it returns, in order, and files the timer
anew. None of the hooks decides *when* or *whether* anything happens: the core does.

``on_event(owner, event)`` sees the same events as a driver's (see
:mod:`heartbeat_core.driver`): every ``RttSample``, ``PeerDead``, ``Closing``,
``CloseTransport``, ``Abort``, and exactly one ``Closed`` per connection, once the
runner has carried each out; ``owner`` is the object given to the runner (the
framework's connection).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any, ClassVar

from heartbeat_core.actions import (
    Abort,
    Action,
    CloseTransport,
    PeerDead,
    RttSample,
    SendAppPing,
    SendAppPong,
    SendClose,
    SendPing,
    SendPong,
)
from heartbeat_core.codec import JSON_CODEC, AppCodec, AppKind
from heartbeat_core.config import HeartbeatConfig
from heartbeat_core.driver import EventCallback, report_event
from heartbeat_core.errors import ConfigError
from heartbeat_core.events import (
    AppPingReceived,
    AppPongReceived,
    CloseReceived,
    CloseRequested,
    ConnectionClosed,
    ConnectionOpened,
    PingReceived,
    PongReceived,
    ReadingPaused,
    ReadingResumed,
)
from heartbeat_core.randomness import RandomSource
from heartbeat_core.state import HeartbeatPhase, HeartbeatState, validate_close
from heartbeat_core.stats import HeartbeatStats
from heartbeat_core.timers import TimerItem
from heartbeat_core.wsevents import Closed, Closing, ConnectionEvent

__all__ = ["ActionRunner"]

_logger = logging.getLogger("heartbeat_core.runner")


class ActionRunner(TimerItem):
    """One connection's heartbeat inside a framework that owns the frames.

    Holds a :class:`~heartbeat_core.HeartbeatState` (``config``, ``random`` are
    passed on to it) and carries out its actions through the hook methods a
    subclass overrides (see the module's docstring). ``codec`` recognises and
    produces application-level heartbeat messages; ``owner`` is what
    ``on_event`` receives as its first argument. It is a
    :class:`~heartbeat_core.timers.TimerItem`: a driver may file it in a
    :class:`~heartbeat_core.TimerWheel`.
    """

    __slots__ = (
        "_closed",
        "_debug",
        "_logger",
        "_on_event",
        "close_code",
        "close_reason",
        "closed_by",
        "codec",
        "owner",
        "state",
    )

    #: Action type -> the method that carries it out (see :meth:`run`).
    _ACTIONS: ClassVar[dict[type, Callable[[ActionRunner, Any], None]]] = {}

    def __init__(
        self,
        config: HeartbeatConfig | None = None,
        *,
        codec: AppCodec = JSON_CODEC,
        on_event: EventCallback | None = None,
        owner: object = None,
        random: RandomSource | None = None,
        logger: logging.Logger | None = None,
    ) -> None:
        if not isinstance(codec, AppCodec):
            raise ConfigError(f"codec must be an AppCodec, got {codec!r}")
        if on_event is not None and not callable(on_event):
            raise ConfigError(f"on_event must be a callable (conn, event), got {on_event!r}")
        super().__init__()  # (TimerItem: where a timer wheel files it)
        #: The heartbeat state machine (read it only, e.g. ``state.phase``).
        self.state: HeartbeatState = HeartbeatState(config, random=random)
        #: The application-level heartbeat format.
        self.codec: AppCodec = codec
        #: What ``on_event`` receives as its first argument.
        self.owner: object = self if owner is None else owner
        self._on_event = on_event
        self._logger = _logger if logger is None else logger
        # Per-heartbeat lines: logged if DEBUG was on when the runner was made.
        self._debug = self._logger.isEnabledFor(logging.DEBUG)
        #: The close code sent or received first (``None`` while open).
        self.close_code: int | None = None
        self.close_reason: str | None = None
        #: ``"local"`` or ``"remote"``: who began the close.
        self.closed_by: str | None = None
        self._closed = False

    # ------------------------------------------------------------------ views

    @property
    def config(self) -> HeartbeatConfig:
        return self.state.config

    @property
    def stats(self) -> HeartbeatStats:
        """The heartbeat figures (pings sent, pongs, RTTs)."""
        return self.state.stats

    @property
    def latency(self) -> float | None:
        """Smoothed RTT in seconds; ``None`` before the first answered heartbeat."""
        return self.state.stats.srtt

    @property
    def is_open(self) -> bool:
        """True while heartbeats run."""
        return self.state.is_open

    @property
    def ended(self) -> bool:
        """True once :meth:`lost` reported the end (every input is then ignored)."""
        return self._closed

    # -------------------------------------------------------- hooks: override

    def now(self) -> float:
        """The runtime's monotonic clock, in seconds (e.g. ``loop.time()``)."""
        raise NotImplementedError

    def file_timer(self, when: float | None) -> None:
        """Make sure :meth:`timer_due` is called at or after ``when`` (``None``: no
        timer is needed). Replaces the previous filing; calling early is harmless."""
        raise NotImplementedError

    def send_ping(self, payload: bytes) -> None:
        """Send a protocol ping frame with this payload."""
        raise NotImplementedError

    def send_pong(self, payload: bytes) -> None:
        """Answer a peer's ping with a pong frame (a framework that answers pings
        itself overrides this with nothing)."""
        raise NotImplementedError

    def send_text(self, text: str) -> None:
        """Send a text message (an application-level ping or pong)."""
        raise NotImplementedError

    def send_close(self, code: int, reason: str) -> None:
        """Send a close frame."""
        raise NotImplementedError

    def close_transport(self) -> None:
        """Release the transport once what was written is flushed, without waiting
        for the peer's close frame."""
        raise NotImplementedError

    def abort(self) -> None:
        """Drop the transport now."""
        raise NotImplementedError

    # ------------------------------------------------------------------ input

    def opened(self) -> None:
        """The opening handshake completed: heartbeats start."""
        self.run(self.state.handle(ConnectionOpened(now=self.now())))

    def received(self) -> None:
        """Some traffic arrived (any bytes or message): a sign of life. Needs no
        timer change (the filing is :attr:`HeartbeatState.wake_at`)."""
        state = self.state
        if state.is_open:
            state.bytes_received(self.now())

    def ping_received(self, payload: bytes = b"") -> None:
        """The peer sent a protocol ping (rule ``peer-ping``: answered, counted)."""
        if self.state.is_open:
            self.run(self.state.handle(PingReceived(now=self.now(), payload=payload)))

    def pong_received(self, payload: bytes = b"", *, solicited: bool = False) -> None:
        """The peer sent a protocol pong; ``solicited``: it answers a ping the
        application sent itself (never a stray pong, rule ``peer-ping``)."""
        state = self.state
        if not state.is_open:
            return
        if solicited:
            self.run(state.handle(PongReceived(now=self.now(), payload=payload, solicited=True)))
        else:
            self.run(state.pong_received(self.now(), payload))

    def text_received(self, text: str) -> bool:
        """A text message arrived: True when it is a heartbeat message (then it is
        handled here and must not reach the application), else False."""
        kind = self.codec.classify(text)
        if kind is None:
            return False
        if self.state.is_open:
            now = self.now()
            if kind is AppKind.PING:
                self.run(self.state.handle(AppPingReceived(now=now)))
            else:
                self.run(self.state.handle(AppPongReceived(now=now)))
        return True

    def close_received(self, code: int = 1005, reason: str = "") -> None:
        """The peer's close frame arrived (1005: it carried no code)."""
        state = self.state
        if state.phase is not HeartbeatPhase.NEW and not self._closed:
            if self.close_code is None:
                self._closing(code, reason, "remote")
            self.run(state.handle(CloseReceived(now=self.now(), code=code, reason=reason)))

    def close_started(self, code: int, reason: str = "", *, by_peer: bool = False) -> None:
        """The framework sent or answered a close frame itself (e.g. the application
        called the framework's ``close()``): record the close (reported as ``Closing``)
        and tell the core, without sending the close frame it asks for, which the
        framework has sent. Releasing the transport stays bounded by ``close_timeout``
        (then :meth:`abort`). Does nothing once a close was recorded."""
        state = self.state
        if self._closed or self.close_code is not None or state.phase is HeartbeatPhase.NEW:
            return
        if not by_peer:
            validate_close(code, reason)  # (raises before anything changes)
        self._closing(code, reason, "remote" if by_peer else "local")
        now = self.now()
        if by_peer:
            actions = state.handle(CloseReceived(now=now, code=code, reason=reason))
        else:
            actions = state.handle(CloseRequested(now=now, code=code, reason=reason))
        self.run(action for action in actions if type(action) is not SendClose)

    def timer_due(self) -> None:
        """The timer filed with :meth:`file_timer` is due (or early: harmless)."""
        if not self._closed:
            self.run(self.state.timer_fired(self.now()))

    def pause_reading(self) -> None:
        """Reading stopped (e.g. a queue is full): nobody is declared dead meanwhile
        (rule ``paused-reading``)."""
        if not self._closed:
            self.run(self.state.handle(ReadingPaused(now=self.now())))

    def resume_reading(self) -> None:
        """Reading goes on: an outstanding heartbeat gets a fresh timeout."""
        if not self._closed:
            self.run(self.state.handle(ReadingResumed(now=self.now())))

    def close(self, code: int = 1000, reason: str = "") -> None:
        """The application closes: a close frame, then the peer's is awaited (bounded
        by ``close_timeout``). Closing twice is harmless; a bad code raises
        :class:`~heartbeat_core.LocalProtocolError` and changes nothing."""
        if not self._closed:
            self.run(self.state.handle(CloseRequested(now=self.now(), code=code, reason=reason)))

    def fail(self, code: int = 1011, reason: str = "") -> None:
        """Fail the connection (rule ``fail``): a close frame if open, then release."""
        if not self._closed:
            self.run(self.state.fail(self.now(), code, reason))

    def lost(self) -> Closed:
        """The transport is gone: the final ``Closed`` (reported once to ``on_event``;
        later calls return the same verdict and report nothing)."""
        if self.close_code is None:
            self.close_code, self.close_reason, self.closed_by = 1006, "", "remote"
        closed = Closed(
            code=self.close_code, reason=self.close_reason or "", by=self.closed_by or "remote"
        )
        if self._closed:
            return closed
        self._closed = True
        self.state.handle(ConnectionClosed(now=max(self.now(), self.state.last_now)))
        self.file_timer(None)
        self._emit(closed)
        return closed

    # ----------------------------------------------------------------- output

    def run(self, actions: Iterable[Action]) -> None:
        """Carry out ``actions`` in order through the hooks, report each event to
        ``on_event``, then file the timer at the state's ``wake_at``. Call it with
        what :class:`~heartbeat_core.HeartbeatState` returned when you feed the
        state yourself."""
        table = self._ACTIONS
        for action in actions:
            table[type(action)](self, action)
        if not self._closed:
            self.file_timer(self.state.wake_at)

    def _emit(self, event: ConnectionEvent) -> None:
        if self._on_event is not None:
            report_event(self._on_event, self.owner, event, self._logger)

    def _closing(self, code: int, reason: str, by: str) -> None:
        self.close_code, self.close_reason, self.closed_by = code, reason, by
        self._logger.debug("%s closing: code=%d reason=%r by %s", self.owner, code, reason, by)
        self._emit(Closing(code=code, reason=reason, by_peer=by == "remote"))

    # ---------------------------------------------------------------- actions

    def _do_ping(self, action: SendPing) -> None:
        self.send_ping(action.payload)

    def _do_app_ping(self, action: SendAppPing) -> None:
        self.send_text(self.codec.ping_text)

    def _do_pong(self, action: SendPong) -> None:
        self.send_pong(action.payload)

    def _do_app_pong(self, action: SendAppPong) -> None:
        self.send_text(self.codec.pong_text)

    def _do_close(self, action: SendClose) -> None:
        self.send_close(action.code, action.reason)
        if self.close_code is None:
            self._closing(action.code, action.reason, "local")

    def _do_close_transport(self, action: CloseTransport) -> None:
        self.close_transport()
        self._emit(action)

    def _do_abort(self, action: Abort) -> None:
        self.abort()
        self._emit(action)

    def _do_rtt(self, action: RttSample) -> None:
        if self._debug:
            self._logger.debug("%s: heartbeat %d rtt=%.6f", self.owner, action.seq, action.rtt)
        self._emit(action)

    def _do_dead(self, action: PeerDead) -> None:
        self._logger.info(
            "%s: heartbeat %d unanswered after %.3f s: peer dead",
            self.owner,
            action.seq,
            action.waited,
        )
        self._emit(action)


ActionRunner._ACTIONS = {
    SendPing: ActionRunner._do_ping,
    SendAppPing: ActionRunner._do_app_ping,
    SendPong: ActionRunner._do_pong,
    SendAppPong: ActionRunner._do_app_pong,
    SendClose: ActionRunner._do_close,
    CloseTransport: ActionRunner._do_close_transport,
    Abort: ActionRunner._do_abort,
    RttSample: ActionRunner._do_rtt,
    PeerDead: ActionRunner._do_dead,
}
