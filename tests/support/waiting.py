"""Bounded polling, for conditions that have no event to wait on.

``wait_until`` (and its asyncio twin ``async_wait_until``) polls a cheap predicate until it
returns something truthy and returns that value; when ``timeout`` runs out it raises
``AssertionError`` saying what it waited for. ``poll`` is the same loop without the
failure, for the rare wait whose timeout is the expected outcome ("nothing happens for
this long").
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TypeVar

__all__ = ["async_wait_until", "poll", "wait_until"]

T = TypeVar("T")

#: What a failed wait says it waited for: a text, or a function called at the timeout
#: (to report the state at that moment, e.g. ``lambda: f"... got {server.counts()}"``).
What = str | Callable[[], object]


def _timed_out(timeout: float, what: What) -> AssertionError:
    described = what() if callable(what) else what
    return AssertionError(f"timed out after {timeout:g} s waiting for {described}")


def poll(predicate: Callable[[], T], timeout: float, *, interval: float = 0.01) -> T:
    """Call ``predicate`` every ``interval`` seconds until it returns something truthy, for
    at most ``timeout`` seconds; return its last value (falsy when time ran out). Never
    raises on timeout."""
    end = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() >= end:
            return value
        time.sleep(interval)


def wait_until(
    predicate: Callable[[], T],
    timeout: float = 5.0,
    what: What = "the condition",
    *,
    interval: float = 0.01,
) -> T:
    """Call ``predicate`` every ``interval`` seconds until it returns something truthy, and
    return that value; ``AssertionError`` ("timed out after ... waiting for ``what``")
    when ``timeout`` seconds pass first."""
    value = poll(predicate, timeout, interval=interval)
    if not value:
        raise _timed_out(timeout, what)
    return value


async def async_wait_until(
    predicate: Callable[[], T],
    timeout: float = 5.0,
    what: What = "the condition",
    *,
    interval: float = 0.01,
) -> T:
    """``wait_until`` inside a running event loop: sleeps with ``asyncio.sleep`` (the loop
    keeps running) and measures time with the loop's clock."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if loop.time() >= end:
            raise _timed_out(timeout, what)
        await asyncio.sleep(interval)
