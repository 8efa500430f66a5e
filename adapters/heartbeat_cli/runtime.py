"""How a ``heartbeat`` command runs on its event loop: stopping on SIGINT or SIGTERM,
and waiting for the first of several things."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Awaitable
from typing import Any

__all__ = ["first_completed", "install_stop"]


def install_stop(loop: asyncio.AbstractEventLoop, stop: asyncio.Event, got: list[str]) -> None:
    """SIGINT and SIGTERM set ``stop`` (the signal's name goes to ``got``)."""
    for sig in (signal.SIGINT, signal.SIGTERM):

        def handler(sig: signal.Signals = sig) -> None:
            got.append(sig.name)
            stop.set()

        try:
            loop.add_signal_handler(sig, handler)
        except (NotImplementedError, RuntimeError):  # pragma: no cover - not on POSIX
            signal.signal(sig, lambda *_: loop.call_soon_threadsafe(handler))


async def first_completed(*awaitables: Awaitable[Any]) -> None:
    """Wait until the first of ``awaitables`` completes; cancel the rest."""
    tasks = [asyncio.ensure_future(a) for a in awaitables]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            if not task.done():
                task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
