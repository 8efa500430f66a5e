"""``Connection``: one WebSocket for threaded code, driven by a :class:`Reactor` thread.

The reactor thread owns the socket and the core's :class:`HeartbeatConnection`
(methods named ``_io_*`` run only there). Application threads call the blocking
methods (``send``, ``recv``, ``ping``, ``close``), which hand work to the reactor
and wait on a condition. Heartbeats therefore run whether or not anyone reads.

Buffers are bounded, as in ``heartbeat_asyncio``: once ``max_queue`` messages
(32), or more than ``max_queue_bytes`` (16 MiB), wait undelivered, the reactor
stops reading this socket until the application has taken half of both, and the
peer is slowed down by TCP; ``send()`` blocks while more than ``write_limit``
bytes wait to be written. The core is told when reading stops and starts again
(rule ``paused-reading``): while the peer's pongs cannot be read, nobody is
declared dead for not answering, and on resuming an outstanding heartbeat gets a
fresh timeout. Unread input per connection is thus bounded by about
``max_queue_bytes`` + one read + ``max_size``. (Sizes are ``len()`` of the
messages: bytes for binary ones, characters for text.)
"""

from __future__ import annotations

import concurrent.futures
import logging
import selectors
import socket
import ssl
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from types import TracebackType

from heartbeat_core import HeartbeatConnection, HeartbeatStats
from heartbeat_core.config import DEFAULT_MAX_QUEUE, DEFAULT_MAX_QUEUE_BYTES
from heartbeat_core.errors import ConnectionClosedError
from heartbeat_core.state import validate_close
from heartbeat_core.wsevents import (
    Abort,
    Closed,
    CloseTransport,
    Closing,
    ConnectionEvent,
    Message,
    PeerDead,
    PingAnswered,
    RttSample,
)
from heartbeat_threading.reactor import Reactor

__all__ = ["DEFAULT_MAX_QUEUE", "DEFAULT_MAX_QUEUE_BYTES", "Connection", "EventCallback"]

log = logging.getLogger("heartbeat_threading")

EventCallback = Callable[["Connection", ConnectionEvent], None]
#: Server hook for ``Request`` / ``HttpRequest`` events: ``hook(conn, event, now)``.
RequestHook = Callable[["Connection", ConnectionEvent, float], None]

_READ, _WRITE = selectors.EVENT_READ, selectors.EVENT_WRITE
_WOULD_BLOCK = (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError, InterruptedError)
_MAX_READS = 16  # reads per readiness event, so one busy peer cannot starve the others


class Connection:
    """One WebSocket connection (client or server side). Thread-safe; methods block."""

    def __init__(
        self,
        hc: HeartbeatConnection,
        sock: socket.socket,
        reactor: Reactor,
        *,
        on_event: EventCallback | None = None,
        max_queue: int = DEFAULT_MAX_QUEUE,
        max_queue_bytes: int = DEFAULT_MAX_QUEUE_BYTES,
        write_limit: int = 64 * 1024,
        opened: bool = False,
        subprotocol: str | None = None,
        owns_reactor: bool = False,
        tls_handshake: bool = False,
        handshake_deadline: float | None = None,
    ) -> None:
        self._hc = hc
        self._sock = sock
        self._reactor = reactor
        self._on_event = on_event
        self._max_queue = max(1, max_queue)
        self._max_queue_bytes = max(1, max_queue_bytes)
        self._write_limit = max(1, write_limit)
        self._owns_reactor = owns_reactor
        try:
            peer = sock.getpeername()
            self.remote_address: tuple[str, int] | None = (str(peer[0]), int(peer[1]))
        except (OSError, IndexError, TypeError):
            self.remote_address = None
        self.subprotocol = subprotocol
        self.close_code: int | None = None
        self.close_reason: str | None = None
        self.closed_by: str | None = None
        self._label = "{}:{}".format(*self.remote_address) if self.remote_address else "?"
        # Shared with application threads (under _cond).
        self._cond = threading.Condition()
        self._messages: deque[str | bytes] = deque()
        self._queued = 0  # total len() of the messages in _messages
        self._open = opened  # False once a close began (either side) or never opened
        self._pending = 0  # bytes handed to send() but not yet framed by the reactor
        self._send_waiters = 0
        self._closed_event = threading.Event()
        # Reactor-thread state.
        self._opened = opened
        self._done = False
        self._armed: float | None = None
        self._mask = 0
        self._paused = False
        self._tls_handshake = tls_handshake
        self._tls_want = _READ
        self._close_after_flush = False
        self._handshake_deadline = handshake_deadline
        self._wq: deque[bytes] = deque()
        self._wpos = 0
        self._wlen = 0
        self._pings: dict[bytes, concurrent.futures.Future[float]] = {}
        self._request_hook: RequestHook | None = None
        self._release_hook: Callable[[Connection], None] | None = None

    def __repr__(self) -> str:
        state = "open" if self._open else ("closed" if self._done else "closing")
        return f"<Connection {self._hc.role.value} {self._label} {state}>"

    # ------------------------------------------------------------ views

    @property
    def stats(self) -> HeartbeatStats:
        """The core's heartbeat figures (a snapshot)."""
        return self._hc.stats

    @property
    def latency(self) -> float | None:
        """Smoothed RTT in seconds; ``None`` before the first answered heartbeat."""
        return self._hc.stats.srtt

    @property
    def open(self) -> bool:
        """True until a close begins (from either side)."""
        return self._open

    @property
    def core(self) -> HeartbeatConnection:
        """The sans-IO connection underneath, as in ``heartbeat_asyncio``. The I/O
        thread drives it: read it only (e.g. ``core.phase``, ``core.reading_paused``)."""
        return self._hc

    # ------------------------------------------------- application thread API

    def send(self, data: str | bytes) -> None:
        """Send a text (``str``) or binary (``bytes``) message.

        Blocks while the write buffer is above ``write_limit``. Raises
        :class:`ConnectionClosedError` once the connection is closing or closed.
        """
        if not isinstance(data, (str, bytes, bytearray, memoryview)):
            raise TypeError(f"send() takes str or bytes, got {type(data).__name__}")
        payload: str | bytes = data if isinstance(data, (str, bytes)) else bytes(data)
        size = len(payload)
        in_loop = self._reactor.in_loop()
        with self._cond:
            if not in_loop:
                self._send_waiters += 1
                try:
                    self._cond.wait_for(
                        lambda: not self._open or self._pending + self._wlen < self._write_limit
                    )
                finally:
                    self._send_waiters -= 1
            if not self._open:
                raise self._closed_error("send")
            self._pending += size
        if not self._reactor.call_soon(lambda: self._io_send(payload, size)):
            raise self._closed_error("send")

    def recv(self, timeout: float | None = None) -> str | bytes:
        """The next message. Raises :class:`TimeoutError` after ``timeout`` seconds and
        :class:`ConnectionClosedError` once the connection is closed and drained."""
        with self._cond:
            if not self._cond.wait_for(lambda: self._messages or self._done, timeout):
                raise TimeoutError(f"no message within {timeout} s")
            if self._messages:
                data = self._messages.popleft()
                self._queued -= len(data)
                if (
                    self._paused
                    and len(self._messages) <= self._max_queue // 2
                    and self._queued <= self._max_queue_bytes // 2
                ):
                    self._reactor.call_soon(self._io_resume)
                return data
        raise self._closed_error("receive")

    def __iter__(self) -> Iterator[str | bytes]:
        """Messages until the connection closes (then ends quietly; see ``close_code``)."""
        while True:
            try:
                yield self.recv()
            except ConnectionClosedError:
                return

    def ping(self, timeout: float | None = None) -> float:
        """Send a ping of our own and return its round-trip time in seconds."""
        future: concurrent.futures.Future[float] = concurrent.futures.Future()
        if not self._open or not self._reactor.call_soon(lambda: self._io_ping(future)):
            raise self._closed_error("ping")
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            self._reactor.call_soon(lambda: self._io_forget_ping(future))
            raise TimeoutError(f"no pong within {timeout} s") from None

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Close with ``code`` and ``reason``; returns once the socket is released
        (bounded by the config's ``close_timeout``). Harmless when already closed."""
        validate_close(code, reason)
        if self._done:
            return
        self._reactor.call_soon(lambda: self._io_close(code, reason))
        if not self._reactor.in_loop():
            self.wait_closed()

    def wait_closed(self) -> None:
        """Block until the socket is released."""
        self._closed_event.wait()
        if self._owns_reactor and not self._reactor.in_loop():
            self._reactor.thread.join()

    def __enter__(self) -> Connection:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _closed_error(self, what: str) -> ConnectionClosedError:
        code = 1006 if self.close_code is None else self.close_code
        reason = self.close_reason or ""
        detail = f"{code} {reason!r}" if reason else str(code)
        return ConnectionClosedError(
            f"cannot {what}: the connection is closed ({detail}); open a new one", code, reason
        )

    # -------------------------------------------------------- reactor thread

    def _io_deadline(self) -> float | None:
        return self._hc.deadline if self._opened else self._handshake_deadline

    def _io_timer(self, now: float) -> None:
        if self._opened:
            self._io_after(self._hc.timer_fired(now), now)
        elif self._handshake_deadline is not None and now >= self._handshake_deadline:
            log.debug("%s: opening handshake timed out", self._label)
            self._io_release()

    def _io_start(self, events: list[ConnectionEvent], now: float) -> None:
        """Register the socket and process what the handshake already produced."""
        self._io_interest()
        self._io_after(events, now)

    def _io_interest(self) -> None:
        if self._done:
            return
        if self._tls_handshake:
            mask = self._tls_want
        else:
            mask = 0 if self._paused or self._close_after_flush else _READ
            if self._wq:
                mask |= _WRITE
        if mask == self._mask:
            return
        selector = self._reactor.selector
        if self._mask == 0:
            selector.register(self._sock, mask, self._io_ready)
        elif mask == 0:
            selector.unregister(self._sock)
        else:
            selector.modify(self._sock, mask, self._io_ready)
        self._mask = mask

    def _io_ready(self, mask: int) -> None:
        if self._done:
            return
        if self._tls_handshake:
            self._io_tls_step()
            return
        if mask & _WRITE:
            self._io_flush()
        if mask & _READ and not self._done:
            self._io_read()

    def _io_tls_step(self) -> None:
        assert isinstance(self._sock, ssl.SSLSocket)
        try:
            self._sock.do_handshake()
        except ssl.SSLWantReadError:
            self._tls_want = _READ
        except ssl.SSLWantWriteError:
            self._tls_want = _WRITE
        except (ssl.SSLError, OSError) as exc:
            log.debug("%s: TLS handshake failed: %s", self._label, exc)
            self._io_release()
            return
        else:
            self._tls_handshake = False
            self._io_interest()
            self._io_read()
            return
        self._io_interest()

    def _io_read(self) -> None:
        sock, view = self._sock, self._reactor.read_view
        for _ in range(_MAX_READS):
            try:
                n = sock.recv_into(view)
            except _WOULD_BLOCK:
                return
            except OSError as exc:  # reset, TLS alert...: the transport is gone
                log.debug("%s: read failed: %s", self._label, exc)
                n = 0
            now = time.monotonic()
            if n == 0:
                self._io_after(self._hc.receive_data(None, now), now)
                if not self._done:
                    self._io_release()
                return
            self._io_after(self._hc.receive_data(bytes(view[:n]), now), now)
            if self._done or self._paused or self._close_after_flush:
                return
            pending = sock.pending() if isinstance(sock, ssl.SSLSocket) else 0
            if n < len(view) and not pending:
                return
        if isinstance(sock, ssl.SSLSocket) and sock.pending():
            self._reactor.call_soon(self._io_read)  # decrypted bytes select() cannot see

    def _io_after(self, events: list[ConnectionEvent], now: float) -> None:
        """Write what the core produced, then act on its events."""
        out = self._hc.data_to_send()
        if out:
            self._wq.append(out)
            self._wlen += len(out)
        for event in events:
            if self._done:
                break
            self._io_event(event, now)
        if not self._done:
            self._io_flush()
        if not self._done:
            self._reactor.arm(self)

    def _io_event(self, event: ConnectionEvent, now: float) -> None:
        if self._on_event is not None:
            try:
                self._on_event(self, event)
            except Exception:
                log.exception("%s: on_event callback failed", self._label)
        kind = type(event)
        if kind is Message:
            assert isinstance(event, Message)
            with self._cond:
                self._messages.append(event.data)
                self._queued += len(event.data)
                self._cond.notify_all()
                full = not self._paused and (
                    len(self._messages) >= self._max_queue or self._queued > self._max_queue_bytes
                )
                if full:
                    self._paused = True
                count, size = len(self._messages), self._queued
            if full:
                log.debug(
                    "%s: %d messages (%d bytes) wait unread: reading paused",
                    self._label,
                    count,
                    size,
                )
                for paused in self._hc.pause_reading(now):
                    self._io_event(paused, now)
        elif kind is PingAnswered:
            assert isinstance(event, PingAnswered)
            future = self._pings.pop(event.payload, None)
            if future is not None and future.set_running_or_notify_cancel():
                future.set_result(event.rtt)
        elif kind is RttSample:
            assert isinstance(event, RttSample)
            log.debug("%s: heartbeat %d answered in %.6f s", self._label, event.seq, event.rtt)
        elif kind is PeerDead:
            assert isinstance(event, PeerDead)
            log.info(
                "%s: peer dead: heartbeat %d unanswered after %.3f s",
                self._label,
                event.seq,
                event.waited,
            )
        elif kind is Closing:
            assert isinstance(event, Closing)
            log.debug(
                "%s: closing %d %r (by %s)",
                self._label,
                event.code,
                event.reason,
                "peer" if event.by_peer else "us",
            )
            with self._cond:
                self._open = False
                self.close_code, self.close_reason = event.code, event.reason
                self.closed_by = "remote" if event.by_peer else "local"
                self._cond.notify_all()
                resume = self._paused
                self._paused = False
            if resume:
                # No more messages are delivered: read again, for the peer's close frame.
                for resumed in self._hc.resume_reading(now):
                    self._io_event(resumed, now)
        elif kind is CloseTransport:
            self._close_after_flush = True
        elif kind is Abort:
            self._io_release()
        elif self._request_hook is not None:
            self._request_hook(self, event, now)

    def _io_send(self, data: str | bytes, size: int) -> None:
        with self._cond:
            self._pending -= size
        if self._hc.is_open and not self._done:
            self._hc.send(data)
            self._io_after([], time.monotonic())

    def _io_ping(self, future: concurrent.futures.Future[float]) -> None:
        if not self._hc.is_open or self._done:
            if future.set_running_or_notify_cancel():
                future.set_exception(self._closed_error("ping"))
            return
        now = time.monotonic()
        self._pings[self._hc.ping(now)] = future
        self._io_after([], now)

    def _io_forget_ping(self, future: concurrent.futures.Future[float]) -> None:
        for payload in [p for p, f in self._pings.items() if f is future]:
            del self._pings[payload]

    def _io_close(self, code: int, reason: str) -> None:
        if self._done:
            return
        now = time.monotonic()
        with self._cond:
            self._open = False
            self._cond.notify_all()
        self._io_after(self._hc.close(now, code, reason), now)

    def _io_resume(self) -> None:
        if self._paused and not self._done:
            self._paused = False
            now = time.monotonic()
            log.debug("%s: reading resumed", self._label)
            # An outstanding heartbeat gets a fresh timeout (re-armed here) to read its answer.
            self._io_after(self._hc.resume_reading(now), now)
            if self._done or self._paused:
                return
            self._io_interest()
            self._io_read()  # input may have waited in the kernel all along

    def _io_flush(self) -> None:
        wq, sock = self._wq, self._sock
        before = self._wlen
        while wq:
            chunk = wq[0]
            try:
                n = sock.send(memoryview(chunk)[self._wpos :])
            except _WOULD_BLOCK:
                break
            except OSError as exc:
                log.debug("%s: write failed: %s", self._label, exc)
                self._io_release()
                return
            self._wlen -= n
            self._wpos += n
            if self._wpos >= len(chunk):
                wq.popleft()
                self._wpos = 0
        if self._send_waiters and self._wlen < before:
            with self._cond:
                self._cond.notify_all()
        if not wq and self._close_after_flush:
            self._io_release()
            return
        self._io_interest()

    def _io_release(self) -> None:
        """The transport is gone: close the socket and tell everyone."""
        if self._done:
            return
        self._done = True
        if self._mask:
            self._reactor.selector.unregister(self._sock)
            self._mask = 0
        self._sock.close()
        self._wq.clear()
        self._wlen = 0
        now = time.monotonic()
        closed = self._hc.connection_lost(now)[0]
        assert isinstance(closed, Closed)
        with self._cond:
            self._open = False
            if self._opened:
                self.close_code, self.close_reason = closed.code, closed.reason
                self.closed_by = closed.by
            self._cond.notify_all()
        for future in self._pings.values():
            if future.set_running_or_notify_cancel():
                future.set_exception(self._closed_error("ping"))
        self._pings.clear()
        if self._opened:
            log.info("%s: closed %d %r (by %s)", self._label, closed.code, closed.reason, closed.by)
            if self._on_event is not None:
                try:
                    self._on_event(self, closed)
                except Exception:
                    log.exception("%s: on_event callback failed", self._label)
        self._closed_event.set()
        if self._release_hook is not None:
            self._release_hook(self)
        if self._owns_reactor:
            self._reactor.stop_soon()
