"""Many connections' deadlines behind one driver timer, sans-IO.

A driver files each connection at the deadline its core asks for
(:meth:`TimerWheel.file`), keeps one timer of its own at
:attr:`TimerWheel.next_wake` (or sleeps :meth:`TimerWheel.timeout` seconds in
``select()``), and when it fires hands the core of every connection
:meth:`TimerWheel.pop_due` returns a ``TimerFired``. Every decision about time
is taken here, from the ``now`` the driver passes in; the driver compares no
times itself.

Deadlines are filed in buckets of ``resolution`` seconds: a deadline goes into
the first bucket that ends after it (key ``floor(when / resolution) + 1``, end
``key * resolution``), so when a bucket is due every deadline in it is due,
and a timer is at most ``resolution`` late. Filing is a list append, and the
heap holds bucket keys, not items: at 10,000 heartbeats a second and 1 ms
buckets it holds about a thousand keys however many items wait.

Items are :class:`TimerItem` instances (a driver's connections subclass it):
the wheel keeps each item's filing in the item. A typical driver::

    if wheel.file(conn, conn.core.wake_at):  # the earliest wake-up moved earlier
        rearm(wheel.next_wake)
    ...
    def on_timer(now):
        for conn in wheel.pop_due(now):
            conn.timer_fired(now)  # may file conn again, in a later bucket
        if wheel.next_wake is not None:
            rearm(wheel.next_wake)
"""

from __future__ import annotations

import math
from heapq import heapify, heappop, heappush
from math import floor
from typing import Any, Generic, TypeVar

from heartbeat_core.errors import ConfigError, LocalProtocolError

__all__ = ["TimerItem", "TimerWheel"]

#: Rebuild the heap of bucket keys when it holds this many stale keys more than
#: live buckets (keys of buckets emptied by unfile() or moves wait in it lazily).
_STALE_SLACK = 1024


class TimerItem:
    """What a :class:`TimerWheel` files: an instance of a subclass (a driver's
    connection, say).

    The wheel records where an item is filed in the item itself, in two slots,
    so that filing costs an attribute access, not a lookup in a table of every
    connection (at tens of thousands of connections that lookup misses the CPU's
    caches). An item is filed in one wheel at a time. A subclass that defines
    ``__init__`` calls ``super().__init__()`` (or this one).
    """

    __slots__ = ("_timer_key", "_timer_wheel")

    def __init__(self) -> None:
        self._timer_key: int | None = None  # the key of the bucket it is filed in
        self._timer_wheel: Any = None  # the wheel it is filed in


T = TypeVar("T", bound=TimerItem)


class TimerWheel(Generic[T]):
    """Items (e.g. connections) filed at deadlines, in buckets of ``resolution`` s.

    Each item is filed at most once. :meth:`file` keeps a filing in an
    earlier or equal bucket (the item fires early, which the core ignores, and
    is filed again) and moves one in a later bucket, so a deadline that moves
    later costs nothing. Items are :class:`TimerItem` instances.

    Times are on the driver's clock, in seconds. Not thread-safe.
    """

    __slots__ = ("_buckets", "_count", "_keys", "_resolution")

    def __init__(self, resolution: float = 0.001) -> None:
        """Raises :class:`~heartbeat_core.errors.ConfigError` unless ``resolution``
        is a finite number of seconds > 0."""
        if (
            isinstance(resolution, bool)
            or not isinstance(resolution, (int, float))
            or not (math.isfinite(resolution) and resolution > 0)
        ):
            raise ConfigError(
                f"resolution must be a finite number of seconds > 0, got {resolution!r}: "
                "pass e.g. the default 0.001 (1 ms buckets)"
            )
        self._resolution = float(resolution)
        self._buckets: dict[int, list[T]] = {}  # key -> items, never empty
        self._count = 0  # items filed
        # Heap of bucket keys. Its top is always a live bucket (or it is empty); below
        # the top, keys of emptied buckets may wait, and a key may appear twice.
        self._keys: list[int] = []

    @property
    def resolution(self) -> float:
        """Bucket width in seconds: how late a timer may be."""
        return self._resolution

    @property
    def next_wake(self) -> float | None:
        """When the driver's timer must fire: the end of the earliest non-empty
        bucket, or None when nothing is filed."""
        keys = self._keys
        return keys[0] * self._resolution if keys else None

    def __len__(self) -> int:
        """How many items are filed."""
        return self._count

    def __contains__(self, item: object) -> bool:
        """``item`` is filed in this wheel."""
        return getattr(item, "_timer_wheel", None) is self

    def timeout(self, now: float) -> float | None:
        """Seconds from ``now`` until :attr:`next_wake`, never negative (e.g. for
        ``select()``); None when nothing is filed."""
        keys = self._keys
        if not keys:
            return None
        wait = keys[0] * self._resolution - now
        return wait if wait > 0.0 else 0.0

    def file(self, item: T, when: float | None) -> bool:
        """Make sure ``item`` is filed at or before ``when`` (None: no timer is
        needed, nothing changes).

        An item already filed in a bucket ending no later than ``when``'s stays
        there; one filed later moves. Returns True exactly when :attr:`next_wake`
        moved earlier (or was None): the driver must re-arm its timer at
        :attr:`next_wake`. Raises :class:`~heartbeat_core.errors.LocalProtocolError`,
        changing nothing, when ``when`` is NaN or infinite, or when ``item`` is
        filed in another wheel.
        """
        if when is None:
            return False
        try:
            key = floor(when / self._resolution) + 1
        except (ValueError, OverflowError):
            raise LocalProtocolError(
                f"when must be a finite time on the driver's clock (or None), got {when!r}"
            ) from None
        old = item._timer_key
        if old is not None:
            if item._timer_wheel is not self:
                raise LocalProtocolError(
                    f"{item!r} is filed in another TimerWheel: unfile it there first"
                )
            if old <= key:
                return False
            self._take(item, old)
        else:
            item._timer_wheel = self
            self._count += 1
        item._timer_key = key
        bucket = self._buckets.get(key)
        if bucket is not None:
            bucket.append(item)  # a live bucket: next_wake is at or before it
            return False
        self._buckets[key] = [item]
        keys = self._keys
        # Taking the item from its old bucket may have moved next_wake later, but only
        # when that bucket was the earliest, and then key is earlier than it anyway.
        earlier = not keys or key < keys[0]
        heappush(keys, key)
        return earlier

    def unfile(self, item: T) -> None:
        """Take ``item`` out of the wheel; nothing happens when it is not filed.

        :attr:`next_wake` may move later; a driver may leave its timer armed (it
        fires early, :meth:`pop_due` returns nothing, and :attr:`next_wake` says
        when to wake next).
        """
        key = item._timer_key
        if key is not None and item._timer_wheel is self:
            item._timer_key = item._timer_wheel = None
            self._count -= 1
            self._take(item, key)

    def pop_due(self, now: float) -> list[T]:
        """Unfile and return every item whose bucket ended by ``now``, earliest
        bucket first (in filing order within a bucket).

        Each returned item was filed with a deadline at or before ``now``, and
        every item filed with a deadline at least ``resolution`` before ``now``
        is returned. Items filed while the driver handles them land in later
        buckets, for a later call. Raises
        :class:`~heartbeat_core.errors.LocalProtocolError`, changing nothing, when
        ``now`` is NaN.
        """
        keys = self._keys
        resolution = self._resolution
        if not keys or not keys[0] * resolution <= now:  # NaN comes here too
            if math.isnan(now):
                raise LocalProtocolError("now must be a time on the driver's clock, got nan")
            return []
        buckets = self._buckets
        due: list[T] = []
        while keys:
            key = keys[0]
            bucket = buckets.get(key)
            if bucket is not None:
                if key * resolution > now:
                    break
                del buckets[key]
                for item in bucket:
                    item._timer_key = item._timer_wheel = None
                self._count -= len(bucket)
                if due:
                    due += bucket
                else:
                    due = bucket  # no copy: the bucket left the wheel
            heappop(keys)
        return due

    def _take(self, item: T, key: int) -> None:
        """Remove ``item`` from bucket ``key``; keep the heap's top a live bucket."""
        buckets = self._buckets
        bucket = buckets[key]
        bucket.remove(item)
        if bucket:
            return
        del buckets[key]
        keys = self._keys
        if len(keys) > 2 * len(buckets) + _STALE_SLACK:
            keys[:] = buckets  # drop stale and duplicate keys
            heapify(keys)
        else:
            while keys and keys[0] not in buckets:
                heappop(keys)
