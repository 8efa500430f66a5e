"""The dashboard's registry: the connections of a server, their RTTs and how they ended.

A plain class fed with the core's events, by any driver: pass
:meth:`ConnectionRegistry.on_event` as the server's ``on_event`` hook (the asyncio
and the threading driver both call it with ``(conn, event)``), and call
:meth:`ConnectionRegistry.snapshot` to see what a dashboard shows. It uses no
asyncio; :class:`heartbeat_cli.dashboard.Dashboard` serves it over HTTP and a
WebSocket feed. Its methods take a lock, so ``on_event`` may run on a driver's I/O
thread while another thread takes snapshots.

What it records: peers, request paths without their query strings (tokens often
travel there, and cut at :data:`MAX_PATH` characters), heartbeat figures and close
codes; never message payloads. The cost is one dictionary entry per connection and
one tuple per RTT sample (in a bounded deque); a snapshot lists at most
``max_rows`` connections and 2,000 samples, so its size is bounded too.
"""

from __future__ import annotations

import collections
import itertools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from heartbeat_core import HeartbeatConnection, HeartbeatStats, HeartbeatStyle
from heartbeat_core.errors import ConfigError
from heartbeat_core.state import HeartbeatPhase
from heartbeat_core.timers import TimerItem, TimerWheel
from heartbeat_core.wsevents import Closed, ConnectionEvent, PeerDead, Request, RttSample

__all__ = ["FEED_PATH", "MAX_PATH", "ConnectionRegistry", "Watched", "peer_style"]

#: The dashboard's own WebSocket (its live feed); connections to it are marked as dashboards.
FEED_PATH = "/_dashboard"


class Watched(Protocol):
    """What the registry reads from a connection (either driver's ``Connection``)."""

    @property
    def remote_address(self) -> tuple[str, int] | None: ...

    @property
    def core(self) -> HeartbeatConnection: ...


def _peer(address: tuple[str, int] | None) -> str:
    if address is None:
        return "unknown"
    host, port = address
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000.0, 3)


def peer_style(stats: HeartbeatStats) -> str:
    """How the peer's own heartbeats travel, as seen so far: ``frames`` (ping frames),
    ``app`` (``{"type":"ping"}`` messages), ``both``, or ``none`` (it only answers ours)."""
    app = stats.peer_app_pings
    frames = stats.peer_pings - app
    if app and frames:
        return "both"
    return "app" if app else "frames" if frames else "none"


#: The longest request path a snapshot shows (longer ones are cut, ending in "…").
MAX_PATH = 200


def _path(target: str) -> str:
    path = target.split("?", 1)[0]
    return path if len(path) <= MAX_PATH else path[: MAX_PATH - 1] + "…"


@dataclass(slots=True)
class _Row(TimerItem):
    """One connection the registry knows about (a TimerItem: a closed row is filed
    to leave the list ``closed_ttl`` after its close)."""

    id: int
    conn: Watched | None  # None once closed
    peer: str
    path: str
    dashboard: bool
    style: str
    opened: float
    closed: float | None = None
    final_stats: HeartbeatStats | None = None
    final_phase: str = "closed"
    code: int | None = None
    reason: str = ""
    by: str | None = None
    dead: bool = False

    def __post_init__(self) -> None:
        TimerItem.__init__(self)


class _Mark(TimerItem):
    """Every RTT sample numbered up to ``number`` is older than ``history`` once the
    mark is due (a snapshot files one, ``history`` after it was taken)."""

    __slots__ = ("number",)

    def __init__(self, number: int) -> None:
        super().__init__()
        self.number = number


class ConnectionRegistry:
    """The connections a dashboard shows, fed with events by :meth:`on_event`.

    ``clock`` is a monotonic clock in seconds (the registry only shows ages and
    relative times). ``history``: seconds of RTT samples a snapshot includes.
    ``max_rows``: the most connections a snapshot lists (the newest).
    ``keep_closed``: how many closed connections stay listed, each for at most
    ``closed_ttl`` seconds. ``max_samples``: the most RTT samples kept.
    """

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.monotonic,
        history: float = 60.0,
        max_rows: int = 200,
        keep_closed: int = 50,
        closed_ttl: float = 120.0,
        max_samples: int = 20_000,
    ) -> None:
        for name, value in (("history", history), ("closed_ttl", closed_ttl)):
            if not (isinstance(value, (int, float)) and value > 0):
                raise ConfigError(f"{name} must be a number of seconds > 0, got {value!r}")
        for name, count in (
            ("max_rows", max_rows),
            ("keep_closed", keep_closed),
            ("max_samples", max_samples),
        ):
            if isinstance(count, bool) or not (isinstance(count, int) and count >= 1):
                raise ConfigError(f"{name} must be an int >= 1, got {count!r}")
        self._clock = clock
        self.history: float = float(history)
        self.max_rows = max_rows
        self.closed_ttl: float = float(closed_ttl)
        self._ids = itertools.count(1)
        self._rows: dict[Watched, _Row] = {}
        self._closed: collections.deque[_Row] = collections.deque(maxlen=keep_closed)
        # (sample number, time, connection id, rtt ms)
        self._samples: collections.deque[tuple[int, float, int, float]] = collections.deque(
            maxlen=max_samples
        )
        self._sample_no = 0
        # When things age out is the core's TimerWheel's decision: closed rows leave the
        # list closed_ttl after their close; samples leave snapshots once a snapshot taken
        # after them is history old (the page drops older points itself too).
        self._expiry: TimerWheel[_Row] = TimerWheel(0.1)
        self._marks: TimerWheel[_Mark] = TimerWheel(0.1)
        self._aged = 0  # samples numbered up to this are older than history
        self._lock = threading.Lock()

    def number_from(self, start: int, step: int) -> None:
        """Number the connections listed from now on ``start``, ``start + step``, ...
        (``heartbeat serve --workers N``: ids unique among the workers)."""
        with self._lock:
            self._ids = itertools.count(start, step)

    def on_event(self, conn: Watched, event: ConnectionEvent) -> None:
        """The server's ``on_event`` hook: follows every connection's life (it is listed
        from its :class:`~heartbeat_core.Request` on)."""
        with self._lock:
            self._on_event(conn, event)

    def _on_event(self, conn: Watched, event: ConnectionEvent) -> None:
        cls = type(event)
        if cls is RttSample:
            row = self._rows.get(conn)
            if row is not None:
                assert isinstance(event, RttSample)
                self._sample_no += 1
                self._samples.append((self._sample_no, self._clock(), row.id, event.rtt * 1000.0))
        elif cls is Request:
            assert isinstance(event, Request)
            self._register(conn, event.target)
        elif cls is PeerDead:
            row = self._rows.get(conn)
            if row is not None:
                row.dead = True
        elif cls is Closed:
            row = self._rows.pop(conn, None)
            if row is not None:
                assert isinstance(event, Closed)
                row.final_stats = conn.core.stats
                row.final_phase = "closed"
                row.closed = self._clock()
                row.code, row.reason, row.by = event.code, event.reason, event.by
                row.conn = None
                self._closed.append(row)
                self._expiry.file(row, row.closed + self.closed_ttl)

    def register(self, conn: Watched, target: str, *, dashboard: bool = False) -> int:
        """List ``conn`` (request target ``target``) if it is not listed yet, marked as a
        dashboard when ``dashboard`` is true; returns its id in snapshots."""
        with self._lock:
            row = self._register(conn, target)
            if dashboard:
                row.dashboard = True
            return row.id

    def _register(self, conn: Watched, target: str) -> _Row:
        row = self._rows.get(conn)
        if row is None:
            style = "frames" if conn.core.config.style is HeartbeatStyle.PROTOCOL else "app"
            path = _path(target)
            row = _Row(
                id=next(self._ids),
                conn=conn,
                peer=_peer(conn.remote_address),
                path=path,
                dashboard=path == FEED_PATH,
                style=style,
                opened=self._clock(),
            )
            self._rows[conn] = row
        return row

    def _row_json(self, row: _Row, now: float) -> dict[str, Any]:
        conn = row.conn
        if conn is not None:
            stats = conn.core.stats
            phase = conn.core.phase.value
            age = now - row.opened
        else:
            assert row.final_stats is not None and row.closed is not None
            stats = row.final_stats
            phase = row.final_phase
            age = row.closed - row.opened
        return {
            "id": row.id,
            "peer": row.peer,
            "path": row.path,
            "kind": "dashboard" if row.dashboard else "client",
            "style": row.style,
            "peer_style": peer_style(stats),
            "state": phase,
            "dead": row.dead,
            "last_rtt_ms": _ms(stats.last_rtt),
            "srtt_ms": _ms(stats.srtt),
            "pings": stats.pings_sent,
            "pongs": stats.pongs_received,
            "peer_pings": stats.peer_pings,
            "age_s": round(age, 3),
            "closed_ago_s": None if row.closed is None else round(now - row.closed, 3),
            "code": row.code,
            "reason": row.reason,
            "by": row.by,
        }

    def snapshot(self, since: int = 0, until: int | None = None) -> dict[str, Any]:
        """What a viewer sees now: the newest connections, and RTT samples after number
        ``since`` (at most the last ``history`` seconds, and none after number ``until``
        when it is given; ``next`` is the number to pass next)."""
        with self._lock:
            return self._snapshot(since, self._sample_no if until is None else until)

    def _snapshot(self, since: int, until: int) -> dict[str, Any]:
        now = self._clock()
        for row in self._expiry.pop_due(now):
            if row in self._closed:  # (unless keep_closed pushed it out already)
                self._closed.remove(row)
        for mark in self._marks.pop_due(now):
            self._aged = max(self._aged, mark.number)
        self._marks.file(_Mark(self._sample_no), now + self.history)
        since = max(since, self._aged)
        open_rows = list(self._rows.values())
        shown = open_rows[-self.max_rows :]
        room = self.max_rows - len(shown)
        closed_rows = list(self._closed)[-room:] if room > 0 else []
        samples = [
            [round(t - now, 3), conn_id, round(rtt, 3)]
            for number, t, conn_id, rtt in self._samples
            if since < number <= until
        ][-2000:]
        phases = collections.Counter(
            row.conn.core.phase for row in open_rows if row.conn is not None
        )
        return {
            "type": "snapshot",
            "open": len(open_rows),
            "awaiting": phases[HeartbeatPhase.AWAITING] + phases[HeartbeatPhase.GRACE],
            "rows": [self._row_json(row, now) for row in shown + closed_rows],
            "samples": samples,
            "next": until,
        }
