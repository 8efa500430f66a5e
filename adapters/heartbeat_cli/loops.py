"""``heartbeat serve --loop auto|asyncio|uvloop``: which event loop a command runs on.

``asyncio`` is the standard library's loop; ``uvloop`` needs the ``uvloop`` extra
(``pip install 'heartbeat-core[uvloop]'``); ``auto`` takes uvloop when it can be
imported, else asyncio. The drivers work on any asyncio-compatible loop and never
look at the loop's class: this module only picks the factory and runs a coroutine
on a loop it makes.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Coroutine
from typing import Any, TypeAlias, TypeVar

__all__ = ["LOOPS", "LoopFactory", "LoopUnavailable", "loop_factory", "run"]

T = TypeVar("T")
LoopFactory: TypeAlias = Callable[[], asyncio.AbstractEventLoop]

#: The values of ``--loop``.
LOOPS: tuple[str, ...] = ("auto", "asyncio", "uvloop")


class LoopUnavailable(Exception):
    """``--loop uvloop`` where uvloop cannot be imported (the message says what to do)."""


def loop_factory(choice: str) -> tuple[str, LoopFactory]:
    """``(name, factory)`` for ``--loop choice``: the loop actually chosen (``auto``
    resolved) and what makes one. Raises :class:`LoopUnavailable` for ``uvloop`` when it
    is not installed, ``ValueError`` for a name not in :data:`LOOPS`."""
    if choice not in LOOPS:
        raise ValueError(f"unknown loop {choice!r}; expected one of {', '.join(LOOPS)}")
    if choice != "asyncio":
        try:
            import uvloop
        except ImportError:
            if choice == "uvloop":
                raise LoopUnavailable(
                    "--loop uvloop: uvloop is not installed "
                    "(pip install 'heartbeat-core[uvloop]', or --loop asyncio)"
                ) from None
        else:
            return "uvloop", uvloop.new_event_loop
    return "asyncio", asyncio.new_event_loop


def run(main: Coroutine[Any, Any, T], factory: LoopFactory) -> T:
    """``asyncio.run(main)`` on a loop that ``factory()`` makes."""
    if sys.version_info >= (3, 11):
        with asyncio.Runner(loop_factory=factory) as runner:
            return runner.run(main)
    loop = factory()  # pragma: no cover - Python 3.10 (asyncio.Runner came in 3.11)
    try:  # pragma: no cover
        asyncio.set_event_loop(loop)
        return loop.run_until_complete(main)
    finally:  # pragma: no cover
        pending = asyncio.all_tasks(loop)
        for task in pending:
            task.cancel()
        loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        loop.run_until_complete(loop.shutdown_asyncgens())
        asyncio.set_event_loop(None)
        loop.close()
