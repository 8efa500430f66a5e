"""``connect_forever()``: a reconnecting client, as a generator of connections.

::

    for conn in connect_forever("ws://127.0.0.1:8765/", on_state=print):
        for message in conn:
            ...

Each time the body of the loop finishes (usually because the connection
closed), the connection is closed if it is not already, ``Disconnected`` is
reported, and the next attempt waits the delay the core's :class:`Backoff`
gives (``Retrying``). Leaving the loop closes the current connection.
"""

from __future__ import annotations

import logging
import ssl as ssl_module
import time
from collections.abc import Generator, Sequence

from heartbeat_core import (
    JSON_CODEC,
    AppCodec,
    Backoff,
    BackoffPolicy,
    ConfigError,
    HeartbeatConfig,
    HeartbeatError,
)
from heartbeat_core.backoff import (
    Connected,
    Disconnected,
    ReconnectCallback,
    ReconnectEvent,
    Retrying,
)
from heartbeat_core.config import DEFAULT_MAX_QUEUE, DEFAULT_MAX_QUEUE_BYTES
from heartbeat_core.options import DEFAULT_MAX_SIZE, DEFAULT_OPEN_TIMEOUT
from heartbeat_core.tcp import TcpKeepalive
from heartbeat_core.uri import loggable
from heartbeat_threading.client import connect
from heartbeat_threading.connection import Connection, EventCallback
from heartbeat_threading.transport import DEFAULT_WRITE_LIMIT

__all__ = ["Connected", "Disconnected", "ReconnectEvent", "Retrying", "connect_forever"]

log: logging.Logger = logging.getLogger("heartbeat_threading")


def connect_forever(
    uri: str,
    *,
    backoff: BackoffPolicy | None = None,
    on_state: ReconnectCallback | None = None,
    config: HeartbeatConfig | None = None,
    codec: AppCodec = JSON_CODEC,
    ssl: ssl_module.SSLContext | None = None,
    subprotocols: Sequence[str] = (),
    extra_headers: Sequence[tuple[str, str]] = (),
    max_size: int | None = DEFAULT_MAX_SIZE,
    max_queue: int = DEFAULT_MAX_QUEUE,
    max_queue_bytes: int = DEFAULT_MAX_QUEUE_BYTES,
    open_timeout: float = DEFAULT_OPEN_TIMEOUT,
    keepalive: TcpKeepalive | None = None,
    on_event: EventCallback | None = None,
    write_limit: int = DEFAULT_WRITE_LIMIT,
) -> Generator[Connection, None, None]:
    """Yield a new :class:`Connection` after every (re)connect, forever.

    Failed attempts (``OSError``, ``ssl.SSLError``, :class:`HeartbeatError` such as
    a non-101 answer) are retried with backoff; a :class:`ConfigError` (a bad URI or
    argument: retrying cannot help) and other exceptions propagate.
    The other options are :func:`connect`'s, passed to every attempt; a bad one
    raises its ``ConfigError`` from the first ``next()``, before any connection is
    tried.
    """
    delays = Backoff(backoff)

    def report(event: ReconnectEvent) -> None:
        # (a Connected event carries the URI itself: log it as loggable() shows it)
        shown = Connected(uri=loggable(uri)) if isinstance(event, Connected) else event
        log.info("%s: %s", loggable(uri), shown)
        if on_state is not None:
            try:
                on_state(event)
            except Exception:
                log.exception("on_state callback failed")

    while True:
        try:
            conn = connect(
                uri,
                config=config,
                codec=codec,
                ssl=ssl,
                subprotocols=subprotocols,
                extra_headers=extra_headers,
                max_size=max_size,
                max_queue=max_queue,
                max_queue_bytes=max_queue_bytes,
                open_timeout=open_timeout,
                keepalive=keepalive,
                on_event=on_event,
                write_limit=write_limit,
            )
        except ConfigError:
            raise
        except (OSError, ssl_module.SSLError, HeartbeatError) as exc:
            report(Disconnected(code=None, reason=str(exc), error=exc))
        else:
            delays.connected(time.monotonic())
            report(Connected(uri=uri))
            try:
                yield conn
            finally:
                conn.close()  # no-op when it is already closed; runs on break too
            code = 1006 if conn.close_code is None else conn.close_code
            report(Disconnected(code=code, reason=conn.close_reason or ""))
        delay = delays.next_delay(time.monotonic())
        report(Retrying(delay=delay, attempt=delays.attempt))
        time.sleep(delay)
