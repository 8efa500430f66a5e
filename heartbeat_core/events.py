"""Input events for :class:`~heartbeat_core.HeartbeatState`.

Every event carries ``now``: the driver's monotonic clock, in seconds, read once
when the event happened. The core never reads a clock of its own.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeAlias

from heartbeat_core.fastinit import fast_init

__all__ = [
    "AppPingReceived",
    "AppPongReceived",
    "BytesReceived",
    "CloseReceived",
    "CloseRequested",
    "ConnectionClosed",
    "FailRequested",
    "HandshakeStarted",
    "ConnectionOpened",
    "Event",
    "PingReceived",
    "PongReceived",
    "ReadingPaused",
    "ReadingResumed",
    "TimerFired",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class HandshakeStarted:
    """The transport connected and the opening handshake began: it must complete
    (``ConnectionOpened``) within the state's ``open_timeout``, else the transport
    is aborted (rule ``open-timeout``). Optional: without it, no handshake deadline."""

    now: float


@dataclass(frozen=True, slots=True, kw_only=True)
class ConnectionOpened:
    """The opening handshake completed; heartbeats start from here."""

    now: float


@dataclass(frozen=True, slots=True, kw_only=True)
class BytesReceived:
    """Some inbound bytes arrived (any traffic, even part of a frame)."""

    now: float


@dataclass(frozen=True, slots=True, kw_only=True)
class PingReceived:
    """The peer sent a protocol ping frame."""

    now: float
    payload: bytes = b""


@dataclass(frozen=True, slots=True, kw_only=True)
class PongReceived:
    """The peer sent a protocol pong frame.

    ``solicited`` marks a pong that answers a ping the driver sent itself, not
    a heartbeat (e.g. :meth:`~heartbeat_core.HeartbeatConnection.ping`): it is
    never a stray pong (rule ``peer-ping``). A pong that acknowledges a
    heartbeat is recognised by its payload and needs no mark.
    """

    now: float
    payload: bytes = b""
    solicited: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class AppPingReceived:
    """The peer sent an application-level ping message."""

    now: float


@dataclass(frozen=True, slots=True, kw_only=True)
class AppPongReceived:
    """The peer sent an application-level pong message."""

    now: float


@dataclass(frozen=True, slots=True, kw_only=True)
class TimerFired:
    """The driver's timer, armed at :attr:`HeartbeatState.deadline`, went off."""

    now: float


@dataclass(frozen=True, slots=True, kw_only=True)
class ReadingPaused:
    """The driver stopped reading the transport (e.g. its receive queue is full).

    Until :class:`ReadingResumed`, the peer cannot be heard, so an outstanding
    heartbeat has no deadline and nobody is declared dead (rule ``paused-reading``).
    """

    now: float


@dataclass(frozen=True, slots=True, kw_only=True)
class ReadingResumed:
    """The driver reads the transport again; an outstanding heartbeat gets a fresh
    ``timeout`` from ``now`` (rule ``paused-reading``)."""

    now: float


@dataclass(frozen=True, slots=True, kw_only=True)
class CloseRequested:
    """The local application asks to close the connection."""

    now: float
    code: int = 1000
    reason: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class FailRequested:
    """Fail the connection (rule ``fail``): send a close frame with ``code`` and
    ``reason`` if the connection is open, then release the transport without waiting
    for the peer's close frame, bounded by ``close_timeout``. Used for protocol
    errors, floods and refused or answered handshakes (the close frame is then
    omitted: there is no WebSocket yet)."""

    now: float
    code: int = 1002
    reason: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class CloseReceived:
    """The peer sent a close frame (or a protocol error made the parser give up:
    then ``code`` is that error's, e.g. 1002, and ``error`` is true)."""

    now: float
    code: int = 1005
    reason: str = ""
    error: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class ConnectionClosed:
    """The transport is gone (socket released). Nothing may follow this."""

    now: float


Event: TypeAlias = (
    HandshakeStarted
    | ConnectionOpened
    | BytesReceived
    | PingReceived
    | PongReceived
    | AppPingReceived
    | AppPongReceived
    | TimerFired
    | ReadingPaused
    | ReadingResumed
    | CloseRequested
    | FailRequested
    | CloseReceived
    | ConnectionClosed
)


#: ``HandshakeStarted(now=...)`` and ``ConnectionOpened(now=...)``, positionally (the core
#: makes both for every connection it opens).
handshake_started: Callable[[float], HandshakeStarted] = fast_init(HandshakeStarted, "now")
connection_opened: Callable[[float], ConnectionOpened] = fast_init(ConnectionOpened, "now")
