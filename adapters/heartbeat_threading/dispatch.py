"""Handler threads on demand: what runs a server's ``on_message``.

With ``serve(handler)`` every open connection holds a thread for its whole life,
even while it waits for a message, and a waiting thread costs about 16 KB
(two pages of C stack, a page of Python frames, the thread state). With
``serve(on_message=...)`` an idle connection holds no thread: when the I/O
thread delivers a message to a connection that is not already scheduled, the
connection is handed to a :class:`Dispatcher`, whose worker threads (started
as needed, at most ``max_workers``) call ``on_message(conn, message)`` for
each waiting message, in order and one at a time per connection. A worker
serves at most :data:`BATCH` messages of one connection before the others in
line get their turn. Messages wait in the connection's queue as they do for
``recv()``, so ``max_queue`` and the pausing of reading apply unchanged.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeAlias

from heartbeat_core.errors import ConfigError, ConnectionClosedError
from heartbeat_core.pacing import RateLimit
from heartbeat_core.policy import check_application

if TYPE_CHECKING:
    from heartbeat_threading.connection import Connection

__all__ = [
    "BATCH", "DEFAULT_MAX_WORKERS", "Dispatcher", "MessageHandler", "check_max_workers",
    "make_dispatcher",
]  # fmt: skip

logger: logging.Logger = logging.getLogger("heartbeat_threading")

#: ``on_message(conn, message)``: one received message (``str`` or ``bytes``).
MessageHandler: TypeAlias = "Callable[[Connection, str | bytes], None]"

#: Worker threads at most, by default (as :class:`concurrent.futures.ThreadPoolExecutor`).
DEFAULT_MAX_WORKERS: int = min(32, (os.cpu_count() or 1) + 4)

_FAILED = (1011, "internal error")  # the close of a connection whose on_message raised

#: Messages of one connection a worker delivers before serving the next connection.
BATCH = 16


def check_max_workers(max_workers: int) -> int:
    """Raise :class:`ConfigError` unless ``max_workers`` is a positive int."""
    if isinstance(max_workers, bool) or not isinstance(max_workers, int) or max_workers < 1:
        raise ConfigError(
            f"max_workers must be a positive int (threads), got {max_workers!r}: "
            f"pass e.g. the default {DEFAULT_MAX_WORKERS}"
        )
    return max_workers


def make_dispatcher(
    handler: object, on_message: MessageHandler | None, max_workers: int
) -> Dispatcher | None:
    """``serve()``'s choice: ``None`` for a thread per connection running ``handler``,
    or a :class:`Dispatcher` for ``on_message``. Raises :class:`ConfigError` unless
    exactly one of them is given and callable, or if ``max_workers`` is not a positive int."""
    check_max_workers(max_workers)
    check_application(
        handler, on_message,
        handler_runs="a thread per connection", on_message_runs="worker threads", kind="def",
    )  # fmt: skip
    return None if on_message is None else Dispatcher(on_message, max_workers)


class Dispatcher:
    """A pool of worker threads delivering messages to ``on_message``. Thread-safe."""

    def __init__(self, on_message: MessageHandler, max_workers: int) -> None:
        self._on_message = on_message
        self._max_workers = check_max_workers(max_workers)
        self._ready: queue.SimpleQueue[Connection | None] = queue.SimpleQueue()
        self._cond = threading.Condition()
        # Under _cond: the workers, how many wait for work, connections queued but not
        # yet taken, and connections scheduled (queued or being served).
        self._workers: list[threading.Thread] = []
        self._idle = 0
        self._queued = 0
        self._scheduled = 0
        self._closed = False
        self._serving = threading.local()  # .conn: the connection this worker serves
        self._no_thread_log = RateLimit(1.0)

    def schedule(self, conn: Connection) -> None:
        """``conn`` has messages and no worker serves it (it said so, under its lock)."""
        with self._cond:
            self._scheduled += 1
        self._enqueue(conn)

    def close(self, timeout: float) -> None:
        """Wait at most ``timeout`` seconds for the scheduled connections to be served,
        then end the workers (every connection is released by now)."""
        mine = getattr(self._serving, "conn", None) is not None  # close() in on_message
        me = threading.current_thread()
        with self._cond:
            if not self._cond.wait_for(lambda: self._scheduled <= mine, timeout):
                logger.warning(
                    "on_message did not return in time: the messages of %d connections "
                    "were not delivered", self._scheduled - mine,
                )  # fmt: skip
            self._closed = True  # no new workers
            for _ in self._workers:
                self._ready.put(None)
            if not self._cond.wait_for(lambda: not set(self._workers) - {me}, 1.0):
                logger.warning("worker threads %s did not return after close()", self._workers)

    # --------------------------------------------------------------- internal

    def _enqueue(self, conn: Connection) -> None:
        with self._cond:
            self._queued += 1
            start = (
                self._queued > self._idle
                and len(self._workers) < self._max_workers
                and not self._closed
            )
            if start:
                thread = threading.Thread(
                    target=self._work, name=f"heartbeat-worker-{len(self._workers)}", daemon=True
                )
                self._workers.append(thread)
        self._ready.put(conn)
        if start:
            try:
                thread.start()
            except RuntimeError as exc:  # "can't start new thread": the others serve on
                with self._cond:
                    self._workers.remove(thread)
                    held = self._no_thread_log.allow(time.monotonic())
                if held is not None:
                    logger.warning(
                        "cannot start a worker thread (%s), %d running (and %d more failures "
                        "since the last report); raise the task limit (ulimit -u, TasksMax)",
                        exc, len(self._workers), held,
                    )  # fmt: skip

    def _work(self) -> None:
        while True:
            with self._cond:
                self._idle += 1
            conn = self._ready.get()
            with self._cond:
                self._idle -= 1
                if conn is not None:
                    self._queued -= 1
            if conn is None:
                with self._cond:
                    self._workers.remove(threading.current_thread())
                    self._cond.notify_all()
                return
            self._serving.conn = conn
            try:
                more = self._serve(conn)
            finally:
                self._serving.conn = None
            if more:
                self._enqueue(conn)  # its turn again after the others in line
            else:
                with self._cond:
                    self._scheduled -= 1
                    self._cond.notify_all()
            del conn  # (kept until the next get(), it would keep the connection)

    def _serve(self, conn: Connection) -> bool:
        """Deliver up to :data:`BATCH` messages; True if ``conn`` has more."""
        for _ in range(BATCH):
            message = _take(conn)
            if message is None:
                return False
            try:
                self._on_message(conn, message)
            except ConnectionClosedError as exc:  # the peer went away mid-send: a normal end
                logger.debug("%s: on_message stopped: %s", conn, exc)
            except Exception:
                logger.exception("%s: on_message failed; closing with 1011", conn)
                with conn._cond:  # deliver nothing more
                    conn._dispatch = None
                    conn._scheduled = False
                conn._reactor.call_soon(lambda: conn._io_call(conn.core.close, *_FAILED))
                return False
        return True


def _take(conn: Connection) -> str | bytes | None:
    """The next message for a worker, or None: then ``conn`` is no longer scheduled
    (its next delivery schedules it again)."""
    with conn._cond:
        if not conn.queue or conn._dispatch is None:
            conn._scheduled = False
            return None
        data, resume = conn.queue.pop()
    if resume:  # as recv() does: reading resumes once half the queue is taken
        conn._reactor.call_soon(conn._io_resume)
    return data
