"""Actions the core asks its driver to carry out, in the order given."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeAlias

from heartbeat_core.fastinit import fast_init

__all__ = [
    "Abort",
    "Action",
    "CloseTransport",
    "PeerDead",
    "RttSample",
    "SendAppPing",
    "SendAppPong",
    "SendClose",
    "SendPing",
    "SendPong",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class SendPing:
    """Send a protocol ping frame with this payload (heartbeat number ``seq``)."""

    payload: bytes
    seq: int


@dataclass(frozen=True, slots=True, kw_only=True)
class SendAppPing:
    """Send the application-level ping message (heartbeat number ``seq``)."""

    seq: int


@dataclass(frozen=True, slots=True, kw_only=True)
class SendPong:
    """Answer the peer's ping with a pong frame carrying this payload."""

    payload: bytes


@dataclass(frozen=True, slots=True)
class SendAppPong:
    """Answer the peer's application-level ping with the pong message."""


@dataclass(frozen=True, slots=True, kw_only=True)
class SendClose:
    """Send a close frame with this code and reason."""

    code: int
    reason: str


@dataclass(frozen=True, slots=True)
class CloseTransport:
    """Close the transport once what was written has been flushed (no more reads needed)."""


@dataclass(frozen=True, slots=True)
class Abort:
    """Drop the transport now, discarding unsent data."""


@dataclass(frozen=True, slots=True, kw_only=True)
class RttSample:
    """Heartbeat ``seq`` was answered after ``rtt`` seconds (informational)."""

    seq: int
    rtt: float


@dataclass(frozen=True, slots=True, kw_only=True)
class PeerDead:
    """Heartbeat ``seq`` went unanswered for ``waited`` seconds; a close follows."""

    seq: int
    waited: float


Action: TypeAlias = (
    SendPing
    | SendAppPing
    | SendPong
    | SendAppPong
    | SendClose
    | CloseTransport
    | Abort
    | RttSample
    | PeerDead
)


#: ``SendPing(payload=..., seq=...)`` and ``RttSample(seq=..., rtt=...)``, positionally
#: (the core makes both on every heartbeat).
send_ping: Callable[[bytes, int], SendPing] = fast_init(SendPing, "payload", "seq")
rtt_sample: Callable[[int, float], RttSample] = fast_init(RttSample, "seq", "rtt")
