"""The reconnecting client: ``async for conn in connect_forever(uri): ...``."""

from __future__ import annotations

import asyncio
import logging
import ssl as ssl_module
from collections.abc import AsyncGenerator, Sequence

from heartbeat_asyncio.client import connect
from heartbeat_asyncio.connection import Connection, EventCallback
from heartbeat_core import JSON_CODEC, AppCodec, Backoff, BackoffPolicy, HeartbeatConfig
from heartbeat_core.backoff import (
    Connected,
    Disconnected,
    ReconnectCallback,
    ReconnectEvent,
    Retrying,
)
from heartbeat_core.config import DEFAULT_MAX_QUEUE, DEFAULT_MAX_QUEUE_BYTES
from heartbeat_core.errors import ConfigError, HeartbeatError
from heartbeat_core.options import DEFAULT_MAX_SIZE, DEFAULT_OPEN_TIMEOUT
from heartbeat_core.tcp import TcpKeepalive
from heartbeat_core.uri import loggable

__all__ = ["Connected", "Disconnected", "ReconnectEvent", "Retrying", "connect_forever"]

logger: logging.Logger = logging.getLogger("heartbeat_asyncio")


async def connect_forever(
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
) -> AsyncGenerator[Connection, None]:
    """Yield a new open :class:`Connection` after every (re)connect, forever.

    After each connection closes (the heartbeat declared the server dead, the
    server closed or restarted, the network failed) or an attempt fails, wait
    the delay of the core's :class:`~heartbeat_core.Backoff` and try again.
    The next connection is made only after the previous one has closed; leave
    the loop (``break``) to stop, and the current connection is closed.
    ``on_state`` hears :class:`Connected`, :class:`Disconnected` and
    :class:`Retrying`. The other options are :func:`connect`'s, passed to every
    attempt; a bad one raises its ``ConfigError`` from the first attempt.

    It is an async generator: ``async with contextlib.aclosing(connect_forever(uri))
    as conns:`` closes it (and the current connection) on leaving the block.

    Configuration mistakes (:class:`~heartbeat_core.errors.ConfigError`) are
    raised, not retried.
    """
    loop = asyncio.get_running_loop()
    delays = Backoff(backoff)

    def tell(event: ReconnectEvent) -> None:
        if on_state is not None:
            try:
                on_state(event)
            except Exception:
                logger.exception("on_state callback failed on %r", event)

    while True:
        conn: Connection | None = None
        try:
            conn = await connect(
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
            )
        except ConfigError:
            raise
        except (OSError, HeartbeatError, asyncio.TimeoutError) as exc:
            logger.info("connecting to %s failed: %s", loggable(uri), exc)
            tell(Disconnected(code=None, reason=str(exc), error=exc))
        if conn is not None:
            delays.connected(loop.time())
            tell(Connected(uri=uri))
            try:
                yield conn
                await conn.wait_closed()
            finally:
                if not conn._ended:
                    await conn.close()
            tell(Disconnected(code=conn.close_code, reason=conn.close_reason or ""))
        delay = delays.next_delay(loop.time())
        logger.info(
            "reconnecting to %s in %.3f s (attempt %d)", loggable(uri), delay, delays.attempt
        )
        tell(Retrying(delay=delay, attempt=delays.attempt))
        await asyncio.sleep(delay)
