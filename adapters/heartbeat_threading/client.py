"""``connect()``: a blocking WebSocket client with heartbeats.

The TCP, TLS and WebSocket handshakes run in the calling thread (bounded by
``open_timeout``); then a reactor thread of the connection's own takes over the
socket and runs the heartbeat until the connection closes.
"""

from __future__ import annotations

import logging
import random
import socket
import ssl as ssl_module
import time
import urllib.parse
from collections.abc import Sequence

from heartbeat_core import HeartbeatConfig, HeartbeatConnection, Role
from heartbeat_core.codec import JSON_CODEC, AppCodec
from heartbeat_core.config import check_queue_bounds
from heartbeat_core.errors import ConfigError, HandshakeError
from heartbeat_core.tcp import TcpKeepalive
from heartbeat_core.wsevents import Accepted, CloseTransport, ConnectionEvent, Rejected
from heartbeat_threading.connection import (
    DEFAULT_MAX_QUEUE,
    DEFAULT_MAX_QUEUE_BYTES,
    Connection,
    EventCallback,
)
from heartbeat_threading.keepalive import apply_keepalive
from heartbeat_threading.reactor import Reactor

__all__ = ["connect", "parse_uri"]

log = logging.getLogger("heartbeat_threading")


def parse_uri(uri: str) -> tuple[bool, str, int, str, str]:
    """``(secure, host, port, host header, target)`` of a ``ws://`` or ``wss://`` URI."""
    parts = urllib.parse.urlsplit(uri)
    if parts.scheme not in ("ws", "wss") or not parts.hostname:
        raise ConfigError(f"not a WebSocket URI: {uri!r}; use ws://host[:port]/path or wss://...")
    secure = parts.scheme == "wss"
    default = 443 if secure else 80
    try:
        port = parts.port or default
    except ValueError as exc:
        raise ConfigError(f"bad port in {uri!r}: {exc}") from None
    host = parts.hostname
    header = f"[{host}]" if ":" in host else host
    if port != default:
        header += f":{port}"
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return secure, host, port, header, target


def connect(
    uri: str,
    *,
    config: HeartbeatConfig | None = None,
    codec: AppCodec = JSON_CODEC,
    ssl: ssl_module.SSLContext | None = None,
    subprotocols: Sequence[str] = (),
    extra_headers: Sequence[tuple[str, str]] = (),
    max_size: int | None = 1 << 20,
    open_timeout: float = 10.0,
    keepalive: TcpKeepalive | None = None,
    on_event: EventCallback | None = None,
    max_queue: int = DEFAULT_MAX_QUEUE,
    max_queue_bytes: int = DEFAULT_MAX_QUEUE_BYTES,
    write_limit: int = 64 * 1024,
) -> Connection:
    """Open a WebSocket connection to ``uri`` (use as ``with connect(uri) as conn:``).

    Once ``max_queue`` messages (default 32), or more than ``max_queue_bytes``
    (default 16 MiB), wait unread, the connection stops reading until the
    application has taken half of both. Both must be positive ints, else
    :class:`~heartbeat_core.errors.ConfigError` is raised before anything connects.

    Raises :class:`HandshakeError` (``status``) when the server does not answer 101,
    ``OSError`` subclasses (``TimeoutError`` after ``open_timeout``, refused, DNS),
    and ``ssl.SSLError`` when TLS fails.
    """
    max_queue, max_queue_bytes = check_queue_bounds(max_queue, max_queue_bytes)
    secure, host, port, host_header, target = parse_uri(uri)
    if ssl is not None and not secure:
        raise ConfigError(f"ssl= was given but {uri!r} is not a wss:// URI")
    deadline = time.monotonic() + open_timeout
    sock = socket.create_connection((host, port), timeout=open_timeout)
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if keepalive is not None:
            apply_keepalive(sock, keepalive)
        if secure:
            context = ssl if ssl is not None else ssl_module.create_default_context()
            sock = context.wrap_socket(sock, server_hostname=host)
        hc = HeartbeatConnection(
            Role.CLIENT,
            config,
            codec=codec,
            max_message_size=max_size,
            random=random.Random().random,
        )
        hc.initiate(host_header, target, subprotocols=subprotocols, extra_headers=extra_headers)
        sock.sendall(hc.data_to_send())
        events, now, accepted = _read_response(sock, hc, deadline, uri)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    reactor = Reactor(f"heartbeat-client-{host_header}")
    conn = Connection(
        hc,
        sock,
        reactor,
        on_event=on_event,
        max_queue=max_queue,
        max_queue_bytes=max_queue_bytes,
        write_limit=write_limit,
        opened=True,
        subprotocol=accepted.subprotocol,
        owns_reactor=True,
    )
    log.info("%s: open (client, %s)", conn._label, uri)
    reactor.call_soon(lambda: conn._io_start(events, now))
    reactor.start()
    return conn


def _read_response(
    sock: socket.socket, hc: HeartbeatConnection, deadline: float, uri: str
) -> tuple[list[ConnectionEvent], float, Accepted]:
    """Read until the server accepts; return the events that came after ``Accepted``."""
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(f"no WebSocket handshake response from {uri} in time")
        sock.settimeout(remaining)
        try:
            data = sock.recv(65536)
        except TimeoutError:
            raise TimeoutError(f"no WebSocket handshake response from {uri} in time") from None
        now = time.monotonic()
        events = hc.receive_data(data or None, now)
        for i, event in enumerate(events):
            if isinstance(event, Accepted):
                return events[i + 1 :], now, event
            if isinstance(event, Rejected):
                raise HandshakeError(
                    f"{uri} answered the upgrade with HTTP {event.status}, not 101", event.status
                )
        if not data or any(isinstance(e, CloseTransport) for e in events):
            raise HandshakeError(f"{uri} closed the connection during the opening handshake")
