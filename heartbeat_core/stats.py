"""Heartbeat statistics: counters and round-trip times (RFC 6298 smoothing)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["HeartbeatStats"]


@dataclass(frozen=True, slots=True, kw_only=True)
class HeartbeatStats:
    """A snapshot of one connection's heartbeat figures. RTTs are in seconds,
    ``None`` until the first heartbeat is answered."""

    #: Heartbeats sent (protocol pings or application pings).
    pings_sent: int = 0
    #: Heartbeats answered by the matching pong.
    pongs_received: int = 0
    #: Heartbeats unanswered for the whole timeout (0 or 1: the first ends the connection).
    misses: int = 0
    #: Pings the peer sent us (ping frames and application-level pings).
    peer_pings: int = 0
    #: Of ``peer_pings``, the application-level ones (``{"type":"ping"}``).
    peer_app_pings: int = 0
    #: Of ``pings_sent``, the probes (rule ``probe``: sent for their RTT only).
    probes_sent: int = 0
    #: Current strikes against the peer for pinging too often.
    peer_ping_strikes: int = 0
    last_rtt: float | None = None
    min_rtt: float | None = None
    max_rtt: float | None = None
    #: Smoothed RTT (RFC 6298 SRTT).
    srtt: float | None = None
    #: RTT variation (RFC 6298 RTTVAR).
    rttvar: float | None = None
