"""heartbeat_asyncio: an asyncio WebSocket client and server with heartbeats, over the core.

``connect`` / ``serve`` / ``connect_forever`` give :class:`Connection` objects whose
heartbeats run by the core's rules, whether or not the application reads.
Logging goes to the ``heartbeat_asyncio`` logger: opens and closes (with the
reason) at info, heartbeat details at debug.
"""

from __future__ import annotations

from heartbeat_asyncio.client import connect
from heartbeat_asyncio.connection import Connection, EventCallback
from heartbeat_asyncio.delivery import MessageHandler
from heartbeat_asyncio.reconnect import (
    Connected,
    Disconnected,
    ReconnectEvent,
    Retrying,
    connect_forever,
)
from heartbeat_asyncio.runner import LoopRunner
from heartbeat_asyncio.server import (
    Handler,
    HttpHandler,
    ProcessRequest,
    SelectSubprotocol,
    Server,
    serve,
)
from heartbeat_core import __version__
from heartbeat_core.tcp import TcpKeepalive, apply_keepalive

__all__ = [
    "Connected",
    "Connection",
    "Disconnected",
    "EventCallback",
    "Handler",
    "HttpHandler",
    "LoopRunner",
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
