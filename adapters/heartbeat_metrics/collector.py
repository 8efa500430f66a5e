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
from typing import Any

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
    PeerDead,
    RttSample,
)
from heartbeat_core.state import PING_FLOOD_REASON, PONG_FLOOD_REASON

__all__ = ["DEFAULT_BUCKETS", "HeartbeatMetrics", "code_label"]

#: RTT histogram buckets, in seconds: loopback (sub-millisecond) to a stalled mobile link.
DEFAULT_BUCKETS: tuple[float, ...] = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip
_ROLES = ("server", "client")


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


def _core(conn: Any) -> HeartbeatConnection:
    core = getattr(conn, "core", conn)
    if not isinstance(core, HeartbeatConnection):
        raise ConfigError(
            "HeartbeatMetrics.on_event needs a connection with a .core (either driver's "
            f"Connection, a DriverBase) or a HeartbeatConnection, got {conn!r}"
        )
    return core


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
            raise ConfigError(
                f"buckets must be increasing numbers of seconds > 0, got {buckets!r}"
            )
        if not namespace or not namespace.replace("_", "a").isalnum():
            raise ConfigError(f"namespace must be letters, digits and _, got {namespace!r}")
        self.buckets: tuple[float, ...] = bounds
        self.namespace: str = namespace
        self._lock = threading.Lock()
        self._open: dict[Any, tuple[HeartbeatConnection, str]] = {}
        self._totals = {role: _Totals(len(bounds)) for role in _ROLES}
        if registry is not None:
            registry.register(self)

    # ------------------------------------------------------------------ events

    def on_event(self, conn: Any, event: ConnectionEvent) -> None:
        """The ``on_event(conn, event)`` hook: pass it as ``serve(on_event=...)`` or
        ``connect(on_event=...)``, or call it from your own hook."""
        kind = type(event)
        if kind is RttSample:
            assert isinstance(event, RttSample)
            with self._lock:
                entry = self._open.get(conn)
                if entry is None:
                    return
                totals = self._totals[entry[1]]
                totals.pongs += 1
                totals.rtt_sum += event.rtt
                totals.buckets[bisect.bisect_left(self.buckets, event.rtt)] += 1
        elif kind is Accepted:
            core = _core(conn)
            role = core.role.value
            with self._lock:
                if conn not in self._open:
                    self._open[conn] = (core, role)
                    self._totals[role].opened += 1
        elif kind is PeerDead:
            with self._lock:
                entry = self._open.get(conn)
                if entry is not None:
                    self._totals[entry[1]].dead += 1
        elif kind is Closing:
            assert isinstance(event, Closing)
            flood = None
            if not event.by_peer and event.code == 1008:
                flood = {PING_FLOOD_REASON: "ping", PONG_FLOOD_REASON: "pong"}.get(event.reason)
            if flood is not None:
                with self._lock:
                    entry = self._open.get(conn)
                    if entry is not None:
                        self._totals[entry[1]].floods[flood] += 1
        elif kind is Closed:
            assert isinstance(event, Closed)
            with self._lock:
                entry = self._open.pop(conn, None)
                if entry is None:
                    return  # never opened: not counted anywhere
                core, role = entry
                totals = self._totals[role]
                stats = core.stats
                totals.pings += stats.pings_sent
                totals.probes += stats.probes_sent
                totals.peer_pings += stats.peer_pings
                key = (code_label(event.code), event.by)
                totals.closes[key] = totals.closes.get(key, 0) + 1

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
        rtt = HistogramMetricFamily(
            n("rtt_seconds"), "Heartbeat round-trip time.", labels=["role"]
        )
        families: list[Metric] = [
            open_now, paused, opened, sent, probes, pongs, peer_pings, dead, closes, floods, rtt
        ]  # fmt: skip
        if empty:
            yield from families
            return
        with self._lock:
            live: dict[str, list[int]] = {role: [0, 0, 0, 0, 0] for role in _ROLES}
            for core, role in self._open.values():
                stats = core.stats
                figures = live[role]
                figures[0] += 1
                figures[1] += core.reading_paused
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
