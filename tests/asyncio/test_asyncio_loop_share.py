"""The loop share: one read buffer and one timer per loop, nothing stored on the loop.

Regressions of d061d09: the timer wheel set an attribute on the loop object (and
kept a second registry for loops without ``__dict__``), and it read the clock
once per batch of due connections, so a heartbeat sent late in a big batch was
stamped with an early time and its RTT overstated.
"""

from __future__ import annotations

import asyncio
import gc
from typing import Any

from heartbeat_asyncio.loop import LoopShare, clock, share_for

from heartbeat_core.timers import TimerItem


class FakeLoop:
    """Just enough of a loop: a clock that moves 10 ms per reading, and call_later."""

    __slots__ = ("calls", "now")  # no __dict__: nothing can be stored on it

    def __init__(self) -> None:
        self.now = 100.0
        self.calls: list[tuple[float, Any]] = []

    def time(self) -> float:
        self.now += 0.01
        return self.now

    def call_later(self, delay: float, callback: Any) -> Any:
        self.calls.append((delay, callback))
        return self  # (a handle: only cancel() is ever called on it)

    def cancel(self) -> None:
        pass


class Due(TimerItem):
    """A connection, as far as the share is concerned (a TimerItem, as DriverBase is)."""

    def __init__(self, loop: FakeLoop, seen: list[float]) -> None:
        super().__init__()
        self._loop, self._seen = loop, seen

    def _timer_due(self) -> None:
        self._seen.append(self._loop.time())  # what the connection stamps its ping with


def test_each_due_connection_reads_the_clock_when_it_is_handled() -> None:
    loop = FakeLoop()
    share = LoopShare(loop)  # type: ignore[arg-type]
    seen: list[float] = []
    conns = [Due(loop, seen) for _ in range(5)]
    for conn in conns:
        share.file(conn, clock() - 0.01)  # type: ignore[arg-type]
    ((delay, fire),) = loop.calls[-1:]
    assert delay <= 0.001  # armed for the wheel's next wake-up, as a delay on the drivers' clock
    fire()
    assert len(seen) == 5
    assert seen == sorted(set(seen))  # five different times: each read its own


def test_a_share_belongs_to_its_loop_and_is_not_stored_on_it() -> None:
    loop = asyncio.new_event_loop()
    try:
        share = share_for(loop)
        assert share_for(loop) is share
        assert not any(isinstance(v, LoopShare) for v in vars(loop).values())
        other = asyncio.new_event_loop()
        try:
            assert share_for(other) is not share
        finally:
            other.close()
    finally:
        loop.close()
    del share
    gc.collect()


def test_the_timer_is_armed_in_whole_milliseconds_never_less_than_one_if_not_due() -> None:
    # Regression: a wake-up due in under half a millisecond was armed as such, which
    # uvloop runs at once (it counts whole milliseconds): the loop fired, found nothing
    # due and re-armed, over and over, until the wheel's bucket ended.
    seen: list[float] = []
    for ahead in (0.0002, 0.0004, 0.0013, 0.25, 2.0):
        loop = FakeLoop()
        share = LoopShare(loop)  # type: ignore[arg-type]
        share.file(Due(loop, seen), clock() + ahead)  # type: ignore[arg-type]
        ((delay, _),) = loop.calls
        assert delay >= 0.001 and round(delay * 1000) == delay * 1000, (ahead, delay)
        assert delay <= ahead + 0.002, (ahead, delay)  # the next millisecond, no later
    loop = FakeLoop()
    share = LoopShare(loop)  # type: ignore[arg-type]
    share.file(Due(loop, seen), clock() - 1.0)  # type: ignore[arg-type]
    assert loop.calls == [(0, share._fire)]  # due already: at once
