"""The dashboard: a read-only picture of a server's connections, in the browser.

Wire a :class:`Dashboard` into :func:`heartbeat_asyncio.serve` with four hooks:

.. fragment: lines from inside an async function, my_handler being yours;
   heartbeat_cli/serve.py wires the hooks the same way, and the tests run it

.. code-block:: python

    dashboard = Dashboard()
    server = await serve(
        dashboard.handler(my_handler),      # /_dashboard is the dashboard's feed
        on_event=dashboard.on_event,        # the registry of connections
        http_handler=dashboard.http_handler,  # GET / and the static files
        process_request=dashboard.process_request,  # Host, Origin, viewer limit
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

Who may see it (:meth:`Dashboard.process_request`): the page and the feed answer
only requests whose ``Host`` is an IP address, ``localhost`` or a name in
``allowed_hosts`` (so that a DNS name rebound to this address by a web page gets
403), and the feed answers only its own page (same origin) or an origin in
``allowed_origins`` (other web pages get 403; clients that send no ``Origin``,
which browsers always do, are let in). At most ``max_viewers`` pages watch at
once (then 503). Snapshots are built and encoded once per ``update_interval``
and the same text goes to every viewer; a viewer still busy with the previous one
skips it.

What it knows is kept by a :class:`~heartbeat_cli.registry.ConnectionRegistry`
(:attr:`Dashboard.registry`), which uses no asyncio; this module serves it. The
cost while nobody watches is the registry's (one dictionary entry per connection,
one tuple per RTT sample); while anyone does, one snapshot every
``update_interval`` seconds, of at most ``max_rows`` connections.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
from collections.abc import Callable, Iterable
from importlib import resources
from typing import Any

from heartbeat_asyncio import Connection, Handler

from heartbeat_cli.access import Access, header, refused
from heartbeat_cli.registry import FEED_PATH, ConnectionRegistry, Watched
from heartbeat_core import JSON_CODEC, AppKind
from heartbeat_core.errors import ConfigError, ConnectionClosedError
from heartbeat_core.policy import HttpAnswer
from heartbeat_core.wsevents import ConnectionEvent, HttpRequest, Request

__all__ = [
    "CLASSIC_CLIENT_PATH",
    "CLIENT_PATH",
    "FEED_PATH",
    "Dashboard",
    "classic_script",
]

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


def _path(target: str) -> str:
    return target.split("?", 1)[0]


class Dashboard:
    """The dashboard page, its files and its feed, over a
    :class:`~heartbeat_cli.registry.ConnectionRegistry`.

    ``update_interval``: seconds between two snapshots sent to the viewers.
    ``allowed_hosts``: DNS names the page and the feed answer to, besides IP
    addresses and ``localhost``; ``allowed_origins``: web origins (e.g.
    ``"https://ops.example.org"``) whose pages may read the feed, besides the page
    itself; ``max_viewers``: the most pages watching at once. The other arguments
    make the registry (:attr:`registry`): ``clock`` is a monotonic clock in seconds
    (the dashboard only shows ages and relative times), ``history`` the seconds of
    RTT samples the chart shows, ``max_rows`` the most connections a snapshot lists
    (the newest); ``keep_closed`` closed connections stay listed, each for at most
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
        allowed_hosts: Iterable[str] = (),
        allowed_origins: Iterable[str] = (),
        max_viewers: int = 10,
    ) -> None:
        if not (isinstance(update_interval, (int, float)) and update_interval > 0):
            raise ConfigError(
                f"update_interval must be a number of seconds > 0, got {update_interval!r}"
            )
        if isinstance(max_viewers, bool) or not (isinstance(max_viewers, int) and max_viewers >= 1):
            raise ConfigError(f"max_viewers must be an int >= 1, got {max_viewers!r}")
        self.update_interval: float = float(update_interval)
        self.max_viewers: int = max_viewers
        #: Who may see the page and the feed (Host and Origin checks).
        self.access: Access = Access(allowed_hosts=allowed_hosts, allowed_origins=allowed_origins)
        # The pages watching, each with its send in progress (None: none).
        self._viewers: dict[Connection, asyncio.Future[None] | None] = {}
        self._since = 0  # the last sample number broadcast
        self._pusher: asyncio.Task[None] | None = None
        #: What the page shows: the connections, their RTTs and how they ended.
        self.registry: ConnectionRegistry = ConnectionRegistry(
            clock=clock,
            history=history,
            max_rows=max_rows,
            keep_closed=keep_closed,
            closed_ttl=closed_ttl,
            max_samples=max_samples,
        )
        self._files: dict[str, bytes] = {}
        #: What the viewers get instead of the registry's snapshot ``snap`` (``first``: a
        #: viewer's first one): ``heartbeat serve --workers N`` adds the other workers'.
        self.merge: Callable[[dict[str, Any], bool], dict[str, Any]] | None = None

    @property
    def watching(self) -> bool:
        """True while a page watches (its feed is open)."""
        return bool(self._viewers)

    def _view(self, snap: dict[str, Any], first: bool) -> dict[str, Any]:
        return snap if self.merge is None else self.merge(snap, first)

    # ------------------------------------------------------------ registry

    def on_event(self, conn: Watched, event: ConnectionEvent) -> None:
        """The ``serve(on_event=...)`` hook: follows every connection's life."""
        self.registry.on_event(conn, event)

    def snapshot(self, since: int = 0) -> dict[str, Any]:
        """What a viewer sees now (see :meth:`.ConnectionRegistry.snapshot`)."""
        return self.registry.snapshot(since)

    # ------------------------------------------------------------ who may see it

    def process_request(self, request: Request | HttpRequest) -> HttpAnswer | None:
        """The ``serve(process_request=...)`` hook: refuses requests for the dashboard's
        paths from a foreign ``Host`` (403), the feed from a foreign ``Origin`` (403) or
        past ``max_viewers`` (503); ``None`` for everything else."""
        path = _path(request.target)
        feed = isinstance(request, Request) and path == FEED_PATH
        if not feed and path not in _FILES and path != CLASSIC_CLIENT_PATH:
            return None  # not the dashboard's
        if isinstance(request, Request):
            host: str | None = request.host
            origin = header(request.extra_headers, b"origin")
        else:
            host = header(request.headers, b"host")
            origin = None
        if not self.access.host_allowed(host):
            return refused(
                403,
                f"Forbidden: the dashboard answers to IP addresses and localhost, not to "
                f"{host!r} (heartbeat serve --dashboard-host NAME allows a name)",
            )
        if not feed:
            return None
        if origin is not None and not self.access.origin_allowed(origin, host or ""):
            return refused(
                403,
                f"Forbidden: the dashboard's feed is for its own page, not for {origin!r} "
                "(heartbeat serve --dashboard-origin ORIGIN allows another)",
            )
        if len(self._viewers) >= self.max_viewers:
            status, headers, body = refused(
                503, f"Too many dashboard viewers (at most {self.max_viewers})"
            )
            return status, [*headers, ("Retry-After", "5")], body
        return None

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

        The page gets a hello and a snapshot of its own, then the snapshots every
        viewer gets. It may send only heartbeats: ``{"type":"ping"}`` is
        answered with ``{"type":"pong"}`` (even when the server's core does not answer
        application pings); anything else is ignored. A page from a foreign origin
        (when :meth:`process_request` was not wired) is closed with 1008, one past
        ``max_viewers`` with 1013.
        """
        origin = header(conn.headers, b"origin")
        here = conn._transport.get_extra_info("sockname") if conn._transport else None
        if origin is not None and not self.access.origin_is_here(origin, here):
            await conn.close(1008, "origin not allowed")
            return
        if len(self._viewers) >= self.max_viewers:
            await conn.close(1013, "too many dashboard viewers")
            return
        starting: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._viewers[conn] = starting  # (counted now; pushes wait for its first snapshot)
        own_id = self.registry.register(conn, conn.path, dashboard=True)
        config = conn.core.config
        reader = asyncio.ensure_future(self._read(conn))
        try:
            await conn.send(
                json.dumps(
                    {
                        "type": "hello",
                        "self": own_id,
                        "update_interval": self.update_interval,
                        "history": self.registry.history,
                        "server": {
                            "style": config.style.value,
                            "interval": config.interval,
                            "timeout": config.timeout,
                            "answers_app_pings": config.answer_app_pings,
                            "probe_interval": config.probe_interval,
                        },
                    },
                    separators=(",", ":"),
                )
            )
            # Its own first snapshot: the samples until the last push (the next has the rest).
            first = self._view(self.registry.snapshot(0, until=self._since), True)
            await conn.send(json.dumps(first, separators=(",", ":")))
            self._viewers[conn] = None
            starting.cancel()
            if self._pusher is None or self._pusher.done():
                self._pusher = asyncio.ensure_future(self._push())
            await reader
        except ConnectionClosedError:
            pass
        finally:
            self._viewers.pop(conn, None)
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader

    async def _push(self) -> None:
        """Every ``update_interval`` while anyone watches: one snapshot, encoded once,
        sent to every viewer not still busy with the previous one."""
        loop = asyncio.get_running_loop()
        while self._viewers:
            await asyncio.sleep(self.update_interval)
            snap = self.registry.snapshot(self._since)
            self._since = snap["next"]
            snap = self._view(snap, False)
            text = json.dumps(snap, separators=(",", ":"))
            for conn, sending in list(self._viewers.items()):
                if sending is None or sending.done():
                    self._viewers[conn] = loop.create_task(self._send(conn, text))

    @staticmethod
    async def _send(conn: Connection, text: str) -> None:
        with contextlib.suppress(ConnectionClosedError):
            await conn.send(text)

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
