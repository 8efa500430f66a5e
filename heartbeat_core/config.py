"""Heartbeat configuration: one frozen, validated object per policy.

Defaults, and why:

* ``interval = 20`` s. Twice the interval stays under the idle limits of the
  common proxies (Heroku's 55 s, the 60 s of nginx's ``proxy_read_timeout`` and of
  AWS ALB), so a heartbeat that is lost or late by a whole interval still reaches
  them in time; the same as websockets. The 30 s that many hand-written heartbeats
  use leaves no such room behind a 60 s limit (see :meth:`HeartbeatConfig.findings`).
* ``timeout = 10`` s. Far above any healthy round trip (mobile networks
  included: a radio waking up or a cell handover can take seconds) yet short
  enough that a dead peer is found within 30 s of its last sign of life. The
  5 s that is also common is tight for mobile links.
* ``close_timeout = 5`` s. Bounds a normal closing handshake. A peer declared
  dead is never waited for, whatever this value is.
* ``liveness = ANY_INBOUND``. Any inbound byte proves the peer is alive: busy
  connections send no heartbeats, and a large message that delays a pong
  cannot get a healthy peer killed.
* ``probe_interval = None``. No heartbeat is sent for measurement alone; set it
  (e.g. to 5 s) to have an RTT on busy connections too (rule ``probe``).
"""

from __future__ import annotations

import enum
import math
import warnings
from dataclasses import dataclass

from heartbeat_core.errors import ConfigError, ConfigWarning

__all__ = [
    "DEFAULT_MAX_QUEUE",
    "DEFAULT_MAX_QUEUE_BYTES",
    "BackoffPolicy",
    "HeartbeatConfig",
    "HeartbeatStyle",
    "Liveness",
    "PROXY_IDLE_LIMITS",
    "check_queue_bounds",
]

#: Drivers' default bound on unread messages per connection (then reading pauses).
DEFAULT_MAX_QUEUE = 32
#: Drivers' default bound on unread message bytes per connection.
DEFAULT_MAX_QUEUE_BYTES = 16 * 1024 * 1024


def _positive_int(name: str, value: object, what: str, default: int) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return value
    raise ConfigError(
        f"{name} must be a positive int (how many {what} a connection holds before "
        f"it stops reading), got {value!r}: pass an int >= 1, e.g. the default {default}"
    )


def check_queue_bounds(max_queue: object, max_queue_bytes: object) -> tuple[int, int]:
    """Validate a driver's receive-queue bounds: both must be positive ints (not bools),
    else :class:`ConfigError` names the argument."""
    return (
        _positive_int("max_queue", max_queue, "unread messages", DEFAULT_MAX_QUEUE),
        _positive_int(
            "max_queue_bytes", max_queue_bytes, "bytes of unread messages", DEFAULT_MAX_QUEUE_BYTES
        ),
    )


#: Default idle limits of common proxies and load balancers, in seconds, as each platform's
#: own documentation gives them (docs/explanation/choosing.rst names every source).
#: ``findings()`` checks a configuration against each: twice the longest wait before a
#: heartbeat must stay below the limit, a whole heartbeat of margin for one that is lost
#: or late.
PROXY_IDLE_LIMITS: tuple[tuple[str, float], ...] = (
    ("Heroku router idle window", 55.0),
    ("nginx proxy_read_timeout default", 60.0),
    ("Kubernetes ingress-nginx proxy-read-timeout default", 60.0),
    ("AWS ALB idle timeout default", 60.0),
    ("Cloudflare Proxy Read Timeout", 100.0),
    ("Azure Load Balancer idle timeout default", 240.0),
    ("Azure Front Door WebSocket idle timeout", 300.0),
)


class HeartbeatStyle(enum.Enum):
    """How our heartbeats travel."""

    #: RFC 6455 ping and pong control frames.
    PROTOCOL = "protocol"
    #: Application-level text messages (``{"type":"ping"}`` / ``{"type":"pong"}``
    #: by default), the only kind browser JavaScript can send.
    APP = "app"


class Liveness(enum.Enum):
    """What proves the peer alive."""

    #: Any inbound byte (the default).
    ANY_INBOUND = "any-inbound"
    #: Only a pong matching our outstanding ping (as in websockets).
    PONG_ONLY = "pong-only"


def _positive(name: str, value: float) -> None:
    if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
        raise ConfigError(f"{name} must be a finite number of seconds > 0, got {value!r}")


def _non_negative(name: str, value: float) -> None:
    if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
        raise ConfigError(f"{name} must be a finite number of seconds >= 0, got {value!r}")


@dataclass(frozen=True, slots=True, kw_only=True)
class HeartbeatConfig:
    """Every timing rule's setting. Validated at construction (:class:`ConfigError`).

    Times are seconds on the driver's monotonic clock.
    """

    #: Send a heartbeat this long after the last sign of life (rule ``interval``).
    interval: float = 20.0
    #: Declare the peer dead when nothing qualifying arrived this long after a ping.
    timeout: float = 10.0
    #: Bound on a normal closing handshake, and on flushing a dead peer's close frame.
    close_timeout: float = 5.0
    #: Protocol ping frames or application-level messages.
    style: HeartbeatStyle = HeartbeatStyle.PROTOCOL
    #: What counts as a sign of life.
    liveness: Liveness = Liveness.ANY_INBOUND
    #: Ping every ``interval`` after the previous ping, whatever arrives meanwhile.
    fixed_rate: bool = False
    #: Spread each wait by up to ``±jitter·interval`` (needs a random source).
    jitter: float = 0.0
    #: A timer delivered this late means *we* stalled (rule ``late-timer``).
    stall_threshold: float = 0.25
    #: After a stall, wait this long for input that arrived meanwhile.
    stall_grace: float = 0.1
    #: A heartbeat may go out up to this long before it is due, from the last multiple
    #: of ``timer_slack`` on the driver's clock before it (rule ``early-timer``), so that
    #: connections due close together share one wake-up. ``None``: 2 % of ``interval``
    #: (or of ``probe_interval``, if shorter), at most 20 ms (:attr:`slack`); 0: never
    #: early; otherwise at least 1 µs and less than half of both.
    timer_slack: float | None = None
    #: Follow the measured RTT: timeout = clamp(SRTT + 4·RTTVAR, min_timeout, timeout).
    adaptive_timeout: bool = False
    #: Floor of the adaptive timeout.
    min_timeout: float = 1.0
    #: Peer pings closer together than this collect a strike (rule ``peer-ping``).
    peer_ping_min_interval: float = 0.05
    #: Close with 1008 when a peer collects more strikes than this.
    peer_ping_max_strikes: int = 100
    #: Answer the peer's application-level pings.
    answer_app_pings: bool = True
    #: Opaque bytes put before every ping counter (<= 64 bytes; driver-chosen, e.g. random).
    payload_prefix: bytes = b""
    #: Send a heartbeat at least this often, even while traffic flows, to measure the RTT
    #: (rule ``probe``); ``None``: only when ``interval`` says. Measurement only: a probe
    #: never declares the peer dead.
    probe_interval: float | None = None
    #: Send the first heartbeat as soon as the connection opens (as ``ping(8)`` does),
    #: not ``interval`` later.
    ping_on_open: bool = False

    def __post_init__(self) -> None:
        _positive("interval", self.interval)
        _positive("timeout", self.timeout)
        _non_negative("close_timeout", self.close_timeout)
        _non_negative("stall_threshold", self.stall_threshold)
        _non_negative("stall_grace", self.stall_grace)
        _positive("min_timeout", self.min_timeout)
        _non_negative("peer_ping_min_interval", self.peer_ping_min_interval)
        if not isinstance(self.style, HeartbeatStyle):
            raise ConfigError(f"style must be a HeartbeatStyle, got {self.style!r}")
        if not isinstance(self.liveness, Liveness):
            raise ConfigError(f"liveness must be a Liveness, got {self.liveness!r}")
        if not (isinstance(self.jitter, (int, float)) and 0 <= self.jitter <= 0.5):
            raise ConfigError(
                f"jitter must be a fraction of the interval in [0, 0.5], got {self.jitter!r}"
            )
        if isinstance(self.peer_ping_max_strikes, bool) or not (
            isinstance(self.peer_ping_max_strikes, int) and self.peer_ping_max_strikes >= 0
        ):
            raise ConfigError(
                f"peer_ping_max_strikes must be an int >= 0, got {self.peer_ping_max_strikes!r}"
            )
        if not isinstance(self.payload_prefix, bytes) or len(self.payload_prefix) > 64:
            raise ConfigError(
                "payload_prefix must be at most 64 bytes (a ping payload is limited to 125), "
                f"got {self.payload_prefix!r}"
            )
        if self.probe_interval is not None:
            if isinstance(self.probe_interval, bool):
                raise ConfigError(
                    "probe_interval must be None or a number of seconds, "
                    f"got {self.probe_interval!r}"
                )
            _positive("probe_interval", self.probe_interval)
            if self.fixed_rate:
                raise ConfigError(
                    "probe_interval has no use with fixed_rate, which already sends a heartbeat "
                    "every interval whatever arrives: drop one of them (a shorter interval gives "
                    "more RTT samples)"
                )
        if not isinstance(self.ping_on_open, bool):
            raise ConfigError(f"ping_on_open must be a bool, got {self.ping_on_open!r}")
        if self.adaptive_timeout and self.min_timeout > self.timeout:
            raise ConfigError(
                f"min_timeout ({self.min_timeout}) must not exceed timeout ({self.timeout}) "
                "when adaptive_timeout is on"
            )
        self._check_timer_slack()  # (after interval and probe_interval, which it needs)

    def _check_timer_slack(self) -> None:
        slack = self.timer_slack
        if slack is None:
            return
        if isinstance(slack, bool) or not isinstance(slack, (int, float)):
            raise ConfigError(
                f"timer_slack must be None (the default) or a number of seconds, got {slack!r}"
            )
        _non_negative("timer_slack", slack)
        if 0 < slack < 1e-6:
            raise ConfigError(
                f"timer_slack must be 0 or at least 1 µs, got {slack!r}: leave it None "
                "(2 % of the interval, at most 20 ms)"
            )
        for name in ("interval", "probe_interval"):
            period = getattr(self, name)
            if period is not None and not slack < period / 2:
                raise ConfigError(
                    f"timer_slack ({slack!r} s) must be less than half the {name} "
                    f"({period!r} s): leave it None (2 % of the shorter of the two, at most 20 ms)"
                )

    @property
    def slack(self) -> float:
        """The ``timer_slack`` in force, in seconds: the configured one, or (``None``)
        2 % of ``interval`` or of ``probe_interval``, whichever is shorter, at most 20 ms
        (0 below 1 µs)."""
        if self.timer_slack is not None:
            return float(self.timer_slack)
        shortest = self.interval
        if self.probe_interval is not None and self.probe_interval < shortest:
            shortest = self.probe_interval
        slack = min(0.02 * shortest, 0.02)
        return slack if slack >= 1e-6 else 0.0

    def findings(self) -> list[str]:
        """Risky but legal choices in this configuration, as readable sentences: a
        ``timeout`` longer than ``interval``, and every limit of :data:`PROXY_IDLE_LIMITS`
        that twice the longest wait before a heartbeat (``interval · (1 + jitter)``)
        reaches, which leaves no room for one lost or late heartbeat."""
        found: list[str] = []
        if self.timeout > self.interval:
            found.append(
                f"timeout ({self.timeout:g} s) exceeds interval ({self.interval:g} s): a dead "
                "peer is found later than the next heartbeat would be due"
            )
        # A heartbeat is due interval after the last sign of life, at most interval·(1 +
        # jitter) with jitter; one that is lost or late needs a whole heartbeat of margin.
        longest = self.interval * (1 + self.jitter)
        wait = f"{self.interval:g} s" + (
            f", up to {longest:.3g} s with jitter {self.jitter:g}" if self.jitter else ""
        )
        for name, limit in PROXY_IDLE_LIMITS:
            if 2 * longest >= limit:
                below = limit / 2 / (1 + self.jitter)
                found.append(
                    f"interval ({wait}) leaves no room for a lost heartbeat under the {name} "
                    f"({limit:g} s): keep it below {below:.3g} s, half the limit"
                    + (" less the jitter" if self.jitter else "")
                )
        return found

    def warn(self, stacklevel: int = 2) -> None:
        """Issue a :class:`ConfigWarning` for each of :meth:`findings`."""
        for finding in self.findings():
            warnings.warn(finding, ConfigWarning, stacklevel=stacklevel + 1)


@dataclass(frozen=True, slots=True, kw_only=True)
class BackoffPolicy:
    """Reconnect delays: exponential, capped, with full jitter; see :class:`Backoff`."""

    #: The first retry's delay bound.
    initial: float = 0.5
    #: Each failure multiplies the bound by this.
    multiplier: float = 2.0
    #: The bound never exceeds this.
    maximum: float = 30.0
    #: A connection that stayed up this long resets the sequence.
    reset_after: float = 10.0
    #: Draw each delay uniformly from [0, bound] (full jitter); else use the bound.
    full_jitter: bool = True

    def __post_init__(self) -> None:
        _positive("initial", self.initial)
        _positive("maximum", self.maximum)
        _non_negative("reset_after", self.reset_after)
        if not (isinstance(self.multiplier, (int, float)) and self.multiplier >= 1):
            raise ConfigError(f"multiplier must be >= 1, got {self.multiplier!r}")
        if self.maximum < self.initial:
            raise ConfigError(f"maximum ({self.maximum}) must be at least initial ({self.initial})")
