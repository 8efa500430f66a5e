"""What can go wrong in a simulation, each at a time on the virtual clock.

* :class:`Stall`: one endpoint stops running for a while. ``StallKind.PROCESS``
  (a frozen process, a blocked event loop, a laptop lid closed): it neither
  reads, answers nor fires timers until the stall ends, then reads what arrived
  meanwhile and runs its overdue timer. ``StallKind.TIMERS`` (a background tab
  throttled by the browser): it still reads and answers, but its timers wait for
  the end of the stall.
* :class:`Vanish`: one endpoint disappears without a word (power cut, NAT
  mapping gone, a phone out of coverage): a half-open connection. The other
  side must find it dead.
* :class:`Cut`: one direction stops carrying bytes (``until=None``: for good);
  what is sent meanwhile arrives when the cut heals. Cut both directions for a
  blackhole.
* :class:`Proxy`: a proxy or load balancer beside the server that closes the
  connection when no byte passed either way for ``idle_limit`` seconds.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import TypeAlias

from heartbeat_core.errors import ConfigError
from heartbeat_core.testing._checks import number

__all__ = ["Cut", "Fault", "Proxy", "Side", "Stall", "StallKind", "Vanish"]


class Side(enum.Enum):
    """One end of the simulated connection."""

    CLIENT = "client"
    SERVER = "server"

    @property
    def other(self) -> Side:
        """The opposite end."""
        return Side.SERVER if self is Side.CLIENT else Side.CLIENT


class StallKind(enum.Enum):
    """What a stalled endpoint still does."""

    #: Nothing: no reads, no answers, no timers (frozen process, blocked loop).
    PROCESS = "process"
    #: Reads and answers, but no timer fires (a throttled background tab).
    TIMERS = "timers"


def _side(value: object) -> None:
    if not isinstance(value, Side):
        raise ConfigError(f"side must be Side.CLIENT or Side.SERVER, got {value!r}")


@dataclass(frozen=True, slots=True, kw_only=True)
class Stall:
    """``side`` stops running at ``at`` for ``duration`` seconds."""

    side: Side
    at: float
    duration: float
    kind: StallKind = StallKind.PROCESS

    def __post_init__(self) -> None:
        _side(self.side)
        number("at", self.at)
        number("duration", self.duration, positive=True)
        if not isinstance(self.kind, StallKind):
            raise ConfigError(f"kind must be a StallKind, got {self.kind!r}")

    @property
    def until(self) -> float:
        """When the stall ends."""
        return self.at + self.duration


@dataclass(frozen=True, slots=True, kw_only=True)
class Vanish:
    """``side`` disappears at ``at``: it sends nothing more, and nothing reaches it."""

    side: Side
    at: float

    def __post_init__(self) -> None:
        _side(self.side)
        number("at", self.at)


@dataclass(frozen=True, slots=True, kw_only=True)
class Cut:
    """Bytes that ``sender`` sends stop arriving at ``at``, until ``until`` (``None``:
    for good; then what was held back arrives)."""

    sender: Side
    at: float
    until: float | None = None

    def __post_init__(self) -> None:
        _side(self.sender)
        number("at", self.at)
        if self.until is not None and number("until", self.until) <= self.at:
            raise ConfigError(f"until ({self.until}) must be after at ({self.at})")


@dataclass(frozen=True, slots=True, kw_only=True)
class Proxy:
    """A proxy beside the server that cuts the connection after ``idle_limit`` seconds
    with no byte passing either way (nginx ``proxy_read_timeout``, an AWS ALB idle
    timeout, ...)."""

    idle_limit: float

    def __post_init__(self) -> None:
        number("idle_limit", self.idle_limit, positive=True)


#: Anything :func:`~heartbeat_core.testing.simulate` takes in ``faults``.
Fault: TypeAlias = Stall | Vanish | Cut
