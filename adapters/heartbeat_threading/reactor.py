"""The I/O thread: one ``selectors`` loop over non-blocking sockets, one timer wheel.

Other threads never touch a socket or a :class:`~heartbeat_core.HeartbeatConnection`;
they hand the loop a callable with :meth:`Reactor.call_soon`, which wakes it through
a socket pair. Each iteration reads ready input first, then runs the queued calls,
then hands the timer to every connection that is due, so input that arrived while
we were late is seen before any deadline is judged.

Every connection files its next wake-up (its core's ``wake_at``) in one
:class:`~heartbeat_core.timers.TimerWheel`; the wheel says how long ``select()``
may sleep and which connections are due. Each due connection reads the clock
itself (RTTs start there). The loop compares no times.
"""

from __future__ import annotations

import contextlib
import logging
import selectors
import socket
import threading
import time
from collections import deque
from collections.abc import Callable

from heartbeat_core.driver import DriverBase
from heartbeat_core.timers import TimerItem, TimerWheel

__all__ = ["READ_SIZE", "Reactor", "TimerTask"]

logger: logging.Logger = logging.getLogger("heartbeat_threading")

#: Bytes read per ``recv_into``; one buffer per loop, shared by all its sockets.
READ_SIZE = 256 * 1024


class TimerTask(TimerItem):
    """Something else than a connection the wheel wakes: ``fn()`` runs when it is due
    (e.g. a server's accept loop resuming after a pause)."""

    __slots__ = ("_fn",)

    def __init__(self, fn: Callable[[], None]) -> None:
        super().__init__()
        self._fn = fn

    def _timer_due(self) -> None:
        self._fn()


class Reactor:
    """One I/O thread. Sockets are registered with ``data`` = a ``callback(mask)``."""

    def __init__(self, name: str) -> None:
        self.selector: selectors.BaseSelector = selectors.DefaultSelector()
        self.read_buffer: bytearray = bytearray(READ_SIZE)
        self.read_view: memoryview = memoryview(self.read_buffer)
        #: The connections' wake-ups. Touched on the I/O thread only (or before it starts).
        self.wheel: TimerWheel[DriverBase | TimerTask] = TimerWheel()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self.selector.register(self._wake_r, selectors.EVENT_READ, self._drain_wake)
        self._lock = threading.Lock()
        self._calls: deque[Callable[[], None]] = deque()
        self._woken = False
        self._stopping = False
        self._finished = False
        self.thread: threading.Thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self.thread.start()

    def close(self) -> None:
        """Release a reactor whose thread never started (its loop releases its own)."""
        with self._lock:
            self._finished = True
        self.selector.close()
        self._wake_r.close()
        self._wake_w.close()

    def in_loop(self) -> bool:
        """True when called from the I/O thread itself."""
        return threading.current_thread() is self.thread

    def call_soon(self, fn: Callable[[], None]) -> bool:
        """Run ``fn`` on the I/O thread soon (thread-safe). False once the loop has ended."""
        with self._lock:
            if self._finished:
                return False
            self._calls.append(fn)
            if self._woken:
                return True
            self._woken = True
        with contextlib.suppress(OSError):  # full: a wake-up is pending anyway
            self._wake_w.send(b"\0")
        return True

    def stop_soon(self) -> None:
        """Ask the loop to end after this iteration (from the I/O thread)."""
        self._stopping = True

    def stop(self) -> None:
        """End the loop and join its thread (from any other thread)."""
        self.call_soon(self.stop_soon)
        if self.thread.is_alive() and not self.in_loop():
            self.thread.join()

    def file(self, client: DriverBase | TimerTask, when: float | None) -> None:
        """Wake ``client`` at or after ``when`` (``None``: no timer needed). I/O thread only."""
        self.wheel.file(client, when)  # select() sleeps until wheel.timeout(): no re-arming

    def unfile(self, client: DriverBase | TimerTask) -> None:
        self.wheel.unfile(client)

    # ------------------------------------------------------------ the loop

    def _drain_wake(self, mask: int) -> None:
        try:
            while self._wake_r.recv(4096):
                pass
        except BlockingIOError:
            pass

    def _run_calls(self) -> None:
        with self._lock:
            calls, self._calls = self._calls, deque()
            self._woken = False
        for fn in calls:
            try:
                fn()
            except Exception:
                logger.exception("heartbeat_threading: error in the I/O thread")

    def _run(self) -> None:
        wheel, clock = self.wheel, time.monotonic
        try:
            while not self._stopping:
                # (self.selector.select, looked up each time: a test may wrap it)
                for key, mask in self.selector.select(wheel.timeout(clock())):
                    try:
                        key.data(mask)
                    except Exception:
                        logger.exception("heartbeat_threading: error handling socket I/O")
                self._run_calls()
                for client in wheel.pop_due(clock()):
                    try:
                        client._timer_due()  # (each reads the clock itself: RTTs start there)
                    except Exception:
                        logger.exception("heartbeat_threading: timer handling failed")
        finally:
            with self._lock:
                self._finished = True
            self._run_calls()
            self.selector.close()
            self._wake_r.close()
            self._wake_w.close()
