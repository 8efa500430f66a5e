"""``connect()``: a blocking WebSocket client with heartbeats.

The TCP (and TLS) connection is made in the calling thread, each step bounded by
``open_timeout``; then the socket goes at once to a reactor thread of the
connection's own, which sends the upgrade request and runs the heartbeat until
the connection closes. The core bounds the upgrade by ``open_timeout`` (rule
``open-timeout``); the calling thread waits until the core says the connection
opened, was refused, or is gone.
"""

from __future__ import annotations

import socket
import ssl as ssl_module
from collections.abc import Sequence

from heartbeat_core import JSON_CODEC, AppCodec, HeartbeatConfig, Role
from heartbeat_core.config import DEFAULT_MAX_QUEUE, DEFAULT_MAX_QUEUE_BYTES
from heartbeat_core.errors import ConfigError
from heartbeat_core.options import DEFAULT_MAX_SIZE, DEFAULT_OPEN_TIMEOUT, ConnectionOptions
from heartbeat_core.tcp import TcpKeepalive, apply_keepalive
from heartbeat_core.uri import WebSocketURI, parse_uri
from heartbeat_threading.connection import Connection, EventCallback
from heartbeat_threading.reactor import Reactor
from heartbeat_threading.transport import DEFAULT_WRITE_LIMIT, check_write_limit

__all__ = ["connect"]


def _open_socket(
    where: WebSocketURI, options: ConnectionOptions, ssl: ssl_module.SSLContext | None
) -> socket.socket:
    """A connected, non-blocking socket (TLS done for ``wss://``)."""
    try:
        sock = socket.create_connection((where.host, where.port), timeout=options.open_timeout)
    except TimeoutError:
        raise TimeoutError(
            f"could not connect to {where.host}:{where.port} within open_timeout="
            f"{options.open_timeout} s: check that the server is up, or raise open_timeout"
        ) from None
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if options.keepalive is not None:
            apply_keepalive(sock, options.keepalive)
        if where.secure:
            context = ssl if ssl is not None else ssl_module.create_default_context()
            # The TLS handshake, in this thread: each read or write bounded by open_timeout.
            sock = context.wrap_socket(sock, server_hostname=where.host)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


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
    write_limit: int = DEFAULT_WRITE_LIMIT,
) -> Connection:
    """Open a WebSocket connection to a ``ws://`` or ``wss://`` URI (use as
    ``with connect(uri) as conn:``, which closes it with 1000 on leaving).

    Heartbeats follow ``config`` (the core's defaults when ``None``). ``ssl`` is the
    context for ``wss://`` (the default context when ``None``). ``on_event`` sees
    every event the core emits for this connection (on its I/O thread).
    ``open_timeout`` bounds the TCP connection, each step of the TLS handshake, and
    then the opening handshake. ``send()`` blocks while more than ``write_limit``
    bytes wait to be written.

    Once ``max_queue`` messages (default 32), or more than ``max_queue_bytes``
    (default 16 MiB), wait unread, the connection stops reading until the
    application has taken half of both (meanwhile nobody is declared dead: the
    core's ``paused-reading`` rule).

    The URI and every option are checked first, before anything connects: a bad
    one raises :class:`~heartbeat_core.errors.ConfigError`. Then raises
    :class:`~heartbeat_core.errors.HandshakeError` (with ``status``) when the server
    does not answer 101 (without one when the connection closed during the
    handshake), ``OSError`` subclasses when the connection is refused or the name
    does not resolve, ``ssl.SSLError`` when TLS fails, and ``TimeoutError`` when
    ``open_timeout`` runs out.
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
    check_write_limit(write_limit)
    core = options.new_core(Role.CLIENT)
    # The request is queued now: bad subprotocols or headers raise before connecting.
    core.initiate(
        where.host_header, where.target, subprotocols=subprotocols, extra_headers=extra_headers
    )
    sock = _open_socket(where, options, ssl)
    try:
        reactor = Reactor(f"heartbeat-client-{where.host_header}")
    except BaseException:
        sock.close()
        raise
    conn = Connection(
        core, options, sock, reactor, on_event=on_event, write_limit=write_limit, owns_reactor=True
    )
    conn.path = where.target
    reactor.call_soon(conn._io_start)
    try:
        reactor.start()
    except RuntimeError as error:  # "can't start new thread": at the process's task limit
        sock.close()
        reactor.close()
        raise RuntimeError(
            f"could not start the connection's I/O thread ({error}): the process is at its "
            "thread limit; close some connections or raise the limit (ulimit -u, TasksMax)"
        ) from error
    try:
        conn._wait_open()
    except BaseException:
        conn._abort()
        raise
    return conn
