"""What the connections of one event loop share: one read buffer and one timer.

Every connection of a loop reads into the same preallocated buffer
(:class:`asyncio.BufferedProtocol`: no 256 KiB allocation per read) and files its
next wake-up in one :class:`~heartbeat_core.timers.TimerWheel`, served by a single
``loop.call_later`` handle. The wheel decides which connections are due and when the
loop must wake next; this module only carries that out. Nothing is stored on the
loop object, and nothing here depends on the loop's class: any asyncio-compatible
loop (uvloop included) works.

Times are :func:`time.monotonic` (:data:`clock`), not ``loop.time()``: uvloop's is
libuv's millisecond clock, read once per loop iteration, which made every loopback
RTT 0.0. The timer is armed with a delay, so the loop's own timeline never matters.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections.abc import Callable
from math import ceil

from heartbeat_core.driver import DriverBase
from heartbeat_core.timers import TimerWheel

__all__ = ["READ_BUFFER_SIZE", "LoopShare", "clock", "share_for"]

logger: logging.Logger = logging.getLogger("heartbeat_asyncio")

#: The drivers' clock (every ``now`` the asyncio drivers hand the core).
clock: Callable[[], float] = time.monotonic

#: Size of the read buffer shared by all connections of one event loop.
READ_BUFFER_SIZE = 256 * 1024


class LoopShare:
    """One loop's read buffer and timer, shared by its connections (see :func:`share_for`)."""

    __slots__ = ("__weakref__", "_firing", "_handle", "_loop", "buffer", "view", "wheel")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self.wheel: TimerWheel[DriverBase] = TimerWheel()
        self._handle: asyncio.TimerHandle | None = None
        self._firing = False
        self.buffer: bytearray = bytearray(READ_BUFFER_SIZE)
        self.view: memoryview = memoryview(self.buffer)

    def file(self, conn: DriverBase, when: float | None) -> None:
        """File ``conn`` to be woken at ``when`` (``None``: no timer needed)."""
        if self.wheel.file(conn, when):
            self.rearm()

    def rearm(self) -> None:
        """The wheel's next wake-up moved earlier (``wheel.file`` said so): re-arm the
        loop's timer, unless the due connections are being handled (then it is re-armed
        after them)."""
        if not self._firing:
            self._arm()

    def unfile(self, conn: DriverBase) -> None:
        self.wheel.unfile(conn)

    def _arm(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
        wait = self.wheel.timeout(clock())
        # In whole milliseconds, rounded up: uvloop's timers count whole milliseconds and
        # run one due in less than half of one at once, which made the loop fire, find
        # nothing due and re-arm, over and over, until the wheel's bucket ended.
        self._handle = (
            None if wait is None else self._loop.call_later(ceil(wait * 1000) / 1000, self._fire)
        )

    def _fire(self) -> None:
        self._handle = None
        self._firing = True
        try:
            for conn in self.wheel.pop_due(clock()):
                try:
                    conn._timer_due()  # (each reads the clock itself: RTTs start there)
                except Exception:
                    logger.exception("timer handling failed for %r", conn)
        finally:
            self._firing = False
            self._arm()


# Keyed by id(loop): a share holds its loop, so the id cannot be reused while the share
# lives, and it lives exactly as long as a connection of that loop holds it.
_shares: weakref.WeakValueDictionary[int, LoopShare] = weakref.WeakValueDictionary()


def share_for(loop: asyncio.AbstractEventLoop) -> LoopShare:
    """The share of ``loop``, made at its first connection."""
    share = _shares.get(id(loop))
    if share is None or share._loop is not loop:
        share = _shares[id(loop)] = LoopShare(loop)
    return share
