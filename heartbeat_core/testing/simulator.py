"""A connection between two endpoints on a virtual clock, run by the real rules.

:func:`simulate` builds one :class:`~heartbeat_core.HeartbeatState` per endpoint (the
same state machine the drivers run), opens both at ``start``, and then plays every
timer and every message in time order: the states decide when to ping, when a pong
counts and when the peer is dead; the simulation only carries their messages
across the :class:`~heartbeat_core.testing.Link` and applies the faults.

Messages are carried as what they are (a ping with its payload, a pong, an
application-level ping or pong), not as bytes: wsproto's framing adds nothing to
when things happen, and leaving it out makes an hour of a connection cost about a
millisecond. Each delivery reaches the state exactly as
:class:`~heartbeat_core.HeartbeatConnection` hands it over (a ping frame as
``PingReceived``, a pong through ``pong_received``, an application-level message
as ``BytesReceived`` then ``AppPingReceived`` / ``AppPongReceived``). A timer fires
at the state's ``wake_at``, as the drivers arm it. After a stall, what arrived
meanwhile is read before the overdue timer runs (as an asyncio loop does).

An endpoint whose configuration is ``None`` sends no heartbeats of its own and
answers the peer's (a browser answering ping frames, or a page that answers
``{"type":"ping"}``).

The run ends at the first verdict (a peer declared dead), a proxy cut, a close,
or after ``duration`` seconds. Same scenario and seed, same run.
"""

from __future__ import annotations

import enum
import math
from collections import deque
from dataclasses import dataclass, field
from heapq import heappop, heappush

from heartbeat_core.actions import (
    PeerDead,
    RttSample,
    SendAppPing,
    SendAppPong,
    SendClose,
    SendPing,
    SendPong,
)
from heartbeat_core.codec import JSON_CODEC
from heartbeat_core.config import HeartbeatConfig, HeartbeatStyle
from heartbeat_core.errors import ConfigError
from heartbeat_core.events import (
    AppPingReceived,
    AppPongReceived,
    ConnectionOpened,
    PingReceived,
)
from heartbeat_core.randomness import RandomSource, default_random
from heartbeat_core.state import HeartbeatState
from heartbeat_core.stats import HeartbeatStats
from heartbeat_core.testing.faults import Cut, Fault, Proxy, Side, Stall, StallKind, Vanish
from heartbeat_core.testing.network import Distribution, Link

__all__ = [
    "Ending",
    "EndpointReport",
    "Scenario",
    "SimEvent",
    "SimResult",
    "Verdict",
    "simulate",
]

_INF = math.inf
# Message kinds on the simulated wire.
_PING, _PONG, _APING, _APONG = 0, 1, 2, 3
_KIND_NAMES = ("ping", "pong", "app-ping", "app-pong")
_APP_PING_SIZE = len(JSON_CODEC.ping_text)
_APP_PONG_SIZE = len(JSON_CODEC.pong_text)


class Ending(enum.Enum):
    """Why a simulated run stopped."""

    #: ``duration`` ran out with the connection still open.
    HORIZON = "horizon"
    #: An endpoint declared its peer dead (see :attr:`SimResult.verdict`).
    PEER_DEAD = "peer-dead"
    #: The proxy closed the idle connection.
    PROXY_CUT = "proxy-cut"
    #: An endpoint closed the connection for another reason (e.g. a ping flood).
    CLOSED = "closed"


@dataclass(frozen=True, slots=True, kw_only=True)
class Verdict:
    """``side`` declared its peer dead at ``at`` after waiting ``waited`` seconds for
    heartbeat ``seq``."""

    side: Side
    at: float
    seq: int
    waited: float


@dataclass(frozen=True, slots=True, kw_only=True)
class SimEvent:
    """One step of a recorded run (``simulate(..., record=True)``).

    ``what`` is ``"sent"`` (``detail`` names the message: ``ping``, ``pong``,
    ``app-ping``, ``app-pong``), ``"received"`` (the same names), ``"timer"``,
    ``"rtt"`` (``value`` is the sample), ``"dead"`` (``value``: how long the
    heartbeat waited), ``"close"`` (``detail``: code and reason) or ``"proxy-cut"``.
    """

    at: float
    side: Side | None
    what: str
    detail: str = ""
    value: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class EndpointReport:
    """What one endpoint did in a run."""

    #: Heartbeats sent (pings, or application-level pings).
    heartbeats: int
    #: Answers to the peer's heartbeats sent.
    answers: int
    #: Bytes of heartbeat traffic sent (pings and answers, frame headers included).
    heartbeat_bytes: int
    #: Timer wake-ups (each a ``TimerFired``).
    wakeups: int
    #: The state's figures at the end (``None`` for an endpoint without heartbeats).
    stats: HeartbeatStats | None


@dataclass(frozen=True, slots=True, kw_only=True)
class SimResult:
    """The outcome of one :func:`simulate` run."""

    #: Where the run started and stopped on the virtual clock.
    start: float
    end: float
    ending: Ending
    #: The first peer declared dead, if any.
    verdict: Verdict | None
    #: True when that peer was in fact there: it had not vanished and no cut was in
    #: force (a stall, however long, does not make a peer gone).
    false_positive: bool
    #: For a correct verdict: the time from the fault (vanish or cut) to the verdict.
    detection: float | None
    #: When the proxy closed the connection, if it did.
    proxy_cut_at: float | None
    #: The close sent for another reason (``ending`` CLOSED): (side, code, reason).
    closed: tuple[Side, int, str] | None
    client: EndpointReport
    server: EndpointReport
    #: Every step, when ``record=True`` (else empty).
    events: tuple[SimEvent, ...] = field(default=(), repr=False)

    @property
    def hours(self) -> float:
        """The simulated time, in hours."""
        return (self.end - self.start) / 3600.0


def _config(name: str, value: object) -> None:
    if value is not None and not isinstance(value, HeartbeatConfig):
        raise ConfigError(f"{name} must be a HeartbeatConfig or None, got {value!r}")


@dataclass(frozen=True, slots=True, kw_only=True)
class Scenario:
    """Everything a run needs but the seed. ``client``/``server``: each endpoint's
    heartbeat configuration (``None``: it only answers the peer's heartbeats)."""

    client: HeartbeatConfig | None = field(default_factory=HeartbeatConfig)
    server: HeartbeatConfig | None = field(default_factory=HeartbeatConfig)
    link: Link = field(default_factory=Link)
    proxy: Proxy | None = None
    faults: tuple[Fault, ...] = ()
    #: Seconds of virtual time to run, from ``start``.
    duration: float = 3600.0

    def __post_init__(self) -> None:
        _config("client", self.client)
        _config("server", self.server)
        if not isinstance(self.link, Link):
            raise ConfigError(f"link must be a Link, got {self.link!r}")
        if self.proxy is not None and not isinstance(self.proxy, Proxy):
            raise ConfigError(f"proxy must be a Proxy or None, got {self.proxy!r}")
        if not isinstance(self.faults, tuple) or not all(
            isinstance(f, (Stall, Vanish, Cut)) for f in self.faults
        ):
            raise ConfigError(
                f"faults must be a tuple of Stall, Vanish and Cut, got {self.faults!r}"
            )
        if not (
            isinstance(self.duration, (int, float))
            and not isinstance(self.duration, bool)
            and math.isfinite(self.duration)
            and self.duration > 0
        ):
            raise ConfigError(
                f"duration must be a finite number of seconds > 0, got {self.duration!r}"
            )


_DIST_CODES = {Distribution.UNIFORM: 0, Distribution.NORMAL: 1, Distribution.EXPONENTIAL: 2}


def simulate(
    scenario: Scenario,
    *,
    seed: int | str = 0,
    start: float = 0.0,
    record: bool = False,
    random: RandomSource | None = None,
) -> SimResult:
    """Run ``scenario`` from ``start`` on the virtual clock; return what happened.

    Every random draw (delays, losses, the states' jitter) comes from
    ``default_random(seed)``, or from ``random`` when given (e.g. a source pinned to
    the top of its range, for the worst case of ``jitter``). Faults are placed on the
    same clock as ``start`` (those entirely before it have no effect). Raises
    :class:`~heartbeat_core.ConfigError` for a bad scenario or seed.
    """
    if not isinstance(scenario, Scenario):
        raise ConfigError(f"scenario must be a Scenario, got {scenario!r}")
    if not (isinstance(start, (int, float)) and math.isfinite(start)):
        raise ConfigError(f"start must be a finite number of seconds, got {start!r}")
    rand = default_random(seed) if random is None else random
    return _Run(scenario, rand, float(start), record).run()


class _Run:
    """One run's mutable state; :meth:`run` is the event loop."""

    def __init__(self, sc: Scenario, rand: RandomSource, start: float, record: bool) -> None:
        self.sc = sc
        self.rand = rand
        self.start = start
        self.record = record
        self.events: list[SimEvent] = []
        configs = (sc.client, sc.server)
        self.states: list[HeartbeatState | None] = [
            None if c is None else HeartbeatState(c, random=rand) for c in configs
        ]
        self.prefix_len = [0 if c is None else len(c.payload_prefix) for c in configs]
        # Index 0 is the client, 1 the server; queue i holds messages *to* side i.
        self.queues: list[deque[tuple[float, int, bytes]]] = [deque(), deque()]
        self.paths = (sc.link.down, sc.link.up)
        self.last_arrival = [start, start]
        self.free_at = [start, start]
        self.heartbeats = [0, 0]
        self.answers = [0, 0]
        self.bytes = [0, 0]
        self.wakeups = [0, 0]
        stalls: list[list[tuple[float, float, bool]]] = [[], []]
        self.vanish = [_INF, _INF]
        cuts: list[list[tuple[float, float | None]]] = [[], []]
        for f in sc.faults:
            if isinstance(f, Stall):
                stalls[_index(f.side)].append((f.at, f.until, f.kind is StallKind.PROCESS))
            elif isinstance(f, Vanish):
                i = _index(f.side)
                self.vanish[i] = min(self.vanish[i], f.at)
            else:
                cuts[_index(f.sender)].append((f.at, f.until))
        for s in stalls:
            s.sort()
        self.stalls = stalls
        self.skip = [0, 0]
        self.cuts = cuts
        self.proxy: Proxy | None = sc.proxy
        # When bytes pass the proxy (a heap: some are known ahead of time).
        self.proxy_pending: list[float] = []

    # ------------------------------------------------------------------ time

    def resume(self, i: int, t: float, timer: bool) -> float:
        """When side ``i`` can act on something due at ``t`` (later if it is stalled).
        Stalls before :attr:`skip` ``[i]`` ended before the present: never again."""
        stalls = self.stalls[i]
        for k in range(self.skip[i], len(stalls)):
            a, b, whole = stalls[k]
            if a > t:
                break
            if t < b and (timer or whole):
                t = b
        return t

    # ------------------------------------------------------------------ the loop

    def run(self) -> SimResult:
        """Play the run to its end. Written for speed: one pass per delivery or timer,
        state kept in local variables, the common cases first."""
        sc = self.sc
        start = self.start
        horizon = start + sc.duration
        rand = self.rand
        record = self.record
        events = self.events
        states = self.states
        for st in states:
            if st is not None:
                st.handle(ConnectionOpened(now=start))
        queues = self.queues
        stalls = self.stalls
        skip = self.skip
        # Per side: the start and the end of the first stall that has not ended (skip[j]);
        # a time before ``quiet[j]`` is never moved by a stall (resume() need not look).
        quiet = [stl[0][0] if stl else _INF for stl in stalls]
        ends = [stl[0][1] if stl else _INF for stl in stalls]
        ended = min(ends)  # the sooner of the two
        vanish = self.vanish
        cuts = self.cuts
        resume = self.resume
        heartbeats, answers, sent_bytes, wakeups = (
            self.heartbeats,
            self.answers,
            self.bytes,
            self.wakeups,
        )
        last_arrival = self.last_arrival
        free_at = self.free_at
        # Per destination (0: to the client, 1: to the server): the path's figures.
        paths = self.paths
        figures = [
            (p.delay, p.jitter, _DIST_CODES[p.distribution], p.loss, p.rto, p.bandwidth)
            for p in paths
        ]
        # Frame sizes by sender and kind (a ping or pong adds its payload).
        sizes = (
            (6, 6, 6 + _APP_PING_SIZE, 6 + _APP_PONG_SIZE),
            (2, 2, 2 + _APP_PING_SIZE, 2 + _APP_PONG_SIZE),
        )
        proxy = self.proxy
        limit = _INF if proxy is None else proxy.idle_limit
        pending = self.proxy_pending
        log = math.log
        sqrt = math.sqrt
        cos = math.cos
        tau = 2.0 * math.pi

        # Effective times: when each side next acts on its queue's head / its timer.
        tq = [_INF, _INF]
        tt = [_INF, _INF]
        answer_only = [st is None for st in states]
        proxy_last = start

        def send(sender: int, kind: int, payload: bytes, now: float) -> None:
            dest = 1 - sender
            size = sizes[sender][kind] + len(payload)
            sent_bytes[sender] += size
            if record:
                events.append(
                    SimEvent(at=now, side=_SIDES[sender], what="sent", detail=_KIND_NAMES[kind])
                )
            depart = now
            if cuts[sender]:
                for at, until in cuts[sender]:
                    if at <= depart and (until is None or depart < until):
                        if until is None:
                            return  # never arrives
                        depart = until
            d, j, code, p, wait, bw = figures[dest]
            if bw is not None:
                depart = max(depart, free_at[dest]) + size / bw
                free_at[dest] = depart
            if j:
                if code == 0:
                    d += j * (2.0 * rand() - 1.0)
                elif code == 1:
                    d += j * sqrt(-2.0 * log(1.0 - rand())) * cos(tau * rand())
                else:
                    d -= j * log(1.0 - rand())
                if d < 0.0:  # noqa: PLR1730 (a comparison is cheaper than max() here)
                    d = 0.0
            arrive = depart + d
            if p:
                while rand() < p:
                    arrive += wait
                    wait *= 2.0
            if arrive < last_arrival[dest]:  # noqa: PLR1730 (cheaper than max())
                arrive = last_arrival[dest]  # in order: it waits behind earlier bytes
            last_arrival[dest] = arrive
            if limit != _INF:
                # The proxy sees the bytes where it stands, beside the server. (A time may
                # lie ahead: an answer is sent here for when its ping will be read.)
                heappush(pending, arrive if dest == 1 else depart)
            if answer_only[dest] and not kind & 1:  # (a ping or app ping: even kinds)
                # An endpoint without heartbeats answers at once, whenever it reads: send
                # its answer now, stamped with the time it will be read (answers leave in
                # the order their pings arrive, so the wire stays in order).
                if arrive >= quiet[dest]:
                    arrive = resume(dest, arrive, False)
                if arrive < vanish[dest]:
                    answers[dest] += 1
                    if record:
                        events.append(
                            SimEvent(
                                at=arrive,
                                side=_SIDES[dest],
                                what="received",
                                detail=_KIND_NAMES[kind],
                            )
                        )
                    send(dest, _PONG if kind == _PING else _APONG, payload, arrive)
                return
            q = queues[dest]
            if not q:
                tq[dest] = resume(dest, arrive, False) if arrive >= quiet[dest] else arrive
            q.append((arrive, kind, payload))

        for i in (0, 1):
            st = states[i]
            if st is not None:
                w = st.wake_at  # (an open state always has one)
                tt[i] = _INF if w is None else resume(i, w, True) if stalls[i] else w

        verdict: Verdict | None = None
        closed: tuple[Side, int, str] | None = None
        ending = Ending.HORIZON
        proxy_cut: float | None = None
        end = horizon
        while True:
            # The next thing to happen: a delivery (first, on a tie), a timer, the proxy.
            a0, a1, b0, b1 = tq[0], tq[1], tt[0], tt[1]
            if a0 <= a1:
                now, what = a0, 0
            else:
                now, what = a1, 1
            if b0 < now or b1 < now:
                if b0 <= b1:
                    now, what = b0, 2
                else:
                    now, what = b1, 3
            if limit != _INF:
                cut_at = proxy_last + limit
                while pending and pending[0] < cut_at:
                    t = heappop(pending)
                    if t > proxy_last:  # noqa: PLR1730 (cheaper than max())
                        proxy_last = t
                    cut_at = proxy_last + limit
                if cut_at <= now and cut_at <= horizon:
                    ending, proxy_cut, end = Ending.PROXY_CUT, cut_at, cut_at
                    if record:
                        events.append(SimEvent(at=cut_at, side=None, what="proxy-cut"))
                    break
            if now > horizon:
                break
            i = what & 1
            if now >= ended:
                for j in (0, 1):
                    # Stalls that ended by now can never matter again (times only go on).
                    stl, k = stalls[j], skip[j]
                    while k < len(stl) and stl[k][1] <= now:
                        k += 1
                    skip[j] = k
                    quiet[j], ends[j] = stl[k][:2] if k < len(stl) else (_INF, _INF)
                ended = min(ends)
            st = states[i]
            if what < 2:
                q = queues[i]
                _, kind, payload = q.popleft()
                if q:
                    t = q[0][0]
                    if t >= quiet[i]:
                        t = resume(i, t, False)
                    tq[i] = t if t > now else now  # (read meanwhile: now, in order)
                else:
                    tq[i] = _INF
                if now >= vanish[i]:
                    continue  # nobody there to read it
                if record:
                    events.append(
                        SimEvent(at=now, side=_SIDES[i], what="received", detail=_KIND_NAMES[kind])
                    )
                # (an endpoint without heartbeats answered in send(), and gets no pongs)
                assert st is not None
                if kind == _PONG:
                    actions = st.pong_received(now, payload)
                elif kind == _PING:
                    actions = st.handle(PingReceived(now=now, payload=payload))
                else:
                    st.bytes_received(now)
                    actions = st.handle(
                        AppPingReceived(now=now) if kind == _APING else AppPongReceived(now=now)
                    )
            else:
                assert st is not None
                if now >= vanish[i]:
                    tt[i] = _INF
                    continue
                wakeups[i] += 1
                if record:
                    events.append(SimEvent(at=now, side=_SIDES[i], what="timer"))
                actions = st.timer_fired(now)
            for action in actions:
                cls = type(action)
                if cls is SendPing:
                    heartbeats[i] += 1
                    send(i, _PING, action.payload, now)  # type: ignore[union-attr]
                elif cls is RttSample:
                    if record:
                        events.append(
                            SimEvent(at=now, side=_SIDES[i], what="rtt", value=action.rtt)  # type: ignore[union-attr]
                        )
                elif cls is SendPong:
                    answers[i] += 1
                    send(i, _PONG, action.payload, now)  # type: ignore[union-attr]
                elif cls is SendAppPing:
                    heartbeats[i] += 1
                    send(i, _APING, b"", now)
                elif cls is SendAppPong:
                    answers[i] += 1
                    send(i, _APONG, b"", now)
                elif cls is PeerDead:
                    assert isinstance(action, PeerDead)
                    verdict = Verdict(side=_SIDES[i], at=now, seq=action.seq, waited=action.waited)
                    if record:
                        events.append(
                            SimEvent(at=now, side=_SIDES[i], what="dead", value=action.waited)
                        )
                elif cls is SendClose and verdict is None:
                    assert isinstance(action, SendClose)
                    closed = (_SIDES[i], action.code, action.reason)
                    if record:
                        events.append(
                            SimEvent(
                                at=now,
                                side=_SIDES[i],
                                what="close",
                                detail=f"{action.code} {action.reason}",
                            )
                        )
            if verdict is not None:
                ending, end = Ending.PEER_DEAD, now
                break
            if closed is not None:
                ending, end = Ending.CLOSED, now
                break
            # An overdue timer fires at once; a state with no deadline has no timer.
            w = st.wake_at
            w = _INF if w is None else w
            if w >= quiet[i]:
                w = resume(i, w, True)
            tt[i] = w if w > now else now
        if record:
            events.sort(key=_at)  # (answers of endpoints without heartbeats come early)
        return self._result(ending, end, verdict, proxy_cut, closed)

    def _gone_since(self, i: int, t: float) -> float | None:
        """When side ``i`` stopped being reachable, as seen from the other side at
        ``t``: it vanished, or a cut (either way) is in force; ``None``: it was there."""
        since = self.vanish[i] if self.vanish[i] < t else None
        for sender in (0, 1):
            for at, until in self.cuts[sender]:
                if at < t and (until is None or t < until) and (since is None or at < since):
                    since = at
        return since

    def _result(
        self,
        ending: Ending,
        end: float,
        verdict: Verdict | None,
        proxy_cut: float | None,
        closed: tuple[Side, int, str] | None,
    ) -> SimResult:
        false_positive = False
        detection = None
        if verdict is not None:
            gone = self._gone_since(1 - _index(verdict.side), verdict.at)
            if gone is None:
                false_positive = True
            else:
                detection = verdict.at - gone
        reports = [
            EndpointReport(
                heartbeats=self.heartbeats[i],
                answers=self.answers[i],
                heartbeat_bytes=self.bytes[i],
                wakeups=self.wakeups[i],
                stats=None if st is None else st.stats,
            )
            for i, st in enumerate(self.states)
        ]
        return SimResult(
            start=self.start,
            end=end,
            ending=ending,
            verdict=verdict,
            false_positive=false_positive,
            detection=detection,
            proxy_cut_at=proxy_cut,
            closed=closed,
            client=reports[0],
            server=reports[1],
            events=tuple(self.events),
        )


_SIDES = (Side.CLIENT, Side.SERVER)


def _at(event: SimEvent) -> float:
    return event.at


def _index(side: Side) -> int:
    return 0 if side is Side.CLIENT else 1


# (the style decides the message kind; kept here so the import is used by type checkers)
_ = HeartbeatStyle
