"""Output that never blocks the event loop: lines written by a thread of their own.

A ``heartbeat serve`` writes a line per heartbeat answered; when nobody reads its
stdout (a pipe whose reader stalled, a terminal paused with Ctrl-S) a plain
``write()`` blocks, and with it every heartbeat of every connection. A
:class:`LineSink` takes the line and returns at once: a writer thread writes it to
the file descriptor. At most ``max_lines`` lines wait; past that, lines are dropped,
counted (:attr:`LineSink.dropped`) and reported by a line of their own, in their
place, once the stream takes lines again. :class:`SinkHandler` does the same for
``logging`` records.

Several processes may share one stream (``heartbeat serve --workers N``): a sink
made with ``shared=True`` writes whole lines only, in ``write()`` calls of at most
``PIPE_BUF`` bytes (4096 on Linux), which POSIX makes atomic on a pipe (and Linux
on a file), so that one process's line is never cut by another's. (A line longer
than that is written alone, in as many calls as it takes.)
"""

from __future__ import annotations

import collections
import contextlib
import logging
import os
import select
import threading
import time
from collections.abc import Callable
from typing import TextIO

__all__ = ["LineSink", "SinkHandler"]


#: After a write, the writer lets lines gather this long (seconds) before the next one.
_GATHER = 0.005


class _Dropped:
    """Where lines were dropped, and how many."""

    __slots__ = ("count",)

    def __init__(self) -> None:
        self.count = 1


def _default_notice(count: int) -> str:
    return f"({count} lines dropped: the output was not read fast enough)"


class LineSink:
    """Lines for ``stream``, written in the background (see the module's docstring).

    ``notice(count)`` is the line that stands for ``count`` dropped lines.
    """

    def __init__(
        self,
        stream: TextIO,
        *,
        max_lines: int = 1000,
        notice: Callable[[int], str] = _default_notice,
        shared: bool = False,
    ) -> None:
        self._stream = stream
        self._shared = shared
        try:
            self._fd: int | None = stream.fileno()
        except (AttributeError, OSError, ValueError):  # e.g. io.StringIO: write to it
            self._fd = None
        self._max = max_lines
        self._notice = notice
        self._queue: collections.deque[str | _Dropped] = collections.deque()
        self._cond = threading.Condition()
        self._idle = False  # the writer waits for a line
        self._closed = False
        self._broken = False
        #: Lines dropped so far because the stream did not keep up.
        self.dropped: int = 0
        self._thread = threading.Thread(target=self._run, name="heartbeat-output", daemon=True)
        self._thread.start()

    def put(self, line: str) -> None:
        """Queue ``line`` (no newline) for writing; never blocks."""
        with self._cond:
            if self._closed or self._broken:
                return  # (closed: the command is ending; broken: nobody reads)
            queue = self._queue
            if len(queue) >= self._max:
                self.dropped += 1
                last = queue[-1]
                if isinstance(last, _Dropped):
                    last.count += 1
                else:
                    queue.append(_Dropped())  # (one entry over the bound: its place)
                return
            queue.append(line)
            if self._idle:
                self._idle = False
                self._cond.notify()

    def close(self, timeout: float = 1.0) -> bool:
        """Write what waits, for at most ``timeout`` seconds; True if everything was
        written. Later lines are ignored."""
        with self._cond:
            self._closed = True
            self._cond.notify()
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not (self._queue or self._closed):
                    self._idle = True
                    self._cond.wait()
                self._idle = False
                if not self._queue:
                    return
                batch, self._queue = self._queue, collections.deque()
            lines = [
                (self._notice(item.count) if isinstance(item, _Dropped) else item) + "\n"
                for item in batch
            ]
            if not all(self._write(text) for text in self._chunks(lines)):
                with self._cond:
                    self._broken = True
                    self._queue.clear()
                return
            time.sleep(_GATHER)  # lines arriving meanwhile make one write, not one each

    def _chunks(self, lines: list[str]) -> list[str]:
        """``lines`` in one write, or (``shared``) in writes of whole lines, each at most
        ``PIPE_BUF`` bytes where the lines allow it."""
        if not self._shared:
            return ["".join(lines)]
        chunks: list[str] = []
        size, start = 0, 0
        for i, line in enumerate(lines):
            length = len(line.encode("utf-8", "replace")) if not line.isascii() else len(line)
            if size and size + length > select.PIPE_BUF:
                chunks.append("".join(lines[start:i]))
                size, start = 0, i
            size += length
        chunks.append("".join(lines[start:]))
        return chunks

    def _write(self, text: str) -> bool:
        """False once the reader went away (e.g. ``| head``)."""
        try:
            if self._fd is None:
                self._stream.write(text)
                self._stream.flush()
                return True
            data = memoryview(text.encode("utf-8", "replace"))
            while data:
                data = data[os.write(self._fd, data) :]
        except BrokenPipeError:
            return False
        except OSError:
            return False
        return True


class SinkHandler(logging.Handler):
    """A ``logging`` handler that formats records and hands them to a :class:`LineSink`."""

    def __init__(self, sink: LineSink) -> None:
        super().__init__()
        self.sink = sink

    def emit(self, record: logging.LogRecord) -> None:
        with contextlib.suppress(Exception):
            self.sink.put(self.format(record))
