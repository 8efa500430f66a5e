"""The dashboard: a read-only picture of a server's connections, in the browser.

Wire a :class:`Dashboard` into :func:`heartbeat_asyncio.serve` with three hooks:

.. fragment: three lines from inside an async function, my_handler being yours;
   heartbeat_cli/serve.py wires the hooks the same way, and the tests run it

.. code-block:: python

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

What it knows is kept by a :class:`~heartbeat_cli.registry.ConnectionRegistry`
(:attr:`Dashboard.registry`), which uses no asyncio; this module serves it. The
cost while nobody watches is the registry's (one dictionary entry per connection,
one tuple per RTT sample); a snapshot is built per viewer every
``update_interval`` seconds and lists at most ``max_rows`` connections.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
from collections.abc import Callable
from importlib import resources
from typing import Any

from heartbeat_asyncio import Connection, Handler

from heartbeat_cli.registry import FEED_PATH, ConnectionRegistry, Watched
from heartbeat_core import JSON_CODEC, AppKind
from heartbeat_core.errors import ConfigError, ConnectionClosedError
from heartbeat_core.wsevents import ConnectionEvent

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

    ``update_interval``: seconds between two snapshots sent to a viewer. The other
    arguments make the registry (:attr:`registry`): ``clock`` is a monotonic clock in
    seconds (the dashboard only shows ages and relative times), ``history`` the
    seconds of RTT samples the chart shows, ``max_rows`` the most connections a
    snapshot lists (the newest); ``keep_closed`` closed connections stay listed, each
    for at most ``closed_ttl`` seconds.
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
        if not (isinstance(update_interval, (int, float)) and update_interval > 0):
            raise ConfigError(
                f"update_interval must be a number of seconds > 0, got {update_interval!r}"
            )
        self.update_interval: float = float(update_interval)
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

    # ------------------------------------------------------------ registry

    def on_event(self, conn: Watched, event: ConnectionEvent) -> None:
        """The ``serve(on_event=...)`` hook: follows every connection's life."""
        self.registry.on_event(conn, event)

    def snapshot(self, since: int = 0) -> dict[str, Any]:
        """What a viewer sees now (see :meth:`.ConnectionRegistry.snapshot`)."""
        return self.registry.snapshot(since)

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
            since = 0
            while not reader.done():
                snap = self.registry.snapshot(since)
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
