"""Reconnect backoff, sans-IO: exponential, capped, full jitter, reset after a stable connection.

Also what a reconnecting client tells its application (``on_state``): one of
:class:`Connected`, :class:`Disconnected` and :class:`Retrying`, the
:data:`ReconnectEvent` union, shared by every driver.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeAlias

from heartbeat_core.config import BackoffPolicy
from heartbeat_core.errors import LocalProtocolError
from heartbeat_core.randomness import RandomSource, shared_random

__all__ = [
    "Backoff",
    "Connected",
    "Disconnected",
    "ReconnectCallback",
    "ReconnectEvent",
    "Retrying",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class Connected:
    """A connection to ``uri`` opened."""

    uri: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Disconnected:
    """A connection ended (``code`` and ``reason`` of its close) or an attempt failed
    (``code`` is None and ``error`` says why)."""

    code: int | None
    reason: str
    error: BaseException | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Retrying:
    """The next attempt starts in ``delay`` seconds; ``attempt`` counts failures since
    the last stable connection (:attr:`Backoff.attempt`)."""

    delay: float
    attempt: int


#: What a reconnecting client reports, in order: ``Connected``, then ``Disconnected``
#: when it ends (or ``Disconnected`` alone for a failed attempt), then ``Retrying``.
ReconnectEvent: TypeAlias = Connected | Disconnected | Retrying
#: ``on_state(event)``: what a reconnecting client (``connect_forever``) reports.
ReconnectCallback: TypeAlias = Callable[[ReconnectEvent], None]


class Backoff:
    """The delays between reconnection attempts.

    Call :meth:`connected` when a connection opens and :meth:`next_delay` each
    time one fails or ends; it returns how long to wait before the next
    attempt. The bound starts at ``initial`` and is multiplied by
    ``multiplier`` after each failure, up to ``maximum``; with full jitter the
    delay is drawn uniformly from ``[0, bound]`` (``random`` returns floats in
    [0, 1); without one, from the core's shared default source). A connection
    that stayed up at least ``reset_after`` seconds starts the sequence again.
    """

    __slots__ = ("_attempt", "_connected_at", "_policy", "_random")

    def __init__(
        self, policy: BackoffPolicy | None = None, *, random: RandomSource | None = None
    ) -> None:
        policy = BackoffPolicy() if policy is None else policy
        self._policy = policy
        # Without a source, full jitter draws from the shared default one (as jitter does).
        self._random: RandomSource = shared_random() if random is None else random
        self._attempt = 0
        self._connected_at: float | None = None

    @property
    def attempt(self) -> int:
        """Failures since the last reset."""
        return self._attempt

    def connected(self, now: float) -> None:
        """A connection opened at ``now``."""
        self._connected_at = now

    def next_delay(self, now: float) -> float:
        """An attempt failed, or a connection ended, at ``now``: the wait before retrying."""
        if not math.isfinite(now):
            raise LocalProtocolError(f"now must be a finite monotonic time, got {now!r}")
        policy = self._policy
        if self._connected_at is not None:
            if now < self._connected_at:
                raise LocalProtocolError("time ran backwards: pass a monotonic clock")
            if now - self._connected_at >= policy.reset_after:
                self._attempt = 0
            self._connected_at = None
        exponent = min(self._attempt, 64)
        bound = min(policy.maximum, policy.initial * policy.multiplier**exponent)
        self._attempt += 1
        if policy.full_jitter:
            return bound * self._random()
        return bound
