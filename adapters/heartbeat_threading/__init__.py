"""heartbeat_threading: blocking WebSocket clients and servers with heartbeats, for threads.

Thin drivers around :class:`heartbeat_core.HeartbeatConnection`: a reactor thread
per server (and per client connection) owns the sockets and every heartbeat;
application code calls blocking methods from its own threads. Every decision
(heartbeats, handshake answers, timeouts, backpressure) is the core's.
Logging goes to the ``heartbeat_threading`` logger: opens and closes (with the
reason) at info, heartbeat details at debug.
"""

from __future__ import annotations

from heartbeat_core import __version__
from heartbeat_core.tcp import TcpKeepalive, apply_keepalive
from heartbeat_threading.client import connect
from heartbeat_threading.connection import Connection, EventCallback
from heartbeat_threading.dispatch import MessageHandler
from heartbeat_threading.reconnect import (
    Connected,
    Disconnected,
    ReconnectEvent,
    Retrying,
    connect_forever,
)
from heartbeat_threading.server import (
    Handler,
    HttpHandler,
    ProcessRequest,
    SelectSubprotocol,
    Server,
    serve,
)

__all__ = [
    "Connected",
    "Connection",
    "Disconnected",
    "EventCallback",
    "Handler",
    "HttpHandler",
    "MessageHandler",
    "ProcessRequest",
    "ReconnectEvent",
    "Retrying",
    "SelectSubprotocol",
    "Server",
    "TcpKeepalive",
    "apply_keepalive",
    "connect",
    "connect_forever",
    "serve",
    "__version__",
]
