"""The asyncio WebSocket client: ``await connect(uri)`` or ``async with connect(uri)``."""

from __future__ import annotations

import asyncio
import ssl as ssl_module
from collections.abc import Callable, Coroutine, Generator, Sequence
from types import TracebackType
from typing import Any

from heartbeat_asyncio.connection import Connection, EventCallback
from heartbeat_core import JSON_CODEC, AppCodec, HeartbeatConfig, Role
from heartbeat_core.config import DEFAULT_MAX_QUEUE, DEFAULT_MAX_QUEUE_BYTES
from heartbeat_core.errors import ConfigError
from heartbeat_core.options import DEFAULT_MAX_SIZE, DEFAULT_OPEN_TIMEOUT, ConnectionOptions
from heartbeat_core.tcp import TcpKeepalive
from heartbeat_core.uri import WebSocketURI, parse_uri

__all__ = ["connect"]


async def _open(
    uri: WebSocketURI,
    options: ConnectionOptions,
    *,
    ssl: ssl_module.SSLContext | None,
    subprotocols: Sequence[str],
    extra_headers: Sequence[tuple[str, str]],
    on_event: EventCallback | None,
) -> Connection:
    loop = asyncio.get_running_loop()
    if uri.secure and ssl is None:
        ssl = ssl_module.create_default_context()
    conn = Connection(Role.CLIENT, options, on_event=on_event)
    conn.path = uri.target
    try:
        await asyncio.wait_for(
            loop.create_connection(
                lambda: conn, uri.host, uri.port, ssl=ssl, server_hostname=uri.host if ssl else None
            ),
            options.open_timeout,
        )
    except asyncio.TimeoutError:
        raise TimeoutError(
            f"could not connect to {uri.host}:{uri.port} within open_timeout="
            f"{options.open_timeout} s: check that the server is up, or raise open_timeout"
        ) from None
    try:
        conn.core.initiate(
            uri.host_header, uri.target, subprotocols=subprotocols, extra_headers=extra_headers
        )
        conn._flush()
        assert conn._handshake is not None
        await conn._handshake  # bounded by the core's open_timeout (rule open-timeout)
    except BaseException:
        conn.abort()
        raise
    return conn


class _Connect:
    """What :func:`connect` returns: await it, or use it as ``async with``."""

    __slots__ = ("_conn", "_open")

    def __init__(self, opener: Callable[[], Coroutine[Any, Any, Connection]]) -> None:
        self._open = opener
        self._conn: Connection | None = None

    def __await__(self) -> Generator[Any, None, Connection]:
        return self._open().__await__()

    async def __aenter__(self) -> Connection:
        self._conn = await self._open()
        return self._conn

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._conn is not None:
            await self._conn.close()


def connect(
    uri: str,
    *,
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
) -> _Connect:
    """Open a WebSocket client connection to a ``ws://`` or ``wss://`` URI.

    Use as ``conn = await connect(uri)`` or ``async with connect(uri) as conn:``
    (the connection is closed with 1000 on leaving the block). Heartbeats follow
    ``config`` (the core's defaults when ``None``). ``ssl`` is the context for
    ``wss://`` (the default context when ``None``). ``on_event`` sees every event
    the core emits for this connection. ``open_timeout`` bounds the TCP (and TLS)
    connection, and then the opening handshake.

    ``max_queue`` (default 32) and ``max_queue_bytes`` (default 16 MiB) bound the
    messages that arrived but were not yet taken with ``recv()``: once that many
    messages, or more than that many bytes, wait unread, the connection stops
    reading the socket (TCP then slows the server down) until the application has
    taken half of them. Meanwhile heartbeats still go out but nobody is declared
    dead (the core's ``paused-reading`` rule).

    The URI and every option are checked here, before any connection is
    attempted: a bad one raises :class:`~heartbeat_core.errors.ConfigError`.
    Awaiting raises :class:`~heartbeat_core.errors.HandshakeError` (with
    ``status``) when the server does not answer 101, ``OSError`` subclasses when
    the connection is refused or the name does not resolve, ``ssl.SSLError`` for
    TLS failures, ``TimeoutError`` when ``open_timeout`` runs out.
    """
    where = parse_uri(uri)
    if ssl is not None and not where.secure:
        raise ConfigError(f"an SSLContext was given for a plain ws:// URI ({uri!r}): use wss://")
    options = ConnectionOptions(
        config=config,
        codec=codec,
        max_size=max_size,
        max_queue=max_queue,
        max_queue_bytes=max_queue_bytes,
        open_timeout=open_timeout,
        keepalive=keepalive,
    )
    options.new_core(Role.CLIENT)  # the core's own checks, before connecting

    def opener() -> Coroutine[Any, Any, Connection]:
        return _open(
            where,
            options,
            ssl=ssl,
            subprotocols=subprotocols,
            extra_headers=extra_headers,
            on_event=on_event,
        )

    return _Connect(opener)
