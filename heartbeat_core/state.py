"""The heartbeat state machine: events in, actions out, one deadline.

The rules, by name (each one is a property test in ``tests/core``):

``interval``
    The next heartbeat is due ``interval`` after the last sign of life (any
    inbound byte by default; only a matching pong with ``Liveness.PONG_ONLY``),
    or after the previous heartbeat with ``fixed_rate``.
``one-outstanding``
    At most one heartbeat is outstanding. Payloads are ``prefix + counter``,
    unique per connection; a pong acknowledges its ping and every earlier one;
    a pong nobody asked for is ignored.
``dead-peer``
    A peer is declared dead exactly when nothing qualifying arrived within the
    timeout after a heartbeat: close 1011 ``heartbeat-timeout`` once, drop the
    transport as soon as the close frame is flushed, abort after
    ``close_timeout``. Nothing is emitted after the end.
``rtt``
    Every matched pong is an RTT sample (last, min, max, SRTT, RTTVAR).
``probe``
    With ``probe_interval`` set, an open connection whose last heartbeat went
    out ``probe_interval`` ago gets one now, even while traffic flows: a probe,
    sent for its RTT sample only. It leaves the phase IDLE, so it sets no
    dead-peer deadline (the heartbeat the ``interval`` rule sends is the one
    that can find the peer dead, exactly as without probes), and it is not sent
    while reading is paused. With ``ping_on_open`` the first heartbeat is due
    when the connection opens.
``jitter``
    Each wait is spread by up to ``±jitter·interval`` from the injected random
    source. With jitter 0 the machine is deterministic.
``late-timer``
    A timer delivered more than ``stall_threshold`` after its deadline means
    we stalled: the driver gets ``stall_grace`` to read what arrived meanwhile
    before anyone is declared dead.
``paused-reading``
    While the driver has stopped reading (``ReadingPaused``, e.g. its receive
    queue is full), the peer cannot be heard, so nobody is declared dead: an
    outstanding heartbeat has no deadline (IDLE still sends the next heartbeat
    when due; closing deadlines still apply). ``ReadingResumed`` gives an
    outstanding heartbeat a fresh window: GRACE until ``now`` + the timeout.
``peer-ping``
    Peer pings are answered; pings closer together than
    ``peer_ping_min_interval`` are strikes; past ``peer_ping_max_strikes`` the
    connection closes with 1008 ``too many pings``. Stray pongs (those that
    acknowledge no outstanding heartbeat and are not marked ``solicited``) are
    counted the same way, with strikes of their own: past the limit, 1008
    ``too many pongs``. A flood fails the connection (rule ``fail``).
``monotonic-time``
    An event whose ``now`` is earlier than the previous one, or any event
    after ``ConnectionClosed``, raises :class:`LocalProtocolError` and
    changes nothing.
``early-timer``
    A timer that fires before the deadline changes nothing, except that a
    heartbeat may go out up to ``timer_slack`` early (2 % of the interval, at
    most 20 ms, by default): from the last multiple of ``timer_slack`` on the
    driver's clock at or before its due time, the time ``wake_at`` gives. So
    heartbeats due close together share a grid point, and a driver serves
    many connections with one wake-up.
``adaptive-timeout``
    Optionally the timeout follows SRTT + 4·RTTVAR, clamped to
    [``min_timeout``, ``timeout``].
``close-handshake``
    Other closes send a close frame and wait for the peer's, bounded by
    ``close_timeout``.
``fail``
    Failing the connection (a protocol error, a ping or pong flood, a refused
    or answered handshake) sends a close frame when the connection is open,
    then releases the transport at once, without waiting for the peer's close
    frame; releasing is bounded by ``close_timeout`` (then abort).
``open-timeout``
    After ``HandshakeStarted``, the opening handshake must complete within
    ``open_timeout``; else the transport is aborted.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from heartbeat_core.actions import (
    Abort,
    Action,
    CloseTransport,
    PeerDead,
    SendAppPing,
    SendAppPong,
    SendClose,
    SendPong,
    rtt_sample,
    send_ping,
)
from heartbeat_core.config import HeartbeatConfig, HeartbeatStyle, Liveness
from heartbeat_core.errors import ConfigError, LocalProtocolError
from heartbeat_core.events import (
    AppPingReceived,
    AppPongReceived,
    BytesReceived,
    CloseReceived,
    CloseRequested,
    ConnectionClosed,
    ConnectionOpened,
    Event,
    FailRequested,
    HandshakeStarted,
    PingReceived,
    PongReceived,
    ReadingPaused,
    ReadingResumed,
    TimerFired,
)
from heartbeat_core.randomness import RandomSource, shared_random
from heartbeat_core.stats import HeartbeatStats

__all__ = [
    "HEARTBEAT_TIMEOUT_REASON",
    "HeartbeatPhase",
    "HeartbeatState",
    "TRANSITIONS",
    "Transition",
    "send_from",
    "validate_close",
]

#: The close reason sent when the heartbeat declares the peer dead.
HEARTBEAT_TIMEOUT_REASON = "heartbeat-timeout"
#: The close reason sent when the peer pings too often.
PING_FLOOD_REASON = "too many pings"
#: The close reason sent when the peer sends too many pongs that answer nothing.
PONG_FLOOD_REASON = "too many pongs"

_NO_ACTIONS: tuple[Action, ...] = ()


class HeartbeatPhase(enum.Enum):
    """Where a connection's heartbeat stands."""

    #: Created; waiting for ``ConnectionOpened`` (bounded by ``open_timeout`` once
    #: ``HandshakeStarted`` arrived).
    NEW = "new"
    #: Open, no heartbeat outstanding; the next one is due at the deadline.
    IDLE = "idle"
    #: A heartbeat is outstanding; the peer is dead at the deadline.
    AWAITING = "awaiting"
    #: Our timer came late (we stalled), or reading resumed after a pause: a
    #: window to read pending input before the peer is declared dead.
    GRACE = "grace"
    #: We sent a close frame and wait for the peer's.
    CLOSING = "closing"
    #: The transport is being closed (flushed, then released; aborted at the deadline).
    DRAINING = "draining"
    #: The transport is gone. Terminal.
    CLOSED = "closed"

    # Members are singletons: hash them by identity (C speed) rather than by name
    # (Enum's default, in Python), since phases are tested for set membership on
    # every event.
    __hash__: ClassVar[Callable[[object], int]] = object.__hash__


_OPEN_PHASES = frozenset({HeartbeatPhase.IDLE, HeartbeatPhase.AWAITING, HeartbeatPhase.GRACE})

# The phases as module constants, which the hot paths read as (cached) globals: on
# Python 3.11 a member read off its enum class goes through EnumType.__getattr__, which
# the interpreter cannot cache (about 800 machine instructions each, several per heartbeat).
_NEW = HeartbeatPhase.NEW
_IDLE = HeartbeatPhase.IDLE
_AWAITING = HeartbeatPhase.AWAITING
_GRACE = HeartbeatPhase.GRACE
_CLOSING = HeartbeatPhase.CLOSING
_DRAINING = HeartbeatPhase.DRAINING
_CLOSED = HeartbeatPhase.CLOSED
_PONG_ONLY = Liveness.PONG_ONLY
_PROTOCOL = HeartbeatStyle.PROTOCOL
_floor = math.floor


def send_from(due: float, slack: float) -> float:
    """When a heartbeat due at ``due`` may go out (rule ``early-timer``): the last
    multiple of ``slack`` at or before ``due``; ``due`` itself when ``slack`` is 0."""
    if slack:
        k = _floor(due / slack)
        start = (k + 1) * slack  # (the quotient may have been rounded below k + 1)
        if start <= due:
            return start
        start = k * slack
        if start <= due:
            return start
    return due  # (or the quotient was rounded up to k: due is within a rounding of it)


@dataclass(frozen=True, slots=True)
class Transition:
    """One edge of the state diagram: ``source --trigger--> target`` under ``rule``."""

    source: HeartbeatPhase
    trigger: str
    target: HeartbeatPhase
    rule: str


def _t(source: HeartbeatPhase, trigger: str, target: HeartbeatPhase, rule: str) -> Transition:
    return Transition(source, trigger, target, rule)


_P = HeartbeatPhase
#: Every phase change the machine can make (the docs draw their diagram from this).
TRANSITIONS: tuple[Transition, ...] = (
    _t(_P.NEW, "ConnectionOpened", _P.IDLE, "interval"),
    _t(_P.NEW, "TimerFired (open_timeout): abort", _P.DRAINING, "open-timeout"),
    _t(_P.NEW, "FailRequested (refused, answered, bad request)", _P.DRAINING, "fail"),
    _t(_P.IDLE, "TimerFired (heartbeat due)", _P.AWAITING, "interval"),
    _t(_P.IDLE, "TimerFired (probe due): a heartbeat for its RTT", _P.IDLE, "probe"),
    _t(_P.AWAITING, "inbound bytes / matching pong", _P.IDLE, "one-outstanding"),
    _t(_P.AWAITING, "TimerFired late (we stalled)", _P.GRACE, "late-timer"),
    _t(_P.GRACE, "inbound bytes / matching pong", _P.IDLE, "late-timer"),
    _t(_P.AWAITING, "ReadingResumed: a fresh timeout", _P.GRACE, "paused-reading"),
    _t(_P.AWAITING, "TimerFired (timeout): close 1011", _P.DRAINING, "dead-peer"),
    _t(_P.GRACE, "TimerFired (grace over): close 1011", _P.DRAINING, "dead-peer"),
    _t(_P.IDLE, "CloseRequested: close", _P.CLOSING, "close-handshake"),
    _t(_P.AWAITING, "CloseRequested: close", _P.CLOSING, "close-handshake"),
    _t(_P.GRACE, "CloseRequested: close", _P.CLOSING, "close-handshake"),
    _t(_P.IDLE, "FailRequested / ping or pong flood: close, release", _P.DRAINING, "fail"),
    _t(_P.AWAITING, "FailRequested / ping or pong flood: close, release", _P.DRAINING, "fail"),
    _t(_P.GRACE, "FailRequested / ping or pong flood: close, release", _P.DRAINING, "fail"),
    _t(_P.CLOSING, "FailRequested: release", _P.DRAINING, "fail"),
    _t(_P.IDLE, "CloseReceived: reply", _P.DRAINING, "close-handshake"),
    _t(_P.AWAITING, "CloseReceived: reply", _P.DRAINING, "close-handshake"),
    _t(_P.GRACE, "CloseReceived: reply", _P.DRAINING, "close-handshake"),
    _t(_P.CLOSING, "CloseReceived", _P.DRAINING, "close-handshake"),
    _t(_P.CLOSING, "TimerFired (close_timeout): abort", _P.DRAINING, "close-handshake"),
    _t(_P.NEW, "ConnectionClosed", _P.CLOSED, "close-handshake"),
    _t(_P.IDLE, "ConnectionClosed", _P.CLOSED, "close-handshake"),
    _t(_P.AWAITING, "ConnectionClosed", _P.CLOSED, "close-handshake"),
    _t(_P.GRACE, "ConnectionClosed", _P.CLOSED, "close-handshake"),
    _t(_P.CLOSING, "ConnectionClosed", _P.CLOSED, "close-handshake"),
    _t(_P.DRAINING, "ConnectionClosed", _P.CLOSED, "close-handshake"),
)

# Close codes an endpoint may put in a close frame (RFC 6455 section 7.4).
_SENDABLE_CODES = frozenset(
    {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014}
)


def validate_close(code: int, reason: str) -> None:
    """Raise :class:`LocalProtocolError` unless ``code`` and ``reason`` fit in a close frame."""
    if isinstance(code, bool) or not isinstance(code, int):
        raise LocalProtocolError(f"close code must be an int, got {code!r}")
    if code not in _SENDABLE_CODES and not 3000 <= code <= 4999:
        raise LocalProtocolError(
            f"close code {code} cannot be sent: use 1000-1003, 1007-1014 or 3000-4999"
        )
    if not isinstance(reason, str) or len(reason.encode("utf-8")) > 123:
        raise LocalProtocolError(
            f"close reason must be a str of at most 123 UTF-8 bytes, got {reason!r:.60}"
        )


class _Strikes:
    """Rule ``peer-ping``'s counter: an event closer than the minimum interval to the
    previous one of its kind is a strike; a slower one clears the strikes."""

    __slots__ = ("count", "last")

    def __init__(self) -> None:
        self.count = 0
        self.last: float | None = None

    def add(self, now: float, min_interval: float) -> int:
        """Count an event at ``now``; return the strikes it leaves."""
        last, self.last = self.last, now
        if last is not None and now - last < min_interval:
            self.count += 1
        else:
            self.count = 0
        return self.count


class HeartbeatState:
    """One connection's heartbeat, as a pure state machine.

    Feed it events with :meth:`handle`; carry out the actions it returns, in
    order; arm one timer at :attr:`deadline` and deliver ``TimerFired`` when it
    goes off. It never reads a clock, sleeps or does I/O.

    ``random`` is a callable returning floats in [0, 1) (e.g. a seeded
    ``random.Random(seed).random``), used only when ``config.jitter > 0``;
    without one, states draw from a default source
    (:func:`~heartbeat_core.randomness.default_random`, one for all such states).
    ``open_timeout`` bounds the opening handshake from ``HandshakeStarted``
    (rule ``open-timeout``).
    """

    __slots__ = (
        "_acked",
        "_adaptive",
        "_beat_at",
        "_close_deadline",
        "_config",
        "_expect",
        "_fixed_rate",
        "_grace_until",
        "_last_alive",
        "_last_now",
        "_last_ping_at",
        "_misses",
        "_open_timeout",
        "_paused",
        "_peer_app_pings",
        "_peer_pings",
        "_phase",
        "_ping_strikes",
        "_pong_only",
        "_pong_strikes",
        "_pongs",
        "_prefix",
        "_probe",
        "_probes",
        "_protocol",
        "_random",
        "_rtt_last",
        "_rtt_max",
        "_rtt_min",
        "_rttvar",
        "_seq",
        "_slack",
        "_srtt",
        "_timeout",
        "_wait",
    )

    def __init__(
        self,
        config: HeartbeatConfig | None = None,
        *,
        random: RandomSource | None = None,
        open_timeout: float = 10.0,
    ) -> None:
        config = HeartbeatConfig() if config is None else config
        if not isinstance(config, HeartbeatConfig):
            raise ConfigError(f"config must be a HeartbeatConfig, got {config!r}")
        if random is not None and not callable(random):
            raise ConfigError(
                f"random must be a callable returning floats in [0, 1), got {random!r}"
            )
        if not (
            isinstance(open_timeout, (int, float))
            and not isinstance(open_timeout, bool)
            and math.isfinite(open_timeout)
            and open_timeout > 0
        ):
            raise ConfigError(
                f"open_timeout must be a finite number of seconds > 0, got {open_timeout!r}"
            )
        if config.jitter > 0 and random is None:
            random = shared_random()
        self._config = config
        self._random = random
        self._open_timeout = float(open_timeout)
        self._pong_only = config.liveness is _PONG_ONLY
        self._protocol = config.style is _PROTOCOL
        # The config's figures the hot paths read, copied once (a config is frozen).
        self._fixed_rate = config.fixed_rate
        self._adaptive = config.adaptive_timeout
        self._timeout = config.timeout
        self._slack = config.slack
        self._prefix = config.payload_prefix
        # The payload of the outstanding protocol heartbeat (None: none sent yet, or the
        # app style, whose pongs carry no payload).
        self._expect: bytes | None = None
        self._phase = _NEW
        self._last_now = -math.inf
        self._last_alive = 0.0
        self._last_ping_at = 0.0
        # fixed_rate: when the last heartbeat was due (or sent, if late): the next one is
        # due wait after it, however early within timer_slack the last one went out.
        self._beat_at = 0.0
        self._wait = config.interval  # interval + offset: from a sign of life to the next heartbeat
        self._grace_until = 0.0
        self._paused = False
        # NEW: the open deadline once the handshake started; CLOSING/DRAINING: the
        # bound on closing.
        self._close_deadline: float | None = None
        self._seq = 0
        self._acked = 0
        self._pongs = 0
        self._misses = 0
        self._peer_pings = 0
        self._peer_app_pings = 0
        self._probe: float | None = config.probe_interval
        self._probes = 0
        if config.probe_interval is not None:
            # Rule probe lives in a subclass (same slots): with it off, every hot path is
            # the one without it, at the same cost.
            self.__class__ = _ProbingState
        # Made at the first peer ping / stray pong: most connections never see one.
        self._ping_strikes: _Strikes | None = None
        self._pong_strikes: _Strikes | None = None
        self._rtt_last: float | None = None
        self._rtt_min: float | None = None
        self._rtt_max: float | None = None
        self._srtt: float | None = None
        self._rttvar: float | None = None

    # ------------------------------------------------------------------ views

    @property
    def config(self) -> HeartbeatConfig:
        return self._config

    @property
    def phase(self) -> HeartbeatPhase:
        """The current phase (see :class:`HeartbeatPhase`)."""
        return self._phase

    @property
    def is_open(self) -> bool:
        """True while heartbeats run (IDLE, AWAITING or GRACE)."""
        return self._phase in _OPEN_PHASES

    @property
    def reading_paused(self) -> bool:
        """True between ``ReadingPaused`` and ``ReadingResumed`` (rule ``paused-reading``)."""
        return self._paused

    @property
    def seq(self) -> int:
        """The number of the last heartbeat sent (0 before the first)."""
        return self._seq

    @property
    def last_now(self) -> float:
        """The ``now`` of the last accepted event (``-inf`` before the first)."""
        return self._last_now

    @property
    def effective_timeout(self) -> float:
        """The timeout in force: the configured one, or the adaptive one."""
        if self._adaptive and self._srtt is not None and self._rttvar is not None:
            cfg = self._config
            return min(cfg.timeout, max(cfg.min_timeout, self._srtt + 4 * self._rttvar))
        return self._timeout

    def _due(self) -> float:
        """When the next heartbeat is due (rule ``interval``): the IDLE deadline."""
        return (self._beat_at if self._fixed_rate else self._last_alive) + self._wait

    @property
    def deadline(self) -> float | None:
        """When the driver must next deliver ``TimerFired``; ``None`` for no timer."""
        phase = self._phase
        if phase is _IDLE:
            return self._due()
        if phase is _AWAITING:
            return None if self._paused else self._last_ping_at + self.effective_timeout
        if phase is _GRACE:
            return None if self._paused else self._grace_until
        if phase is _CLOSED:
            return None
        return self._close_deadline  # NEW (open-timeout), CLOSING, DRAINING

    @property
    def wake_at(self) -> float | None:
        """When to deliver ``TimerFired``: :attr:`deadline`, or earlier. While idle,
        when the next heartbeat may go out: the last multiple of ``timer_slack`` at
        or before its due time (rule ``early-timer``), which connections due close
        together share. While a heartbeat is outstanding, the soonest the next one
        could go out, if that comes before the timeout: a sign of life never brings
        the wake-up before this time (it is ``interval`` after the sign at the
        earliest), so a driver that files connections in a timer wheel by this time
        need not move a filing when a pong arrives. Waking early is harmless.
        ``None``: no timer needed."""
        phase = self._phase
        if phase is _IDLE:  # the common case: when the next heartbeat may go out
            return send_from(
                (self._beat_at if self._fixed_rate else self._last_alive) + self._wait, self._slack
            )
        if phase is _AWAITING:  # the other common case: a heartbeat out
            if self._paused:
                return None
            deadline = self._last_ping_at + (
                self.effective_timeout if self._adaptive else self._timeout
            )
        elif phase is _GRACE:
            if self._paused:
                return None
            deadline = self._grace_until
        else:
            return self.deadline
        # The soonest the next heartbeat could go out, were a sign of life to come now.
        last = self._last_now
        soonest = send_from((self._beat_at if self._fixed_rate else last) + self._wait, self._slack)
        if last < soonest < deadline:  # (not yet passed: waking then does nothing)
            return soonest
        return deadline

    @property
    def stats(self) -> HeartbeatStats:
        """A snapshot of this connection's figures."""
        return HeartbeatStats(
            pings_sent=self._seq,
            pongs_received=self._pongs,
            misses=self._misses,
            peer_pings=self._peer_pings,
            peer_app_pings=self._peer_app_pings,
            probes_sent=self._probes,
            peer_ping_strikes=0 if self._ping_strikes is None else self._ping_strikes.count,
            last_rtt=self._rtt_last,
            min_rtt=self._rtt_min,
            max_rtt=self._rtt_max,
            srtt=self._srtt,
            rttvar=self._rttvar,
        )

    def payload_for(self, seq: int) -> bytes:
        """The ping payload of heartbeat number ``seq``."""
        return self._prefix + b"%d" % seq

    # ------------------------------------------------------------------ input

    def handle(self, event: Event) -> tuple[Action, ...]:
        """Apply one event; return the actions it causes, to be carried out in order.

        Raises :class:`LocalProtocolError` (and changes nothing) when ``now``
        runs backwards, when an event follows ``ConnectionClosed``, or when an
        event does not fit the phase (before the connection opened, only
        ``HandshakeStarted``, ``ConnectionOpened``, ``TimerFired``,
        ``FailRequested`` and ``ConnectionClosed``).
        """
        handler = _DISPATCH.get(type(event))
        if handler is None:
            raise LocalProtocolError(f"not a heartbeat event: {event!r}")
        now = event.now
        self._admit(now, type(event).__name__, handler in _ALLOWED_WHEN_NEW)
        result: tuple[Action, ...] = handler(self, event)
        self._last_now = now
        return result

    # The hot events have direct entry points: same rules, same errors, no event
    # object to build. A driver calls them for every read and timer.

    def bytes_received(self, now: float) -> None:
        """``handle(BytesReceived(now=now))``, which never returns actions."""
        phase = self._phase
        if not (
            now >= self._last_now and (phase is _IDLE or phase is _AWAITING or phase is _GRACE)
        ):
            self._admit(now, "BytesReceived", False)  # raises, unless we are closing
        elif not self._pong_only:
            self._last_alive = now
            if phase is not _IDLE:
                self._phase = _IDLE
        self._last_now = now

    def pong_received(self, now: float, payload: bytes) -> tuple[Action, ...]:
        """``handle(PongReceived(now=now, payload=payload))``: an unsolicited pong.

        A pong answering a ping of the driver's own goes through ``handle()``
        with ``solicited=True`` instead (rule ``peer-ping``)."""
        seq = self._seq
        phase = self._phase
        if (
            payload == self._expect
            and self._acked < seq
            and now >= self._last_now
            and (phase is _AWAITING or phase is _IDLE or phase is _GRACE)
        ):
            # The common pong, recognised without parsing: the latest heartbeat's
            # (what _acknowledge and _sample do, inline).
            self._last_now = self._last_alive = now
            self._acked = seq
            self._phase = _IDLE
            self._pongs += 1
            rtt = now - self._last_ping_at
            self._rtt_last = rtt
            srtt = self._srtt
            if srtt is None:
                self._sample(rtt)
            else:
                rttvar = self._rttvar
                assert rttvar is not None
                self._rttvar = 0.75 * rttvar + 0.25 * (srtt - rtt if srtt > rtt else rtt - srtt)
                self._srtt = 0.875 * srtt + 0.125 * rtt
                if rtt < self._rtt_min:  # type: ignore[operator]
                    self._rtt_min = rtt
                elif rtt > self._rtt_max:  # type: ignore[operator]
                    self._rtt_max = rtt
            return (rtt_sample(seq, rtt),)
        self._admit(now, "PongReceived", False)
        result = self._pong(now, payload, False)
        self._last_now = now
        return result

    def timer_fired(self, now: float) -> tuple[Action, ...]:
        """``handle(TimerFired(now=now))``."""
        if self._phase is _IDLE and now >= self._last_now:
            due = (self._beat_at if self._fixed_rate else self._last_alive) + self._wait
            if now >= send_from(due, self._slack):
                # The common timer: a heartbeat may go out (rule early-timer).
                self._last_now = now
                return self._send_heartbeat(now)
            if self._probe is None:
                # The other common one (rule early-timer): woken at the wake_at filed
                # when the last heartbeat went out, which its pong put off. Nothing is
                # due (what _timer finds, sooner); a probe might be, hence the test.
                self._last_now = now
                return _NO_ACTIONS
        self._admit(now, "TimerFired", True)
        result = self._timer(now)
        self._last_now = now
        return result

    def ping_due(self, now: float) -> bytes | None:
        """The common ``timer_fired(now)``, for a driver that frames pings itself: when a
        protocol heartbeat may go out (rule ``early-timer``) it is sent, the state
        changes exactly as ``timer_fired`` changes it, and the ping's payload is returned
        (the ``SendPing`` it would return is not built). Otherwise ``None``, and nothing
        changed: call :meth:`timer_fired`."""
        if self._protocol and self._phase is _IDLE and now >= self._last_now:
            due = (self._beat_at if self._fixed_rate else self._last_alive) + self._wait
            if now < send_from(due, self._slack):
                return None
            self._last_now = now
            payload = self._expect = self._prefix + b"%d" % self._start_heartbeat(now)
            return payload
        return None

    def fail(self, now: float, code: int = 1002, reason: str = "") -> tuple[Action, ...]:
        """``handle(FailRequested(now=now, code=code, reason=reason))`` (rule ``fail``)."""
        return self.handle(FailRequested(now=now, code=code, reason=reason))

    def _admit(self, now: float, name: str, when_new: bool) -> None:
        if not now >= self._last_now:
            raise LocalProtocolError(
                f"time ran backwards: {name} at now={now!r} after an event at "
                f"now={self._last_now!r}; pass a monotonic clock (time.monotonic())"
            )
        phase = self._phase
        if phase is _CLOSED:
            raise LocalProtocolError(f"{name} after ConnectionClosed: the connection has ended")
        if phase is _NEW and not when_new:
            raise LocalProtocolError(f"{name} before ConnectionOpened: open the connection first")

    # Each handler may raise only before it changes anything.

    def _on_handshake_started(self, event: HandshakeStarted) -> tuple[Action, ...]:
        if self._phase is not _NEW:
            raise LocalProtocolError("HandshakeStarted after the connection opened or failed")
        if self._close_deadline is None:  # (twice: the first start counts)
            self._close_deadline = event.now + self._open_timeout
        return _NO_ACTIONS

    def _on_opened(self, event: ConnectionOpened) -> tuple[Action, ...]:
        if self._phase is not _NEW:
            raise LocalProtocolError(
                f"ConnectionOpened in phase {self._phase.value}: the connection is already "
                "open or has failed"
            )
        now = event.now
        self._phase = _IDLE
        self._close_deadline = None
        self._draw_offset()
        if self._config.ping_on_open:
            # The first heartbeat is due now: as if the last one (and the last sign of
            # life) were one wait ago.
            now -= self._wait
        self._last_alive = self._last_ping_at = self._beat_at = now
        return _NO_ACTIONS

    def _alive(self, now: float) -> None:
        self._last_alive = now
        if self._phase is not _IDLE:
            self._phase = _IDLE

    def _on_bytes(self, event: BytesReceived) -> tuple[Action, ...]:
        self.bytes_received(event.now)
        return _NO_ACTIONS

    def _on_ping(self, event: PingReceived) -> tuple[Action, ...]:
        if self._phase not in _OPEN_PHASES:
            return _NO_ACTIONS
        flood = self._count_peer_ping(event.now)
        if flood:
            return flood
        return (SendPong(payload=event.payload),)

    def _on_app_ping(self, event: AppPingReceived) -> tuple[Action, ...]:
        if self._phase not in _OPEN_PHASES:
            return _NO_ACTIONS
        self._peer_app_pings += 1
        flood = self._count_peer_ping(event.now)
        if flood:
            return flood
        return (SendAppPong(),) if self._config.answer_app_pings else _NO_ACTIONS

    def _count_peer_ping(self, now: float) -> tuple[Action, ...]:
        cfg = self._config
        if not self._pong_only:
            self._alive(now)
        self._peer_pings += 1
        strikes = self._ping_strikes
        if strikes is None:
            strikes = self._ping_strikes = _Strikes()
        if strikes.add(now, cfg.peer_ping_min_interval) > cfg.peer_ping_max_strikes:
            return self._fail(now, 1008, PING_FLOOD_REASON)
        return _NO_ACTIONS

    def _on_pong(self, event: PongReceived) -> tuple[Action, ...]:
        return self._pong(event.now, event.payload, event.solicited)

    def _pong(self, now: float, payload: bytes, solicited: bool) -> tuple[Action, ...]:
        # The slow path: pong_received() has already taken the latest heartbeat's pong.
        if self._phase not in _OPEN_PHASES:
            return _NO_ACTIONS
        if not self._pong_only:
            self._alive(now)
        if self._protocol:
            prefix = self._config.payload_prefix
            if payload.startswith(prefix):
                digits = payload[len(prefix) :]
                # Exactly the digits we send: no sign, no spaces, no leading zero ("01" is not "1").
                if digits.isdigit() and len(digits) < 20 and digits[0] != 0x30:
                    seq = int(digits)
                    if self._acked < seq <= self._seq:
                        return self._acknowledge(seq, now)
        if solicited:
            return _NO_ACTIONS
        # A pong that acknowledges nothing: legal (a unidirectional heartbeat, RFC 6455
        # 5.5.3) and ignored, unless such pongs come too fast (rule peer-ping).
        cfg = self._config
        strikes = self._pong_strikes
        if strikes is None:
            strikes = self._pong_strikes = _Strikes()
        if strikes.add(now, cfg.peer_ping_min_interval) > cfg.peer_ping_max_strikes:
            return self._fail(now, 1008, PONG_FLOOD_REASON)
        return _NO_ACTIONS

    def _on_app_pong(self, event: AppPongReceived) -> tuple[Action, ...]:
        if self._phase not in _OPEN_PHASES:
            return _NO_ACTIONS
        if not self._pong_only:
            self._alive(event.now)
        if self._config.style is not HeartbeatStyle.APP:
            return _NO_ACTIONS
        # Application pongs carry no number: one acknowledges every heartbeat sent.
        return self._acknowledge(self._seq, event.now)

    def _acknowledge(self, seq: int, now: float) -> tuple[Action, ...]:
        if not self._acked < seq <= self._seq:
            return _NO_ACTIONS  # unsolicited, replayed or from the future: ignored
        self._acked = seq
        if seq != self._seq:
            return _NO_ACTIONS  # an earlier ping: acknowledged, but the latest still counts
        self._last_alive = now  # a matching pong is a sign of life under either liveness
        self._phase = _IDLE
        self._pongs += 1
        rtt = now - self._last_ping_at
        self._sample(rtt)
        return (rtt_sample(seq, rtt),)

    def _sample(self, rtt: float) -> None:
        self._rtt_last = rtt
        srtt, rttvar = self._srtt, self._rttvar
        if srtt is None or rttvar is None:
            self._srtt, self._rttvar = rtt, rtt / 2
            self._rtt_min = self._rtt_max = rtt
            return
        self._rttvar = 0.75 * rttvar + 0.25 * abs(srtt - rtt)
        self._srtt = 0.875 * srtt + 0.125 * rtt
        assert self._rtt_min is not None and self._rtt_max is not None
        self._rtt_min = min(self._rtt_min, rtt)
        self._rtt_max = max(self._rtt_max, rtt)

    def _on_timer(self, event: TimerFired) -> tuple[Action, ...]:
        return self._timer(event.now)

    def _timer(self, now: float) -> tuple[Action, ...]:
        deadline = self.deadline
        if deadline is None:
            return _NO_ACTIONS
        phase = self._phase
        if now < deadline:
            # early-timer: nothing changes, except that a heartbeat may go out from
            # the last multiple of timer_slack before it is due (shared wake-ups).
            if phase is _IDLE and now >= send_from(deadline, self._slack):
                return self._send_heartbeat(now)
            return _NO_ACTIONS
        if phase is _IDLE:
            return self._send_heartbeat(now)
        if phase is _AWAITING or phase is _GRACE:
            if now - deadline > self._config.stall_threshold:
                self._phase = _GRACE
                self._grace_until = now + self._config.stall_grace
                return _NO_ACTIONS
            return self._declare_dead(now)
        # NEW (open-timeout), CLOSING or DRAINING (close_timeout): too long; drop it.
        self._phase = _DRAINING
        self._close_deadline = None
        return (Abort(),)

    def _send_heartbeat(self, now: float) -> tuple[Action, ...]:
        seq = self._start_heartbeat(now)
        if self._protocol:
            payload = self._expect = self._prefix + b"%d" % seq
            return (send_ping(payload, seq),)
        return (SendAppPing(seq=seq),)

    def _start_heartbeat(self, now: float) -> int:
        """The next heartbeat goes out at ``now``: returns its number."""
        seq = self._seq = self._seq + 1
        self._last_ping_at = now
        if self._fixed_rate:  # the schedule stays put when a heartbeat goes out early
            due = self._beat_at + self._wait
            self._beat_at = due if now < due else now
        self._phase = _AWAITING
        if self._config.jitter:
            self._draw_offset()
        return seq

    def _draw_offset(self) -> None:
        jitter = self._config.jitter
        if jitter and self._random is not None:
            interval = self._config.interval
            self._wait = interval + (2.0 * self._random() - 1.0) * jitter * interval

    def _declare_dead(self, now: float) -> tuple[Action, ...]:
        self._misses += 1
        waited = now - self._last_ping_at
        return (
            PeerDead(seq=self._seq, waited=waited),
            *self._fail(now, 1011, HEARTBEAT_TIMEOUT_REASON),
        )

    def _fail(self, now: float, code: int, reason: str) -> tuple[Action, ...]:
        """Rule ``fail``: a close frame if open, then release the transport at once."""
        phase = self._phase
        if phase is _DRAINING:
            return _NO_ACTIONS  # already releasing
        self._phase = _DRAINING
        self._close_deadline = now + self._config.close_timeout
        if phase in _OPEN_PHASES:
            return (SendClose(code=code, reason=reason), CloseTransport())
        return (CloseTransport(),)  # NEW: no WebSocket yet; CLOSING: our close frame is out

    def _on_fail(self, event: FailRequested) -> tuple[Action, ...]:
        validate_close(event.code, event.reason)
        return self._fail(event.now, event.code, event.reason)

    def _on_reading_paused(self, event: ReadingPaused) -> tuple[Action, ...]:
        # paused-reading: the deadline property suspends an outstanding heartbeat's
        # deadline while this flag is set. Pausing twice is harmless.
        self._paused = True
        return _NO_ACTIONS

    def _on_reading_resumed(self, event: ReadingResumed) -> tuple[Action, ...]:
        if not self._paused:
            return _NO_ACTIONS  # resuming when not paused is harmless
        self._paused = False
        phase = self._phase
        if phase is _AWAITING or phase is _GRACE:
            # The peer's answer may be waiting unread: a full timeout to read it.
            self._phase = _GRACE
            self._grace_until = event.now + self.effective_timeout
        return _NO_ACTIONS

    def _on_close_requested(self, event: CloseRequested) -> tuple[Action, ...]:
        validate_close(event.code, event.reason)
        if self._phase not in _OPEN_PHASES:
            return _NO_ACTIONS  # already closing: closing twice is harmless
        self._phase = _CLOSING
        self._close_deadline = event.now + self._config.close_timeout
        return (SendClose(code=event.code, reason=event.reason),)

    def _on_close_received(self, event: CloseReceived) -> tuple[Action, ...]:
        phase = self._phase
        if phase is _DRAINING:
            return _NO_ACTIONS
        self._phase = _DRAINING
        self._close_deadline = event.now + self._config.close_timeout
        if phase is _CLOSING:
            return (CloseTransport(),)
        # Echo the peer's code (RFC 6455 5.5.1), or send the parse error's. A code that
        # may not be sent (1005, 1006, ...) becomes 1000, or 1002 for an error.
        code = event.code
        if code not in _SENDABLE_CODES and not 3000 <= code <= 4999:
            code = 1002 if event.error else 1000
        if event.error:
            # Clip the reason to fit a close frame (123 bytes), on a character boundary.
            reason = event.reason.encode("utf-8")[:123].decode("utf-8", "ignore")
            return (SendClose(code=code, reason=reason), CloseTransport())
        return (SendClose(code=code, reason=""), CloseTransport())

    def _on_closed(self, event: ConnectionClosed) -> tuple[Action, ...]:
        self._phase = _CLOSED
        self._close_deadline = None
        return _NO_ACTIONS


class _ProbingState(HeartbeatState):
    """A :class:`HeartbeatState` whose config has ``probe_interval`` (rule ``probe``): the
    IDLE deadline is the interval rule's heartbeat or the next probe, whichever is sooner."""

    __slots__ = ()

    def _probe_due(self) -> float:
        """The IDLE deadline: the heartbeat's, or the probe's if sooner (none while
        reading is paused)."""
        due = self._due()
        if self._paused:
            return due
        assert self._probe is not None
        probe_at = self._last_ping_at + self._probe
        return probe_at if probe_at < due else due

    @property
    def deadline(self) -> float | None:
        if self._phase is _IDLE:
            return self._probe_due()
        return super().deadline

    @property
    def wake_at(self) -> float | None:
        if self._phase is _IDLE:
            return send_from(self._probe_due(), self._slack)
        wake = super().wake_at
        if wake is None or self._paused or self._phase not in _OPEN_PHASES:
            return wake
        # AWAITING or GRACE: once IDLE again (a sign of life), a probe may fall due sooner.
        assert self._probe is not None
        probe_at = send_from(self._last_ping_at + self._probe, self._slack)
        return probe_at if self._last_now < probe_at < wake else wake

    def _timer(self, now: float) -> tuple[Action, ...]:
        if self._phase is not _IDLE:
            return super()._timer(now)
        # IDLE: the sooner of the two may go out (rule early-timer), or neither.
        slack = self._slack
        if now < send_from(self._probe_due(), slack):
            return _NO_ACTIONS
        if now >= send_from(self._due(), slack):
            return self._send_heartbeat(now)
        # rule probe: only the probe is due.
        seq = self._seq = self._seq + 1
        self._last_ping_at = now
        self._probes += 1
        if self._protocol:
            payload = self._expect = self._prefix + b"%d" % seq
            return (send_ping(payload, seq),)
        return (SendAppPing(seq=seq),)


_Handler = Callable[[HeartbeatState, Any], tuple[Action, ...]]
_DISPATCH: dict[type, _Handler] = {
    HandshakeStarted: HeartbeatState._on_handshake_started,
    ConnectionOpened: HeartbeatState._on_opened,
    BytesReceived: HeartbeatState._on_bytes,
    PingReceived: HeartbeatState._on_ping,
    PongReceived: HeartbeatState._on_pong,
    AppPingReceived: HeartbeatState._on_app_ping,
    AppPongReceived: HeartbeatState._on_app_pong,
    TimerFired: HeartbeatState._on_timer,
    ReadingPaused: HeartbeatState._on_reading_paused,
    ReadingResumed: HeartbeatState._on_reading_resumed,
    CloseRequested: HeartbeatState._on_close_requested,
    FailRequested: HeartbeatState._on_fail,
    CloseReceived: HeartbeatState._on_close_received,
    ConnectionClosed: HeartbeatState._on_closed,
}
_ALLOWED_WHEN_NEW = frozenset(
    {
        HeartbeatState._on_handshake_started,
        HeartbeatState._on_opened,
        HeartbeatState._on_timer,
        HeartbeatState._on_fail,
        HeartbeatState._on_closed,
    }
)
