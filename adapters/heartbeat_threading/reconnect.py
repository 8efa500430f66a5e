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
import random
import ssl
import time
from collections.abc import Callable, Generator
from typing import Any

from heartbeat_core import Backoff, BackoffPolicy, ConfigError, HeartbeatError
from heartbeat_core.backoff import Connected, Disconnected, ReconnectEvent, Retrying
from heartbeat_threading.client import connect
from heartbeat_threading.connection import Connection

__all__ = ["Connected", "Disconnected", "ReconnectEvent", "Retrying", "connect_forever"]

log = logging.getLogger("heartbeat_threading")




def connect_forever(
    uri: str,
    *,
    backoff: BackoffPolicy | None = None,
    on_state: Callable[[ReconnectEvent], None] | None = None,
    **connect_kwargs: Any,
) -> Generator[Connection, None, None]:
    """Yield a new :class:`Connection` after every (re)connect, forever.

    Failed attempts (``OSError``, ``ssl.SSLError``, :class:`HeartbeatError` such as
    a non-101 answer) are retried with backoff; a :class:`ConfigError` (a bad URI or
    argument: retrying cannot help) and other exceptions propagate.
    ``connect_kwargs`` go to :func:`connect` on every attempt, e.g. ``max_queue`` and
    ``max_queue_bytes``; a bad one raises its ``ConfigError`` from the first
    ``next()``, before any connection is tried.
    """
    delays = Backoff(backoff, random=random.Random().random)

    def report(event: ReconnectEvent) -> None:
        log.info("%s: %s", uri, event)
        if on_state is not None:
            try:
                on_state(event)
            except Exception:
                log.exception("on_state callback failed")

    while True:
        try:
            conn = connect(uri, **connect_kwargs)
        except ConfigError:
            raise
        except (OSError, ssl.SSLError, HeartbeatError) as exc:
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
