"""The simulated network between two endpoints: one-way paths and the link they make.

A :class:`Path` is one direction of a TCP connection as the application sees it:
a delay drawn from a :class:`Distribution` for every message, loss as TCP turns
it into delay (a lost segment is retransmitted after the retransmission timeout,
doubling on each further loss, and everything sent behind it waits: TCP delivers
in order), and an optional bandwidth (each message occupies the path for its
size divided by the rate). A :class:`Link` is two paths, one per direction.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass

from heartbeat_core.errors import ConfigError
from heartbeat_core.testing._checks import number

__all__ = ["Distribution", "Link", "Path"]


class Distribution(enum.Enum):
    """How a path's delay spreads around its ``delay``."""

    #: ``delay ± jitter``, uniformly (as ``tc netem delay D J`` without a table).
    UNIFORM = "uniform"
    #: ``delay`` plus a normal deviation of standard deviation ``jitter``.
    NORMAL = "normal"
    #: ``delay`` plus an exponential tail of mean ``jitter`` (queueing: delays only add).
    EXPONENTIAL = "exponential"


@dataclass(frozen=True, slots=True, kw_only=True)
class Path:
    """One direction of the link. Validated at construction (:class:`ConfigError`)."""

    #: The one-way delay, in seconds, before spreading.
    delay: float = 0.0
    #: The spread of the delay (its meaning depends on ``distribution``); a delay
    #: never goes below zero.
    jitter: float = 0.0
    #: How the delay spreads.
    distribution: Distribution = Distribution.UNIFORM
    #: The probability that a segment is lost (then retransmitted after ``rto``).
    loss: float = 0.0
    #: The retransmission timeout of a lost segment; it doubles on each further loss
    #: of the same segment (Linux starts at 200 ms).
    rto: float = 0.2
    #: Bytes per second (``None``: unlimited).
    bandwidth: float | None = None

    def __post_init__(self) -> None:
        number("delay", self.delay)
        number("jitter", self.jitter)
        number("rto", self.rto, positive=True)
        if not isinstance(self.distribution, Distribution):
            raise ConfigError(f"distribution must be a Distribution, got {self.distribution!r}")
        if not (
            isinstance(self.loss, (int, float))
            and not isinstance(self.loss, bool)
            and 0 <= self.loss < 1
        ):
            raise ConfigError(f"loss must be a probability in [0, 1), got {self.loss!r}")
        if self.bandwidth is not None and not (
            isinstance(self.bandwidth, (int, float))
            and not isinstance(self.bandwidth, bool)
            and math.isfinite(self.bandwidth)
            and self.bandwidth > 0
        ):
            raise ConfigError(
                f"bandwidth must be a number of bytes per second > 0 or None, "
                f"got {self.bandwidth!r}"
            )


@dataclass(frozen=True, slots=True, kw_only=True)
class Link:
    """Both directions: ``up`` carries the client's bytes to the server, ``down`` the
    server's to the client."""

    up: Path = Path()
    down: Path = Path()

    def __post_init__(self) -> None:
        for name in ("up", "down"):
            if not isinstance(getattr(self, name), Path):
                raise ConfigError(f"{name} must be a Path, got {getattr(self, name)!r}")

    @classmethod
    def symmetric(
        cls,
        *,
        rtt: float = 0.0,
        jitter: float = 0.0,
        distribution: Distribution = Distribution.UNIFORM,
        loss: float = 0.0,
        rto: float = 0.2,
        bandwidth: float | None = None,
    ) -> Link:
        """The same path both ways: each direction takes half of ``rtt`` and half of
        ``jitter``, and loses segments with probability ``loss``."""
        number("rtt", rtt)
        number("jitter", jitter)
        path = Path(
            delay=rtt / 2,
            jitter=jitter / 2,
            distribution=distribution,
            loss=loss,
            rto=rto,
            bandwidth=bandwidth,
        )
        return cls(up=path, down=path)
