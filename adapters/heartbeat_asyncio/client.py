"""The asyncio WebSocket client: ``await connect(uri)`` or ``async with connect(uri)``."""

from __future__ import annotations

import asyncio
import ssl as ssl_module
from collections.abc import Generator, Sequence
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

from heartbeat_asyncio.connection import (
    Connection,
    EventCallback,
)
from heartbeat_core import JSON_CODEC, AppCodec, HeartbeatConfig, Role
from heartbeat_core.config import DEFAULT_MAX_QUEUE, DEFAULT_MAX_QUEUE_BYTES, check_queue_bounds
from heartbeat_core.errors import ConfigError
from heartbeat_core.tcp import TcpKeepalive

__all__ = ["connect"]


def _parse(uri: str) -> tuple[bool, str, int, str, str]:
    """``(secure, host, port, target, Host header)`` of a ws:// or wss:// URI."""
    parts = urlsplit(uri)
    if parts.scheme not in ("ws", "wss") or not parts.hostname:
        raise ConfigError(f"expected a ws:// or wss:// URI with a host, got {uri!r}")
    secure = parts.scheme == "wss"
    default = 443 if secure else 80
    port = parts.port or default
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    host = parts.hostname
    header = f"[{host}]" if ":" in host else host
    if port != default:
        header = f"{header}:{port}"
    return secure, host, port, target, header


async def _open(
    uri: str,
    *,
    config: HeartbeatConfig | None,
    codec: AppCodec,
    ssl: ssl_module.SSLContext | None,
    subprotocols: Sequence[str],
    extra_headers: Sequence[tuple[str, str]],
    max_size: int | None,
    max_queue: int,
    max_queue_bytes: int,
    open_timeout: float,
    keepalive: TcpKeepalive | None,
    on_event: EventCallback | None,
) -> Connection:
    secure, host, port, target, host_header = _parse(uri)
    if ssl is not None and not secure:
        raise ConfigError(f"an SSLContext was given for a plain ws:// URI ({uri!r}): use wss://")
    if secure and ssl is None:
        ssl = ssl_module.create_default_context()
    loop = asyncio.get_running_loop()
    conn = Connection(
        Role.CLIENT,
        config=config,
        codec=codec,
        max_size=max_size,
        max_queue=max_queue,
        max_queue_bytes=max_queue_bytes,
        on_event=on_event,
    )
    conn.path = target
    conn._keepalive = keepalive

    async def handshake() -> None:
        await loop.create_connection(
            lambda: conn, host, port, ssl=ssl, server_hostname=host if secure else None
        )
        conn._core.initiate(
            host_header, target, subprotocols=subprotocols, extra_headers=extra_headers
        )
        conn._flush()
        assert conn._handshake is not None
        await conn._handshake

    try:
        await asyncio.wait_for(handshake(), open_timeout)
    except asyncio.TimeoutError:
        conn.abort()
        raise TimeoutError(
            f"no WebSocket handshake with {uri} within open_timeout={open_timeout} s: "
            "check that the server is up, or raise open_timeout"
        ) from None
    except BaseException:
        conn.abort()
        raise
    return conn


class _Connect:
    """What :func:`connect` returns: await it, or use it as ``async with``."""

    __slots__ = ("_args", "_conn")

    def __init__(self, uri: str, kwargs: dict[str, Any]) -> None:
        self._args = (uri, kwargs)
        self._conn: Connection | None = None

    def __await__(self) -> Generator[Any, None, Connection]:
        return _open(self._args[0], **self._args[1]).__await__()

    async def __aenter__(self) -> Connection:
        self._conn = await _open(self._args[0], **self._args[1])
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
    max_size: int | None = 1 << 20,
    max_queue: int = DEFAULT_MAX_QUEUE,
    max_queue_bytes: int = DEFAULT_MAX_QUEUE_BYTES,
    open_timeout: float = 10.0,
    keepalive: TcpKeepalive | None = None,
    on_event: EventCallback | None = None,
) -> _Connect:
    """Open a WebSocket client connection to a ``ws://`` or ``wss://`` URI.

    Use as ``conn = await connect(uri)`` or ``async with connect(uri) as conn:``
    (the connection is closed with 1000 on leaving the block). Heartbeats follow
    ``config`` (the core's defaults when ``None``). ``ssl`` is the context for
    ``wss://`` (the default context when ``None``). ``on_event`` sees every event
    the core emits for this connection.

    ``max_queue`` (default 32) and ``max_queue_bytes`` (default 16 MiB) bound the
    messages that arrived but were not yet taken with ``recv()``: once that many
    messages, or more than that many bytes, wait unread, the connection stops
    reading the socket (TCP then slows the server down) until the application has
    taken half of them. Meanwhile heartbeats still go out but nobody is declared
    dead (the core's ``paused-reading`` rule). Both must be positive ints;
    anything else raises :class:`~heartbeat_core.errors.ConfigError` here, before
    any connection is attempted.

    Raises :class:`~heartbeat_core.errors.HandshakeError` (with ``status``) when
    the server does not answer 101, ``OSError`` subclasses when the connection is
    refused or the name does not resolve, ``ssl.SSLError`` for TLS failures,
    ``TimeoutError`` when the handshake takes longer than ``open_timeout``.
    """
    max_queue, max_queue_bytes = check_queue_bounds(max_queue, max_queue_bytes)
    return _Connect(
        uri,
        {
            "config": config,
            "codec": codec,
            "ssl": ssl,
            "subprotocols": subprotocols,
            "extra_headers": extra_headers,
            "max_size": max_size,
            "max_queue": max_queue,
            "max_queue_bytes": max_queue_bytes,
            "open_timeout": open_timeout,
            "keepalive": keepalive,
            "on_event": on_event,
        },
    )
