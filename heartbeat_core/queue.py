"""The receive queue and its paused-reading rule, sans-IO.

A driver puts every message it reads into a :class:`ReceiveQueue` and hands
them to the application from it. The queue says when to stop reading (too
many messages, or too many bytes, wait unread) and when to read again (the
application has taken half of both), so the peer is slowed down by TCP and a
connection's memory stays bounded. The driver acts on what the calls return
(pause or resume its transport, and tell the core: ``pause_reading`` /
``resume_reading``); it never compares the counts itself.
"""

from __future__ import annotations

from collections import deque

from heartbeat_core.config import DEFAULT_MAX_QUEUE, DEFAULT_MAX_QUEUE_BYTES, check_queue_bounds
from heartbeat_core.errors import LocalProtocolError

__all__ = ["ReceiveQueue"]


class ReceiveQueue:
    """Unread messages, oldest first, and whether reading is paused.

    Reading pauses when a :meth:`push` brings the queue to ``max_queue``
    messages, or to more than ``max_queue_bytes`` (the ``len()`` of each
    message: characters for a str); it resumes when a :meth:`pop` leaves at
    most ``max_queue // 2`` messages and ``max_queue_bytes // 2`` bytes. Each
    call returns True exactly when the driver must act, so pause and resume
    signals alternate, starting with a pause. Once :meth:`stop_pausing` was
    called (no more messages will be delivered, e.g. the close began) reading
    never pauses again.

    Not thread-safe: a driver that shares it between threads holds its own lock.
    """

    __slots__ = ("_max_bytes", "_max_queue", "_messages", "_never_pause", "_paused", "_size")

    def __init__(
        self, max_queue: int = DEFAULT_MAX_QUEUE, max_queue_bytes: int = DEFAULT_MAX_QUEUE_BYTES
    ) -> None:
        """Raises :class:`~heartbeat_core.errors.ConfigError` unless both bounds are
        positive ints (see :func:`~heartbeat_core.config.check_queue_bounds`)."""
        self._max_queue, self._max_bytes = check_queue_bounds(max_queue, max_queue_bytes)
        # Made at the first message: most connections of a heartbeat server never get
        # one, and an empty deque costs more than half a kilobyte.
        self._messages: deque[str | bytes] | None = None
        self._size = 0
        self._paused = False
        self._never_pause = False

    @property
    def paused(self) -> bool:
        """Reading is paused: the last signal was a pause (:meth:`push` returned True)."""
        return self._paused

    @property
    def size(self) -> int:
        """Total ``len()`` of the unread messages."""
        return self._size

    def __len__(self) -> int:
        """How many messages wait unread."""
        return 0 if self._messages is None else len(self._messages)

    def __bool__(self) -> bool:
        """Some message waits unread."""
        return bool(self._messages)  # (None: never one)

    def push(self, message: str | bytes) -> bool:
        """Append a message read from the peer.

        Returns True exactly when reading must pause now: the queue reached
        ``max_queue`` messages or exceeds ``max_queue_bytes``, it was not paused
        already, and :meth:`stop_pausing` was not called. Raises ``TypeError``,
        changing nothing, when ``message`` has no ``len()``.
        """
        size = len(message)
        messages = self._messages
        if messages is None:
            messages = self._messages = deque()
        messages.append(message)
        self._size += size
        if self._paused or self._never_pause:
            return False
        if len(messages) >= self._max_queue or self._size > self._max_bytes:
            self._paused = True
            return True
        return False

    def pop(self) -> tuple[str | bytes, bool]:
        """Take the oldest message: ``(message, resume)``.

        ``resume`` is True exactly when reading must resume now: it was paused,
        and at most ``max_queue // 2`` messages and ``max_queue_bytes // 2``
        bytes remain. Raises :class:`~heartbeat_core.errors.LocalProtocolError`,
        changing nothing, when the queue is empty.
        """
        messages = self._messages
        if not messages:
            raise LocalProtocolError(
                "pop() from an empty ReceiveQueue: wait until len(queue) > 0 (or the "
                "queue is true) before taking a message"
            )
        message = messages.popleft()
        self._size -= len(message)
        if (
            self._paused
            and len(messages) <= self._max_queue // 2
            and self._size <= self._max_bytes // 2
        ):
            self._paused = False
            return message, True
        return message, False

    def stop_pausing(self) -> bool:
        """No more messages will be delivered (e.g. the close began: the peer's close
        frame must be read): reading never pauses again.

        Returns True when reading was paused: the driver must resume it now.
        The queued messages stay, for the application to take.
        """
        self._never_pause = True
        paused, self._paused = self._paused, False
        return paused
