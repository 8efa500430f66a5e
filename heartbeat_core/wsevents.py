"""What a :class:`~heartbeat_core.HeartbeatConnection` tells its driver and application."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TypeAlias

from heartbeat_core.actions import Abort, CloseTransport, PeerDead, RttSample
from heartbeat_core.fastinit import fast_init

__all__ = [
    "Abort",
    "Accepted",
    "CloseTransport",
    "Closed",
    "Closing",
    "ConnectionEvent",
    "HandshakeFailed",
    "HttpRequest",
    "Message",
    "PeerDead",
    "PingAnswered",
    "Rejected",
    "Request",
    "RttSample",
]

Headers = Sequence[tuple[bytes, bytes]]


@dataclass(frozen=True, slots=True, kw_only=True)
class Request:
    """Server side: a client asks to upgrade. Answer with ``accept()`` or ``reject()``."""

    host: str
    target: str
    subprotocols: list[str] = field(default_factory=list)
    extra_headers: Headers = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class HttpRequest:
    """Server side: a plain HTTP request that is not a WebSocket upgrade.

    Answer it with ``HeartbeatConnection.respond()``; the transport closes after the response.
    """

    method: str
    target: str
    headers: Headers = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class Accepted:
    """Client side: the server accepted the upgrade; the connection is open."""

    subprotocol: str | None = None
    extra_headers: Headers = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class Rejected:
    """Client side: the server answered the upgrade with HTTP ``status``."""

    status: int
    headers: Headers = ()
    body: bytes = b""


@dataclass(frozen=True, slots=True, kw_only=True)
class HandshakeFailed:
    """Client side: the server's answer is no handshake we can take (too large, not
    HTTP, or a 101 that does not answer our request); ``reason`` says what was
    wrong. The transport is then released."""

    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Message:
    """A complete text (``str``) or binary (``bytes``) message from the peer."""

    data: str | bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class PingAnswered:
    """A ping sent with ``HeartbeatConnection.ping()`` was answered after ``rtt`` seconds."""

    payload: bytes
    rtt: float


@dataclass(frozen=True, slots=True, kw_only=True)
class Closing:
    """The closing handshake began; ``by_peer`` tells who started it."""

    code: int
    reason: str
    by_peer: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class Closed:
    """The transport was released. ``code`` is the close code we sent or
    received (1006 when there was none); ``by`` is ``"local"`` or ``"remote"``."""

    code: int
    reason: str
    by: str


ConnectionEvent: TypeAlias = (
    Request
    | HttpRequest
    | Accepted
    | Rejected
    | HandshakeFailed
    | Message
    | PingAnswered
    | Closing
    | Closed
    | RttSample
    | PeerDead
    | CloseTransport
    | Abort
)


#: ``Request(...)``, ``Accepted(...)`` and ``Message(...)``, their fields positionally in
#: declaration order (the fast opening handshake makes one of the first two per
#: connection; a busy connection, a message per read).
request: Callable[[str, str, list[str], Headers], Request] = fast_init(
    Request, "host", "target", "subprotocols", "extra_headers"
)
accepted: Callable[[str | None, Headers], Accepted] = fast_init(
    Accepted, "subprotocol", "extra_headers"
)
message: Callable[[str | bytes], Message] = fast_init(Message, "data")
