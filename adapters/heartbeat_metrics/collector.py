"""A Prometheus collector of every connection's heartbeat figures, fed with events.

Counting happens in :meth:`HeartbeatMetrics.on_event` (opens, answered heartbeats
and their RTTs, dead peers, closes); what only a connection's
:class:`~heartbeat_core.HeartbeatStats` knows (heartbeats and probes sent, the
peer's pings, a paused reader) is read from the open connections at scrape time
and folded into the totals when a connection closes, so counters never go
back. Labels are few and bounded: ``role`` (server or client), and on closes
``by`` (local or remote) and ``code`` (see :func:`code_label`). No peer address,
path or reason is ever a label.
"""

from __future__ import annotations

import bisect
import itertools
import math
import threading
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Protocol

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector, CollectorRegistry

from heartbeat_core import (
    Accepted,
    Closed,
    Closing,
    ConfigError,
    ConnectionEvent,
    HeartbeatConnection,
    HeartbeatState,
    HeartbeatStats,
    Message,
    PeerDead,
    PingAnswered,
    RttSample,
)
from heartbeat_core.state import PING_FLOOD_REASON, PONG_FLOOD_REASON

__all__ = ["DEFAULT_BUCKETS", "HeartbeatMetrics", "code_label"]

#: RTT histogram buckets, in seconds: loopback (sub-millisecond) to a stalled mobile link.
DEFAULT_BUCKETS: tuple[float, ...] = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip
_ROLES = ("server", "client")
_FLOODS = {PING_FLOOD_REASON: "ping", PONG_FLOOD_REASON: "pong"}
#: Events only an open connection reports: a connection is counted from the first.
#: (Drivers report ``Accepted``; the framework integrations' runners report no open.)
_OF_AN_OPEN_CONNECTION = frozenset({Accepted, RttSample, PeerDead, Closing, Message, PingAnswered})


def code_label(code: int) -> str:
    """The ``code`` label of a close: 1000-1015 and 4000 (the browser client's "peer
    dead") as themselves, other registered or private codes as ``3xxx`` / ``4xxx``,
    anything else ``other``. At most 20 values, whatever peers send."""
    if 1000 <= code <= 1015 or code == 4000:
        return str(code)
    if 3000 <= code <= 3999:
        return "3xxx"
    if 4000 <= code <= 4999:
        return "4xxx"
    return "other"


class _Figures(Protocol):
    """What a connection's figures are read from: a ``HeartbeatConnection`` or a
    ``HeartbeatState``."""

    @property
    def stats(self) -> HeartbeatStats: ...

    @property
    def reading_paused(self) -> bool: ...


def _figures(conn: Any) -> tuple[_Figures | None, str]:
    """Where ``conn``'s figures live, and its role: a driver's connection (``.core``), a
    ``HeartbeatConnection``, or a framework integration's connection (its runner, as
    ``.heartbeat``, or ``scope["state"]["heartbeat"]`` for ASGI). For an integration the
    role is ``client`` when the connection's class says so (``...Client...``), else
    ``server``; ``None`` figures: counted from events only."""
    core = getattr(conn, "core", conn)
    if isinstance(core, HeartbeatConnection):
        return core, core.role.value
    if isinstance(conn, dict):  # an ASGI scope
        runner = conn.get("state", {}).get("heartbeat")
        role = "server"
    else:
        runner = getattr(conn, "heartbeat", None)
        role = "client" if "client" in type(conn).__name__.lower() else "server"
    state = getattr(runner, "state", None)
    return (state if isinstance(state, HeartbeatState) else None), role


def _key(conn: Any) -> Any:
    """``conn`` itself, or its id when it cannot be hashed (an ASGI scope is a dict)."""
    try:
        hash(conn)
    except TypeError:
        return ("id", id(conn))
    return conn


class _Totals:
    """One role's figures."""

    __slots__ = (
        "buckets",
        "closes",
        "dead",
        "floods",
        "opened",
        "peer_pings",
        "pings",
        "pongs",
        "probes",
        "rtt_sum",
    )

    def __init__(self, size: int) -> None:
        self.opened = 0
        self.pongs = 0
        self.dead = 0
        self.pings = 0  # of closed connections; the open ones' are added at scrape time
        self.probes = 0
        self.peer_pings = 0
        self.rtt_sum = 0.0
        self.buckets = [0] * (size + 1)  # per bucket (not cumulative), +Inf last
        self.closes: dict[tuple[str, str], int] = {}
        self.floods = {"ping": 0, "pong": 0}


class HeartbeatMetrics(Collector):
    """Heartbeat metrics of every connection whose events reach :meth:`on_event`.

    ``registry``: a ``prometheus_client`` registry to register with at once (else call
    ``registry.register(metrics)`` yourself). ``namespace`` prefixes every series
    (default ``heartbeat``). ``buckets``: the RTT histogram's upper bounds in seconds,
    increasing. Thread-safe: drivers may call :meth:`on_event` from their I/O threads
    while a scrape runs.
    """

    def __init__(
        self,
        *,
        registry: CollectorRegistry | None = None,
        namespace: str = "heartbeat",
        buckets: Sequence[float] = DEFAULT_BUCKETS,
    ) -> None:
        bounds = tuple(float(b) for b in buckets)
        if not bounds or bounds[0] <= 0 or any(b <= a for a, b in itertools.pairwise(bounds)):
            raise ConfigError(f"buckets must be increasing numbers of seconds > 0, got {buckets!r}")
        if not namespace or not namespace.replace("_", "a").isalnum():
            raise ConfigError(f"namespace must be letters, digits and _, got {namespace!r}")
        self.buckets: tuple[float, ...] = bounds
        self.namespace: str = namespace
        self._lock = threading.Lock()
        self._open: dict[Any, tuple[_Figures | None, str]] = {}
        self._totals = {role: _Totals(len(bounds)) for role in _ROLES}
        if registry is not None:
            registry.register(self)

    # ------------------------------------------------------------------ events

    def on_event(self, conn: Any, event: ConnectionEvent) -> None:
        """The ``on_event(conn, event)`` hook: pass it as ``serve(on_event=...)`` or
        ``connect(on_event=...)`` of either driver or integration, or call it from your
        own hook. A connection is counted from its first event of an open connection (a
        driver's ``Accepted``; for an integration, whose runner reports no open, its first
        answered heartbeat, dead-peer verdict or close) to its ``Closed``."""
        kind = type(event)
        key = _key(conn)
        with self._lock:
            entry = self._open.get(key)
            if entry is None:
                if kind not in _OF_AN_OPEN_CONNECTION and kind is not Closed:
                    return  # (a request, its answer: the connection may never open)
                entry = _figures(conn)
                if kind is Closed and isinstance(entry[0], HeartbeatConnection):
                    return  # a driver's connection that never opened: not counted
                # (An integration's runner exists only once the WebSocket is open.)
                self._open[key] = entry
                self._totals[entry[1]].opened += 1
            totals = self._totals[entry[1]]
            if kind is RttSample:
                assert isinstance(event, RttSample)
                totals.pongs += 1
                totals.rtt_sum += event.rtt
                totals.buckets[bisect.bisect_left(self.buckets, event.rtt)] += 1
            elif kind is PeerDead:
                totals.dead += 1
            elif kind is Closing:
                assert isinstance(event, Closing)
                if not event.by_peer and event.code == 1008:
                    flood = _FLOODS.get(event.reason)
                    if flood is not None:
                        totals.floods[flood] += 1
            elif kind is Closed:
                assert isinstance(event, Closed)
                del self._open[key]
                figures = entry[0]
                if figures is not None:
                    stats = figures.stats
                    totals.pings += stats.pings_sent
                    totals.probes += stats.probes_sent
                    totals.peer_pings += stats.peer_pings
                label = (code_label(event.code), event.by)
                totals.closes[label] = totals.closes.get(label, 0) + 1

    # ------------------------------------------------------------------ scrape

    def _name(self, name: str) -> str:
        return f"{self.namespace}_{name}"

    def describe(self) -> Iterable[Metric]:
        """The series' names and types (without values), for the registry."""
        return list(self._families(empty=True))

    def collect(self) -> Iterable[Metric]:
        """Every series, as of now."""
        return list(self._families(empty=False))

    def _families(self, *, empty: bool) -> Iterator[Metric]:
        n = self._name
        open_now = GaugeMetricFamily(
            n("connections_open"), "Connections open now.", labels=["role"]
        )
        paused = GaugeMetricFamily(
            n("readers_paused"),
            "Open connections whose reading is paused (the application reads too slowly; "
            "no dead-peer verdict meanwhile).",
            labels=["role"],
        )
        opened = CounterMetricFamily(
            n("connections_opened"), "Connections opened (handshake completed).", labels=["role"]
        )
        sent = CounterMetricFamily(
            n("heartbeats_sent"), "Heartbeats sent (pings of either style), probes included.",
            labels=["role"],
        )  # fmt: skip
        probes = CounterMetricFamily(
            n("probes_sent"), "Of the heartbeats sent, probes (sent for an RTT sample only).",
            labels=["role"],
        )  # fmt: skip
        pongs = CounterMetricFamily(
            n("pongs_received"), "Heartbeats answered by the matching pong.", labels=["role"]
        )
        peer_pings = CounterMetricFamily(
            n("peer_pings_received"), "Pings the peers sent (frames or app-level).",
            labels=["role"],
        )  # fmt: skip
        dead = CounterMetricFamily(
            n("dead_peers"), "Peers declared dead (a heartbeat unanswered for the timeout).",
            labels=["role"],
        )  # fmt: skip
        closes = CounterMetricFamily(
            n("closes"), "Connections closed, by close code and by the side that closed first.",
            labels=["role", "code", "by"],
        )  # fmt: skip
        floods = CounterMetricFamily(
            n("flood_closes"), "Connections closed with 1008 for a ping or pong flood.",
            labels=["role", "kind"],
        )  # fmt: skip
        rtt = HistogramMetricFamily(n("rtt_seconds"), "Heartbeat round-trip time.", labels=["role"])
        families: list[Metric] = [
            open_now, paused, opened, sent, probes, pongs, peer_pings, dead, closes, floods, rtt
        ]  # fmt: skip
        if empty:
            yield from families
            return
        with self._lock:
            live: dict[str, list[int]] = {role: [0, 0, 0, 0, 0] for role in _ROLES}
            for source, role in self._open.values():
                figures = live[role]
                figures[0] += 1
                if source is None:
                    continue
                stats = source.stats
                figures[1] += source.reading_paused
                figures[2] += stats.pings_sent
                figures[3] += stats.probes_sent
                figures[4] += stats.peer_pings
            for role in _ROLES:
                t = self._totals[role]
                count, paused_now, pings, probes_now, peer_now = live[role]
                open_now.add_metric([role], count)
                paused.add_metric([role], paused_now)
                opened.add_metric([role], t.opened)
                sent.add_metric([role], t.pings + pings)
                probes.add_metric([role], t.probes + probes_now)
                pongs.add_metric([role], t.pongs)
                peer_pings.add_metric([role], t.peer_pings + peer_now)
                dead.add_metric([role], t.dead)
                for (code, by), value in sorted(t.closes.items()):
                    closes.add_metric([role, code, by], value)
                for kind, value in t.floods.items():
                    floods.add_metric([role, kind], value)
                cumulative, running = [], 0
                for bound, value in zip((*self.buckets, math.inf), t.buckets, strict=True):
                    running += value
                    cumulative.append((_le(bound), float(running)))
                rtt.add_metric([role], cumulative, t.rtt_sum)
        yield from families


def _le(bound: float) -> str:
    return "+Inf" if bound == math.inf else repr(bound)
