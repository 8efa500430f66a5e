"""Tasks on demand: what runs a server's ``on_message``.

With ``serve(handler)`` every open connection holds a task for its whole life, most of
it waiting in ``recv()``: about 2 KB per idle connection (the task, the handler's
coroutines, their places in asyncio's and the server's task sets). With
``serve(on_message=...)`` an idle connection holds no task. ``on_message(conn,
message)`` is called for each message, in order and one at a time. It starts at once,
in the read that brought the message, and runs until it first waits: most calls (an
echo, say: ``send()`` waits only while the transport's buffer is full) finish there and
need no task at all. A call that waits goes on in a task, which then delivers the
messages queued meanwhile and ends when the connection's queue is empty (the next
message starts at once again). A call that starts at once runs in a fresh copy of the
context, and goes on in it if it waits, as in a task of its own (the calls its task
then makes share that copy, as the calls of one delivery task always did). Messages
wait in the connection's receive queue and are taken from it as ``recv()`` takes them,
so ``max_queue``, ``max_queue_bytes`` and the pausing (and resuming) of reading apply
unchanged.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import types
from collections.abc import Awaitable, Callable, Coroutine, Generator
from contextvars import copy_context
from typing import TYPE_CHECKING, Any, TypeAlias

from heartbeat_core.errors import ConnectionClosedError

if TYPE_CHECKING:
    from heartbeat_asyncio.connection import Connection

__all__ = ["Delivery", "MessageHandler"]

logger: logging.Logger = logging.getLogger("heartbeat_asyncio")

#: ``async def on_message(conn, message)``: one received message (``str`` or ``bytes``).
MessageHandler: TypeAlias = "Callable[[Connection, str | bytes], Awaitable[None]]"

_FAILED = (1011, "internal error")  # the close of a connection whose on_message raised


class Delivery:
    """A server's deliveries to ``on_message``: a task per connection whose
    ``on_message`` is waiting, none for the others. A connection offers each message
    it reads to :meth:`at_once`, and calls the delivery when it queued one instead."""

    def __init__(self, on_message: MessageHandler, tasks: set[asyncio.Task[None]]) -> None:
        self._on_message = on_message
        self._tasks = tasks  # the server's: close() waits for them, then cancels them
        self._running: dict[Connection, asyncio.Task[None]] = {}

    def at_once(self, conn: Connection, message: str | bytes) -> bool:
        """``conn`` received ``message`` and none waits in its queue: unless a task of
        ``conn`` runs (False: queue it), ``on_message`` gets it now (True)."""
        if conn in self._running:
            return False
        self._call(conn, message)
        return True

    def __call__(self, conn: Connection, at_once: bool = True) -> None:
        """``conn`` queued a message: deliver what waits, at once unless a task of
        ``conn`` runs or ``at_once`` is false (reading is about to pause: the pause
        is carried out first, and a task delivers)."""
        if conn in self._running:
            return
        if not at_once:
            self._start(conn, self._deliver(conn, None))
            return
        while conn.queue and conn._delivery is self:
            if self._call(conn, conn._take()):
                return

    def _call(self, conn: Connection, message: str | bytes) -> bool:
        """``on_message(conn, message)`` now, in a fresh copy of the context, until it
        first waits. True when it waits: it goes on in a task, which delivers the
        messages that come meanwhile."""
        context = copy_context()
        rest = context.run(self._begin, conn, message)
        if rest is None:
            return False
        self._start(conn, self._deliver(conn, rest), context)
        return True

    def _start(
        self, conn: Connection, deliver: Coroutine[Any, Any, None], context: Any = None
    ) -> None:
        # (context.run: the task runs in a copy of the context on_message began in)
        create = conn._loop.create_task
        task = create(deliver) if context is None else context.run(create, deliver)
        self._running[conn] = task
        self._tasks.add(task)
        task.add_done_callback(functools.partial(self._done, conn))

    def _begin(self, conn: Connection, message: str | bytes) -> Awaitable[None] | None:
        """Call ``on_message(conn, message)`` and run it until it first waits: what is
        left of it, for a task to await, or None when it is over (returned, or failed
        and was dealt with)."""
        try:
            waiting = self._on_message(conn, message)
            if type(waiting) is not types.CoroutineType:
                _check_awaitable(waiting)
                return waiting  # (another kind of awaitable: a task awaits all of it)
            try:
                blocked_on = waiting.send(None)
            except StopIteration:
                return None
            return _rest(waiting, blocked_on)
        except asyncio.CancelledError:
            return None  # (as a task that on_message cancelled: nothing to report)
        except Exception as exc:
            self._failed(conn, exc)
            return None

    async def _deliver(self, conn: Connection, rest: Awaitable[None] | None) -> None:
        try:
            while True:
                if rest is None:
                    if not conn.queue or conn._delivery is not self:
                        return
                    # (as recv() takes it: reading may resume)
                    rest = self._begin(conn, conn._take())
                    continue
                try:
                    await rest
                except Exception as exc:
                    self._failed(conn, exc)
                rest = None
        finally:
            # At once, not in a done callback: a message queued from now on must start
            # again.
            del self._running[conn]

    def _failed(self, conn: Connection, exc: Exception) -> None:
        """``on_message`` raised ``exc``. The peer going away mid-send is no error; any
        other exception is logged and closes the connection with 1011, and nothing
        more is delivered to it."""
        if isinstance(exc, ConnectionClosedError):
            logger.debug("%r: on_message stopped: %s", conn, exc)
            return
        logger.error("on_message failed for %r; closing with 1011", conn, exc_info=exc)
        conn._delivery = None  # deliver nothing more to it
        conn.close_nowait(*_FAILED)

    def _done(self, conn: Connection, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if self._running.get(conn) is task:  # cancelled before it ever ran
            del self._running[conn]


def _check_awaitable(waiting: object) -> None:
    if not inspect.isawaitable(waiting):
        raise TypeError(
            f"on_message returned {type(waiting).__name__}, not an awaitable: "
            "define it with async def"
        )


@types.coroutine
def _rest(coro: Coroutine[Any, Any, None], blocked_on: Any) -> Generator[Any, Any, None]:
    """What is left of ``coro``, which was run by hand until it yielded ``blocked_on``
    (the future it waits for, or None: it gave way once). Awaited in a task, it hands
    ``blocked_on`` to the task, and goes on where ``coro`` stopped each time the task
    resumes it, with what the task sends or throws (a cancellation, say)."""
    while True:
        try:
            sent = yield blocked_on
        except GeneratorExit:
            coro.close()
            raise
        except BaseException as exc:
            try:
                blocked_on = coro.throw(exc)
            except StopIteration:
                return
        else:
            try:
                blocked_on = coro.send(sent)
            except StopIteration:
                return
