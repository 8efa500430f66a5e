"""When bytes may cross a shaped link: the rules of a link proxy, without its sockets.

A proxy that adds delay, stalls and a bandwidth cap between two real endpoints
(:class:`heartbeat_threading.testing.LinkProxy`) reads bytes as they come and asks a
:class:`LinkShaper` (one per direction of a connection) when they may be delivered,
and an :class:`IdleWatch` whether the connection has been silent too long; it files
the answers in a :class:`~heartbeat_core.TimerWheel`. Every decision about time is
taken here, from the ``now`` the proxy passes in.
"""

from __future__ import annotations

from dataclasses import dataclass

from heartbeat_core.errors import ConfigError
from heartbeat_core.randomness import RandomSource
from heartbeat_core.testing._checks import number

__all__ = ["Direction", "IdleWatch", "LinkShaper"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Direction:
    """How one direction of a shaped link behaves. Times in seconds. Validated at
    construction (:class:`~heartbeat_core.ConfigError`)."""

    #: Added to every chunk's journey.
    delay: float = 0.0
    #: Each chunk's delay is spread uniformly by ``± jitter`` (order is kept).
    jitter: float = 0.0
    #: Bytes per second (``None``: unlimited).
    bandwidth: float | None = None
    #: Every this many seconds (``None``: never) the direction stalls ...
    stall_every: float | None = None
    #: ... for this long; what was held back then arrives at once, in order.
    stall: float = 0.0
    #: Swallow everything (the connection stays open).
    blackhole: bool = False

    def __post_init__(self) -> None:
        # (the messages name no unit: bandwidth is in bytes per second)
        for name in ("delay", "jitter", "stall"):
            number(name, getattr(self, name), unit="")
        for name in ("bandwidth", "stall_every"):
            if getattr(self, name) is not None:
                number(name, getattr(self, name), positive=True, unit="")
        if self.stall_every is not None and self.stall >= self.stall_every:
            raise ConfigError(f"stall ({self.stall}) must be shorter than stall_every")


class LinkShaper:
    """One direction of one connection: :meth:`release` says when bytes read at ``now``
    may be delivered. Delivery stays in order; stalls follow a grid that starts at
    ``origin`` (so the directions of every connection that share ``origin`` stall
    together); ``random`` spreads the jitter."""

    __slots__ = ("_free", "_last", "_origin", "_random")

    def __init__(self, origin: float, random: RandomSource) -> None:
        self._origin = origin
        self._random = random
        self._last = origin  # the latest release so far (order is kept)
        self._free = origin  # when the bandwidth allows the next byte

    def release(self, direction: Direction, size: int, now: float) -> float | None:
        """When ``size`` bytes read at ``now`` may go on; ``None``: never (a blackhole)."""
        if direction.blackhole:
            return None
        release = now + direction.delay
        if direction.jitter:
            release += direction.jitter * (2.0 * self._random() - 1.0)
        release = max(release, self._last)
        if direction.bandwidth is not None:
            release = max(release, self._free) + size / direction.bandwidth
            self._free = release
        if direction.stall_every is not None:
            into = (release - self._origin) % direction.stall_every
            if into < direction.stall:
                release += direction.stall - into  # held until the stall ends
        self._last = release
        return release


class IdleWatch:
    """A connection that a proxy closes after ``limit`` seconds with no byte passing:
    :meth:`activity` at each byte, :attr:`deadline` to file, :meth:`expired` when it
    comes."""

    __slots__ = ("_last", "limit")

    def __init__(self, limit: float, now: float) -> None:
        number("idle_limit", limit, positive=True, unit="")
        self.limit: float = float(limit)
        self._last = now

    def activity(self, now: float) -> None:
        """Bytes passed at ``now``."""
        self._last = max(self._last, now)

    @property
    def deadline(self) -> float:
        """When the connection will have been idle for the limit."""
        return self._last + self.limit

    def expired(self, now: float) -> bool:
        """Idle for the limit at ``now``."""
        return now >= self._last + self.limit
