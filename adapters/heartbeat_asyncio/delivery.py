"""Tasks on demand: what runs a server's ``on_message``.

With ``serve(handler)`` every open connection holds a task for its whole life, most of
it waiting in ``recv()``: about 2 KB per idle connection (the task, the handler's
coroutines, their places in asyncio's and the server's task sets). With
``serve(on_message=...)`` an idle connection holds no task: when a message is queued
for a connection that no delivery task serves, one starts; it awaits
``on_message(conn, message)`` for each waiting message, in order and one at a time,
and ends when the connection's queue is empty (the next message starts another).
Messages wait in the connection's receive queue and are taken from it as ``recv()``
takes them, so ``max_queue``, ``max_queue_bytes`` and the pausing (and resuming) of
reading apply unchanged.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeAlias

from heartbeat_core.errors import ConnectionClosedError

if TYPE_CHECKING:
    from heartbeat_asyncio.connection import Connection

__all__ = ["Delivery", "MessageHandler"]

logger: logging.Logger = logging.getLogger("heartbeat_asyncio")

#: ``async def on_message(conn, message)``: one received message (``str`` or ``bytes``).
MessageHandler: TypeAlias = "Callable[[Connection, str | bytes], Awaitable[None]]"

_FAILED = (1011, "internal error")  # the close of a connection whose on_message raised


class Delivery:
    """A server's deliveries to ``on_message``: a task per connection that has messages
    waiting, none for the others. Called by a connection each time it queues a message."""

    def __init__(self, on_message: MessageHandler, tasks: set[asyncio.Task[None]]) -> None:
        self._on_message = on_message
        self._tasks = tasks  # the server's: close() waits for them, then cancels them
        self._running: dict[Connection, asyncio.Task[None]] = {}

    def __call__(self, conn: Connection) -> None:
        """``conn`` queued a message: start its delivery task unless one runs."""
        if conn in self._running:
            return
        task = conn._loop.create_task(self._deliver(conn))
        self._running[conn] = task
        self._tasks.add(task)
        task.add_done_callback(functools.partial(self._done, conn))

    async def _deliver(self, conn: Connection) -> None:
        try:
            while conn.queue:
                message = conn._take()  # (as recv() takes it: reading may resume)
                try:
                    waiting = self._on_message(conn, message)
                    if not inspect.isawaitable(waiting):
                        raise TypeError(
                            f"on_message returned {type(waiting).__name__}, not an awaitable: "
                            "define it with async def"
                        )
                    await waiting
                except ConnectionClosedError as exc:  # the peer went away mid-send
                    logger.debug("%r: on_message stopped: %s", conn, exc)
                except Exception:
                    logger.exception("on_message failed for %r; closing with 1011", conn)
                    conn._delivery = None  # deliver nothing more to it
                    conn.close_nowait(*_FAILED)
                    return
        finally:
            # At once, not in a done callback: a message queued from now on must start
            # a new task.
            del self._running[conn]

    def _done(self, conn: Connection, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if self._running.get(conn) is task:  # cancelled before it ever ran
            del self._running[conn]
