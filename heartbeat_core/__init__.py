"""heartbeat-core: WebSocket heartbeats as a pure, sans-IO state machine.

:class:`HeartbeatState` takes events (each with the caller's ``now``) and
returns actions; :class:`HeartbeatConnection` pairs it with wsproto: bytes in,
bytes and events out. Neither reads a clock, sleeps, or touches a socket.
"""

from __future__ import annotations

from heartbeat_core.actions import (
    Abort,
    Action,
    CloseTransport,
    PeerDead,
    RttSample,
    SendAppPing,
    SendAppPong,
    SendClose,
    SendPing,
    SendPong,
)
from heartbeat_core.backoff import (
    Backoff,
    Connected,
    Disconnected,
    ReconnectCallback,
    ReconnectEvent,
    Retrying,
)
from heartbeat_core.codec import JSON_CODEC, AppCodec, AppKind
from heartbeat_core.config import (
    PROXY_IDLE_LIMITS,
    BackoffPolicy,
    HeartbeatConfig,
    HeartbeatStyle,
    Liveness,
)
from heartbeat_core.connection import HeartbeatConnection, Role
from heartbeat_core.driver import DriverBase, EventCallback
from heartbeat_core.errors import (
    ConfigError,
    ConfigWarning,
    ConnectionClosedError,
    HandshakeError,
    HeartbeatError,
    LocalProtocolError,
)
from heartbeat_core.events import (
    AppPingReceived,
    AppPongReceived,
    BytesReceived,
    CloseReceived,
    CloseRequested,
    ConnectionClosed,
    ConnectionOpened,
    Event,
    FailRequested,
    HandshakeStarted,
    PingReceived,
    PongReceived,
    ReadingPaused,
    ReadingResumed,
    TimerFired,
)
from heartbeat_core.options import ConnectionOptions
from heartbeat_core.policy import HttpHandler, SelectSubprotocol, ServerPolicy
from heartbeat_core.queue import ReceiveQueue
from heartbeat_core.randomness import RandomSource, default_random
from heartbeat_core.runner import ActionRunner
from heartbeat_core.state import (
    HEARTBEAT_TIMEOUT_REASON,
    TRANSITIONS,
    HeartbeatPhase,
    HeartbeatState,
    Transition,
)
from heartbeat_core.stats import HeartbeatStats
from heartbeat_core.tcp import SupportsSetsockopt, TcpKeepalive, apply_keepalive
from heartbeat_core.timers import TimerItem, TimerWheel
from heartbeat_core.uri import WebSocketURI, parse_uri
from heartbeat_core.wsevents import (
    Accepted,
    Closed,
    Closing,
    ConnectionEvent,
    HandshakeFailed,
    HttpRequest,
    Message,
    PingAnswered,
    Rejected,
    Request,
)

# The package's version, read by the build (pyproject.toml: dynamic); the adapters re-export it.
__version__ = "0.1.0"

__all__ = [
    "HEARTBEAT_TIMEOUT_REASON",
    "JSON_CODEC",
    "PROXY_IDLE_LIMITS",
    "TRANSITIONS",
    "Abort",
    "Accepted",
    "Action",
    "ActionRunner",
    "AppCodec",
    "AppKind",
    "AppPingReceived",
    "AppPongReceived",
    "Backoff",
    "BackoffPolicy",
    "BytesReceived",
    "CloseReceived",
    "CloseRequested",
    "CloseTransport",
    "Closed",
    "Closing",
    "ConfigError",
    "ConfigWarning",
    "Connected",
    "ConnectionClosed",
    "ConnectionClosedError",
    "ConnectionEvent",
    "ConnectionOpened",
    "ConnectionOptions",
    "Disconnected",
    "DriverBase",
    "Event",
    "EventCallback",
    "FailRequested",
    "HandshakeError",
    "HandshakeFailed",
    "HandshakeStarted",
    "HeartbeatConfig",
    "HeartbeatConnection",
    "HeartbeatError",
    "HeartbeatPhase",
    "HeartbeatState",
    "HeartbeatStats",
    "HeartbeatStyle",
    "HttpHandler",
    "HttpRequest",
    "Liveness",
    "LocalProtocolError",
    "Message",
    "PeerDead",
    "PingAnswered",
    "PingReceived",
    "PongReceived",
    "ReadingPaused",
    "ReadingResumed",
    "RandomSource",
    "ReceiveQueue",
    "ReconnectCallback",
    "ReconnectEvent",
    "Rejected",
    "Request",
    "Retrying",
    "Role",
    "RttSample",
    "SelectSubprotocol",
    "SendAppPing",
    "SendAppPong",
    "SendClose",
    "SendPing",
    "SendPong",
    "ServerPolicy",
    "SupportsSetsockopt",
    "TcpKeepalive",
    "TimerFired",
    "TimerItem",
    "TimerWheel",
    "Transition",
    "WebSocketURI",
    "apply_keepalive",
    "default_random",
    "parse_uri",
    "__version__",
]
