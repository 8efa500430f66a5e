"""Pacing for what a server does when it runs out of resources, sans-IO.

Two small timing rules the drivers share, each taking the driver's ``now``:

* :class:`RateLimit`: at most one report per period, counting the ones held back,
  so that a failure repeated thousands of times a second makes one log line a
  second, not thousands;
* :class:`AcceptBackoff`: how long a server's accept loop stops accepting after
  ``accept()`` failed for want of file descriptors or memory (``EMFILE``,
  ``ENFILE``, ``ENOBUFS``, ``ENOMEM``: :data:`RESOURCE_ERRNOS`). The listening
  socket stays readable while the kernel holds connections nobody can accept, so
  a loop that retried at once would spin; the pause starts short and doubles up to
  ``maximum``, which bounds how late accepting resumes once descriptors are free.
"""

from __future__ import annotations

import errno
import math
from dataclasses import dataclass

from heartbeat_core.errors import ConfigError, LocalProtocolError

__all__ = ["RESOURCE_ERRNOS", "AcceptBackoff", "AcceptPause", "RateLimit"]

#: ``accept()`` errors that mean "out of resources", not "this connection failed".
RESOURCE_ERRNOS: frozenset[int] = frozenset(
    {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM}
)


def _seconds(name: str, value: float) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not (math.isfinite(value) and value > 0)
    ):
        raise ConfigError(f"{name} must be a finite number of seconds > 0, got {value!r}")
    return float(value)


def _check_now(now: float) -> None:
    if not math.isfinite(now):
        raise LocalProtocolError(f"now must be a finite monotonic time, got {now!r}")


class RateLimit:
    """At most one report per ``period`` seconds (the first one at once).

    :meth:`allow` says whether to report now and how many reports were held back
    since the last one that was allowed. Not thread-safe: use it from one thread
    (or under the caller's lock).
    """

    __slots__ = ("_held", "_last", "_period")

    def __init__(self, period: float = 1.0) -> None:
        """Raises :class:`~heartbeat_core.errors.ConfigError` unless ``period`` is a
        finite number of seconds > 0."""
        self._period = _seconds("period", period)
        self._last: float | None = None
        self._held = 0

    @property
    def held(self) -> int:
        """Reports held back since the last one allowed."""
        return self._held

    def allow(self, now: float) -> int | None:
        """Something to report at ``now``: ``None`` to hold it back (it is counted),
        else the number held back before it (the count starts again)."""
        _check_now(now)
        last = self._last
        if last is not None:
            if now < last:
                raise LocalProtocolError("time ran backwards: pass a monotonic clock")
            if now - last < self._period:
                self._held += 1
                return None
        self._last = now
        held, self._held = self._held, 0
        return held


@dataclass(frozen=True, slots=True, kw_only=True)
class AcceptPause:
    """What to do after a failed ``accept()``: stop accepting for ``delay`` seconds;
    ``log`` says whether to log it (at most once a second), ``failures`` counts the
    failures since accepting last worked."""

    delay: float
    log: bool
    failures: int


class AcceptBackoff:
    """How long a server stops accepting after ``accept()`` ran out of resources.

    Call :meth:`failed` when ``accept()`` fails with one of :data:`RESOURCE_ERRNOS`,
    stop watching the listening socket for the :class:`AcceptPause`'s ``delay``,
    then watch it again; call :meth:`accepted` when ``accept()`` works. The delay
    starts at ``initial`` and doubles up to ``maximum`` (the default 20 ms keeps
    a server at a few dozen cheap failed calls a second, and accepting again
    within 20 ms of descriptors being freed).
    """

    __slots__ = ("_failures", "_initial", "_log", "_maximum")

    def __init__(
        self, *, initial: float = 0.001, maximum: float = 0.02, log_period: float = 1.0
    ) -> None:
        """Raises :class:`~heartbeat_core.errors.ConfigError` unless each argument is a
        finite number of seconds > 0 and ``initial <= maximum``."""
        self._initial = _seconds("initial", initial)
        self._maximum = _seconds("maximum", maximum)
        if self._initial > self._maximum:
            raise ConfigError(
                f"initial ({initial!r}) must not exceed maximum ({maximum!r}): "
                "pass e.g. initial=0.001, maximum=0.02"
            )
        self._log = RateLimit(log_period)
        self._failures = 0

    @property
    def failures(self) -> int:
        """Failed ``accept()`` calls since the last one that worked."""
        return self._failures

    def failed(self, now: float) -> AcceptPause:
        """``accept()`` failed for want of resources at ``now``."""
        held = self._log.allow(now)
        exponent = min(self._failures, 64)
        self._failures += 1
        delay = min(self._maximum, self._initial * 2.0**exponent)
        return AcceptPause(delay=delay, log=held is not None, failures=self._failures)

    def accepted(self, now: float) -> int:
        """``accept()`` worked at ``now`` after :attr:`failures` failures: the pauses start
        short again. Returns those failures when they are worth a log line (at most one
        a second, counted with :meth:`failed`'s), else 0. Drivers call it only while
        :attr:`failures` is not 0, so that a healthy accept loop reads no clock."""
        failures, self._failures = self._failures, 0
        if failures and self._log.allow(now) is not None:
            return failures
        return 0
