"""The live dashboard: a read-only picture of a server's connections, in the browser.

Wire a :class:`Dashboard` into :func:`heartbeat_asyncio.serve` with three hooks::

    dashboard = Dashboard()
    server = await serve(
        dashboard.handler(my_handler),      # /_dashboard is the dashboard's feed
        on_event=dashboard.on_event,        # the registry of connections
        http_handler=dashboard.http_handler,  # GET / and the static files
    )

Then ``http://host:port/`` shows a table of the connections (peer, heartbeat
style, last and smoothed RTT, state, age) and an RTT chart, both updated over
the dashboard's own WebSocket (:data:`FEED_PATH`, a connection that appears in
the table marked as a dashboard). The same port serves the browser client,
``heartbeat-client.js``, as an ES module (:data:`CLIENT_PATH`) and as a
classic script (:data:`CLASSIC_CLIENT_PATH`, defining ``window.HeartbeatClient``).

What it shows and what it does not: peers, request paths without their query
strings (tokens often travel there), heartbeat figures and close codes; never
message payloads. Nothing sent to the feed changes anything. It is served
wherever the server listens (loopback by default); ``heartbeat serve
--no-dashboard`` leaves it out.

The cost while nobody watches is one dictionary entry per connection and one
tuple per RTT sample (in a bounded deque); a snapshot is built per viewer every
``update_interval`` seconds and lists at most ``max_rows`` connections.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from typing import Any

from heartbeat_asyncio import Connection, Handler

from heartbeat_core import JSON_CODEC, AppKind, HeartbeatStats, HeartbeatStyle
from heartbeat_core.errors import ConfigError, ConnectionClosedError
from heartbeat_core.state import HeartbeatPhase
from heartbeat_core.wsevents import Closed, ConnectionEvent, PeerDead, Request, RttSample

__all__ = [
    "CLASSIC_CLIENT_PATH",
    "CLIENT_PATH",
    "FEED_PATH",
    "Dashboard",
    "classic_script",
]

#: The dashboard's own WebSocket (its live feed).
FEED_PATH = "/_dashboard"
#: The JavaScript client as an ES module.
CLIENT_PATH = "/heartbeat-client.js"
#: The same client as a classic script (defines ``window.HeartbeatClient``).
CLASSIC_CLIENT_PATH = "/heartbeat-client.global.js"

_HTML = "text/html; charset=utf-8"
_JS = "text/javascript; charset=utf-8"
_CSS = "text/css; charset=utf-8"
#: Request path -> (file in static/, content type).
_FILES: dict[str, tuple[str, str]] = {
    "/": ("dashboard.html", _HTML),
    "/index.html": ("dashboard.html", _HTML),
    "/dashboard.css": ("dashboard.css", _CSS),
    "/dashboard.js": ("dashboard.js", _JS),
    CLIENT_PATH: ("heartbeat-client.js", _JS),
}
_COMMON_HEADERS = [
    ("Cache-Control", "no-cache"),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
]
# The page loads only its own files and talks only to its own origin.
_PAGE_HEADERS = [
    (
        "Content-Security-Policy",
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
        "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    ),
    ("X-Frame-Options", "DENY"),
]

_EXPORT = re.compile(r"^export\s+(?:default\s+\w+;\s*$)?", re.MULTILINE)


def classic_script(module_source: str, global_name: str = "HeartbeatClient") -> str:
    """The ES module ``module_source`` as a classic script that sets ``globalThis[global_name]``.

    Only the module's own form is supported: top-level ``export class|function|const``
    declarations and ``export default Name;`` lines, no imports.
    """
    if re.search(r"^import\s", module_source, re.MULTILINE):
        raise ConfigError("classic_script() cannot convert a module that imports others")
    body = _EXPORT.sub("", module_source)
    return (
        "(function () {\n'use strict';\n"
        + body
        + f"\nglobalThis.{global_name} = {global_name};\n}})();\n"
    )


def _read_static(name: str) -> bytes:
    return (resources.files("heartbeat_cli") / "static" / name).read_bytes()


def _peer(address: tuple[str, int] | None) -> str:
    if address is None:
        return "unknown"
    host, port = address
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000.0, 3)


def _path(target: str) -> str:
    return target.split("?", 1)[0]


@dataclass(slots=True)
class _Row:
    """One connection the dashboard knows about."""

    id: int
    conn: Connection | None  # None once closed
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


class Dashboard:
    """The connection registry behind the dashboard page, and its feed.

    ``clock`` is a monotonic clock in seconds (the dashboard only shows ages
    and relative times). ``update_interval``: seconds between two snapshots
    sent to a viewer. ``history``: seconds of RTT samples the chart shows.
    ``max_rows``: the most connections a snapshot lists (the newest).
    ``keep_closed``: how many closed connections stay listed, each for at most
    ``closed_ttl`` seconds.
    """

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.monotonic,
        update_interval: float = 0.5,
        history: float = 60.0,
        max_rows: int = 200,
        keep_closed: int = 50,
        closed_ttl: float = 120.0,
        max_samples: int = 20_000,
    ) -> None:
        for name, value in (
            ("update_interval", update_interval),
            ("history", history),
            ("closed_ttl", closed_ttl),
        ):
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
        self.update_interval = float(update_interval)
        self.history = float(history)
        self.max_rows = max_rows
        self.closed_ttl = float(closed_ttl)
        self._ids = itertools.count(1)
        self._rows: dict[Connection, _Row] = {}
        self._closed: collections.deque[_Row] = collections.deque(maxlen=keep_closed)
        # (sample number, time, connection id, rtt ms)
        self._samples: collections.deque[tuple[int, float, int, float]] = collections.deque(
            maxlen=max_samples
        )
        self._sample_no = 0
        self._files: dict[str, bytes] = {}

    # ------------------------------------------------------------ registry

    def on_event(self, conn: Connection, event: ConnectionEvent) -> None:
        """The ``serve(on_event=...)`` hook: follows every connection's life."""
        cls = type(event)
        if cls is RttSample:
            row = self._rows.get(conn)
            if row is not None:
                assert isinstance(event, RttSample)
                self._sample_no += 1
                self._samples.append((self._sample_no, self._clock(), row.id, event.rtt * 1000.0))
        elif cls is Request:
            self._register(conn)
        elif cls is PeerDead:
            row = self._rows.get(conn)
            if row is not None:
                row.dead = True
        elif cls is Closed:
            row = self._rows.pop(conn, None)
            if row is not None:
                assert isinstance(event, Closed)
                row.final_stats = conn.stats
                row.final_phase = "closed"
                row.closed = self._clock()
                row.code, row.reason, row.by = event.code, event.reason, event.by
                row.conn = None
                self._closed.append(row)

    def _register(self, conn: Connection) -> _Row:
        row = self._rows.get(conn)
        if row is None:
            config = conn.core.config
            style = "frames" if config.style is HeartbeatStyle.PROTOCOL else "app"
            path = _path(conn.path)
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
            stats = conn.stats
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

    def snapshot(self, since: int = 0) -> dict[str, Any]:
        """What a viewer sees now: the newest connections, and RTT samples after number
        ``since`` (at most the last ``history`` seconds; ``next`` is the number to pass next)."""
        now = self._clock()
        while self._closed and now - (self._closed[0].closed or now) > self.closed_ttl:
            self._closed.popleft()
        open_rows = list(self._rows.values())
        shown = open_rows[-self.max_rows :]
        room = self.max_rows - len(shown)
        closed_rows = list(self._closed)[-room:] if room > 0 else []
        horizon = now - self.history
        samples = [
            [round(t - now, 3), conn_id, round(rtt, 3)]
            for number, t, conn_id, rtt in self._samples
            if number > since and t >= horizon
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
            "next": self._sample_no,
        }

    # ------------------------------------------------------------ the feed

    def handler(self, app: Handler) -> Handler:
        """Wrap the application's handler: :data:`FEED_PATH` becomes the dashboard's feed."""

        async def handle(conn: Connection) -> None:
            if _path(conn.path) == FEED_PATH:
                await self.feed(conn)
            else:
                await app(conn)

        return handle

    async def feed(self, conn: Connection) -> None:
        """Stream snapshots to one dashboard page until it goes away.

        The page may send only heartbeats: ``{"type":"ping"}`` is answered
        with ``{"type":"pong"}`` (even when the server's core does not answer
        application pings); anything else is ignored.
        """
        row = self._register(conn)
        row.dashboard = True
        config = conn.core.config
        reader = asyncio.ensure_future(self._read(conn))
        try:
            await conn.send(
                json.dumps(
                    {
                        "type": "hello",
                        "self": row.id,
                        "update_interval": self.update_interval,
                        "history": self.history,
                        "server": {
                            "style": config.style.value,
                            "interval": config.interval,
                            "timeout": config.timeout,
                            "answers_app_pings": config.answer_app_pings,
                        },
                    },
                    separators=(",", ":"),
                )
            )
            since = 0
            while not reader.done():
                snap = self.snapshot(since)
                since = snap["next"]
                await conn.send(json.dumps(snap, separators=(",", ":")))
                await asyncio.wait({reader}, timeout=self.update_interval)
        except ConnectionClosedError:
            pass
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader

    async def _read(self, conn: Connection) -> None:
        async for message in conn:
            if isinstance(message, str) and JSON_CODEC.classify(message) is AppKind.PING:
                with contextlib.suppress(ConnectionClosedError):
                    await conn.send(JSON_CODEC.pong_text)

    # ------------------------------------------------------------ static files

    def http_handler(self, target: str) -> tuple[int, list[tuple[str, str]], bytes] | None:
        """The ``serve(http_handler=...)`` hook: the page, its files and the JS client;
        ``None`` (426 Upgrade Required) for anything else."""
        path = _path(target)
        body = self._files.get(path)
        if path == CLASSIC_CLIENT_PATH:
            if body is None:
                source = _read_static("heartbeat-client.js").decode("utf-8")
                body = self._files[path] = classic_script(source).encode("utf-8")
            return 200, [("Content-Type", _JS), *_COMMON_HEADERS], body
        found = _FILES.get(path)
        if found is None:
            return None
        name, content_type = found
        if body is None:
            body = self._files[path] = _read_static(name)
        headers = [("Content-Type", content_type), *_COMMON_HEADERS]
        if content_type == _HTML:
            headers += _PAGE_HEADERS
        return 200, headers, body
