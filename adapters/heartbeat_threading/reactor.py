"""The I/O thread: one ``selectors`` loop over non-blocking sockets, one heap of timers.

Other threads never touch a socket or a :class:`~heartbeat_core.HeartbeatConnection`;
they hand the loop a callable with :meth:`Reactor.call_soon`, which wakes it through
a socket pair. Each iteration reads ready input first, then runs the queued calls,
then delivers the timers that are due, so input that arrived while we were late is
seen before any deadline is judged.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import logging
import selectors
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Protocol

__all__ = ["Reactor", "TimerOwner"]

log = logging.getLogger("heartbeat_threading")

#: Bytes read per ``recv_into``; one buffer per loop, shared by all its sockets.
READ_SIZE = 256 * 1024


class TimerOwner(Protocol):
    """What the timer heap needs from a connection."""

    _armed: float | None
    _done: bool

    def _io_deadline(self) -> float | None: ...

    def _io_timer(self, now: float) -> None: ...


class Reactor:
    """One I/O thread. Sockets are registered with ``data`` = a ``callback(mask)``."""

    def __init__(self, name: str) -> None:
        self.selector = selectors.DefaultSelector()
        self.read_buffer = bytearray(READ_SIZE)
        self.read_view = memoryview(self.read_buffer)
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self.selector.register(self._wake_r, selectors.EVENT_READ, self._drain_wake)
        self._lock = threading.Lock()
        self._calls: deque[Callable[[], None]] = deque()
        self._woken = False
        self._heap: list[tuple[float, int, TimerOwner]] = []
        self._order = itertools.count()
        self._stopping = False
        self._finished = False
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self.thread.start()

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

    def arm(self, owner: TimerOwner) -> None:
        """Make sure a heap entry exists at or before ``owner``'s deadline.

        Entries are never removed: one that fires early is harmless (the core
        ignores an early timer), so a deadline that moves later costs nothing.
        """
        deadline = owner._io_deadline()
        if deadline is not None and (owner._armed is None or deadline < owner._armed):
            owner._armed = deadline
            heapq.heappush(self._heap, (deadline, next(self._order), owner))

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
                log.exception("heartbeat_threading: error in the I/O thread")

    def _fire_timers(self) -> None:
        heap = self._heap
        clock = time.monotonic
        while heap and heap[0][0] <= (now := clock()):  # read per entry: RTTs start here
            deadline, _, owner = heapq.heappop(heap)
            if owner._armed == deadline:
                owner._armed = None
            if not owner._done:
                try:
                    owner._io_timer(max(deadline, now))
                except Exception:
                    log.exception("heartbeat_threading: error delivering a timer")
                if not owner._done:
                    self.arm(owner)

    def _run(self) -> None:
        try:
            while not self._stopping:
                timeout: float | None = None
                if self._heap:
                    timeout = max(0.0, self._heap[0][0] - time.monotonic())
                for key, mask in self.selector.select(timeout):
                    try:
                        key.data(mask)
                    except Exception:
                        log.exception("heartbeat_threading: error handling socket I/O")
                self._run_calls()
                self._fire_timers()
        finally:
            with self._lock:
                self._finished = True
            self._run_calls()
            self.selector.close()
            self._wake_r.close()
            self._wake_w.close()
            self._heap.clear()
