"""``Connection``: one WebSocket for threaded code, driven by a :class:`Reactor` thread.

The driver carries bytes and time to the core and carries out what it says; what
every driver does alike lives in :class:`~heartbeat_core.driver.DriverBase`. The
reactor's I/O thread owns the socket (a :class:`Transport`) and the core: methods
named ``_io_*`` and ``_rt_*`` run only there. It feeds the core with
``now = time.monotonic()``, writes, closes or drops the socket when told, pauses and
resumes reading, and files the core's ``wake_at`` in the reactor's timer wheel.
Application threads call the blocking methods (``send``, ``recv``, ``ping``,
``close``), which hand work to the I/O thread and wait on the connection's
condition; heartbeats therefore run whether or not anyone reads.

Messages wait in the core's :class:`~heartbeat_core.queue.ReceiveQueue`, touched
only under the condition: the I/O thread pushes (and pauses reading when the push
says so), ``recv()`` (or a server's ``on_message`` worker) pops, and when the pop
says so the I/O thread resumes reading. ``send()`` blocks while more than
``write_limit`` bytes wait to be written.
"""

from __future__ import annotations

import concurrent.futures
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import TypeAlias

from heartbeat_core import HeartbeatConfig, HeartbeatConnection, HeartbeatStats, Role
from heartbeat_core.driver import DriverBase, ServerSide
from heartbeat_core.errors import ConnectionClosedError, HandshakeError
from heartbeat_core.options import ConnectionOptions
from heartbeat_core.policy import ServerPolicy
from heartbeat_core.state import validate_close
from heartbeat_core.wsevents import ConnectionEvent
from heartbeat_threading.dispatch import Dispatcher
from heartbeat_threading.reactor import Reactor
from heartbeat_threading.transport import DEFAULT_WRITE_LIMIT, Transport, check_write_limit

__all__ = ["Connection", "EventCallback"]

logger: logging.Logger = logging.getLogger("heartbeat_threading")

#: ``on_event(conn, event)``: every event the core emits (on the I/O thread: keep it quick).
EventCallback: TypeAlias = Callable[["Connection", ConnectionEvent], None]
_CloseMethod: TypeAlias = Callable[[float, int, str], list[ConnectionEvent]]


class Connection(DriverBase):
    """One WebSocket connection, client or server side. Thread-safe; methods block.

    Made by :func:`heartbeat_threading.connect` or handed to a
    :func:`heartbeat_threading.serve` handler. ``path`` and ``headers`` describe the
    opening handshake: the request target and request headers on the server side,
    the URI's target and the response headers on the client side.
    """

    __slots__ = (
        "_cond", "_dispatch", "_done", "_handshake", "_is_open", "_owns_reactor",
        "_pending", "_pings", "_reactor", "_scheduled", "_send_waiters", "_server", "_transport",
        "_wlen", "_write_limit",
    )  # fmt: skip

    def __init__(
        self,
        core: HeartbeatConnection,
        options: ConnectionOptions,
        sock: socket.socket,
        reactor: Reactor,
        *,
        on_event: EventCallback | None = None,
        policy: ServerPolicy | None = None,
        server: ServerSide | None = None,
        write_limit: int = DEFAULT_WRITE_LIMIT,
        owns_reactor: bool = False,
        tls_handshake: bool = False,
        dispatch: Dispatcher | None = None,
    ) -> None:
        super().__init__(core, options.new_queue(), logger=logger, on_event=on_event, policy=policy)
        self._reactor = reactor
        self._transport = Transport(sock, reactor, self, tls_handshake=tls_handshake)
        self._server = server
        self._write_limit = check_write_limit(write_limit)
        self._owns_reactor = owns_reactor
        try:
            peer = sock.getpeername()
            self.remote_address = (str(peer[0]), int(peer[1]))
        except (OSError, IndexError, TypeError, ValueError):
            self.remote_address = None
        self._cond = threading.Condition()  # guards what application threads share:
        self._is_open = False
        self._done = False  # the socket was released (and every waiter told)
        self._wlen = 0  # bytes written to the transport, not yet to the kernel
        self._pending = 0  # bytes handed to send() but not yet framed by the I/O thread
        self._send_waiters = 0
        self._dispatch = dispatch  # a server's on_message: messages go to its workers
        self._scheduled = False  # handed to the dispatcher, not yet given back
        # Client: resolved with None (accepted) or an exception; server: None.
        self._handshake: concurrent.futures.Future[None] | None = (
            concurrent.futures.Future() if core.role is Role.CLIENT else None
        )
        self._pings: dict[bytes, concurrent.futures.Future[float]] = {}  # I/O thread only

    def __repr__(self) -> str:
        return f"<Connection {self.core.role.value} {self.remote_address} {self.core.phase.value}>"

    # ------------------------------------------------------------------ views

    @property
    def stats(self) -> HeartbeatStats:
        """The core's heartbeat figures (pings sent, pongs, RTTs)."""
        return self.core.stats

    @property
    def latency(self) -> float | None:
        """Smoothed RTT in seconds; ``None`` before the first answered heartbeat."""
        return self.core.stats.srtt

    @property
    def config(self) -> HeartbeatConfig:
        """The heartbeat configuration of this connection."""
        return self.core.config

    @property
    def is_open(self) -> bool:
        """True while messages can be sent (until a close begins, from either side)."""
        return self._is_open

    # ------------------------------------------------------------ application

    def send(self, data: str | bytes) -> None:
        """Send a text (``str``) or binary (``bytes``) message.

        Blocks while more than ``write_limit`` bytes wait to be written. Raises
        :class:`ConnectionClosedError` once the connection is closing or closed.
        """
        if not isinstance(data, (str, bytes, bytearray, memoryview)):
            raise TypeError(f"send() takes str or bytes, got {type(data).__name__}")
        payload: str | bytes = data if isinstance(data, (str, bytes)) else bytes(data)
        size = len(payload)
        with self._cond:
            if not self._reactor.in_loop():  # (the I/O thread never waits for itself)
                self._send_waiters += 1
                try:
                    self._cond.wait_for(
                        lambda: not self._is_open or self._pending + self._wlen < self._write_limit
                    )
                finally:
                    self._send_waiters -= 1
            if not self._is_open:
                raise self._closed_error("send")
            self._pending += size
        if not self._reactor.call_soon(lambda: self._io_send(payload, size)):
            raise self._closed_error("send")

    def recv(self, timeout: float | None = None) -> str | bytes:
        """The next message. Raises :class:`TimeoutError` after ``timeout`` seconds and
        :class:`ConnectionClosedError` once the connection is closed and drained."""
        queue = self.queue
        with self._cond:
            if not self._cond.wait_for(lambda: queue or self._done, timeout):
                raise TimeoutError(f"no message within {timeout} s")
            if not queue:
                raise self._closed_error("receive")
            data, resume = queue.pop()
        if resume:
            self._reactor.call_soon(self._io_resume)
        return data

    def __iter__(self) -> Iterator[str | bytes]:
        """Messages until the connection closes (then ends quietly; see ``close_code``)."""
        while True:
            try:
                yield self.recv()
            except ConnectionClosedError:
                return

    def ping(self, timeout: float | None = None) -> float:
        """Send a ping of our own (not a heartbeat) and return its round-trip time in
        seconds. Raises :class:`TimeoutError` after ``timeout`` seconds."""
        future: concurrent.futures.Future[float] = concurrent.futures.Future()
        if not self._is_open or not self._reactor.call_soon(lambda: self._io_ping(future)):
            raise self._closed_error("ping")
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            self._reactor.call_soon(lambda: self._io_forget_ping(future))
            raise TimeoutError(f"no pong within {timeout} s") from None

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Start the closing handshake (bounded by the config's ``close_timeout``) and
        return once the socket is released. Closing twice is harmless."""
        validate_close(code, reason)
        if self._done:
            return
        self._reactor.call_soon(lambda: self._io_call(self.core.close, code, reason))
        if not self._reactor.in_loop():
            self.wait_closed()

    def fail(self, code: int = 1011, reason: str = "") -> None:
        """Fail the connection: a close frame, then the socket is released without
        waiting for the peer's (bounded by ``close_timeout``). Does not wait: see
        :meth:`wait_closed`."""
        validate_close(code, reason)
        self._reactor.call_soon(lambda: self._io_call(self.core.fail, code, reason))

    def wait_closed(self) -> None:
        """Block until the socket is released."""
        with self._cond:
            self._cond.wait_for(lambda: self._done)
        if self._owns_reactor and not self._reactor.in_loop():
            self._reactor.thread.join()

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -------------------------------------------------------- the I/O thread

    def _io_start(self) -> None:
        """The socket is connected: bound the opening handshake, write what the core
        queued (a client's request), and watch the socket."""
        self._transport_made()
        self._flush()
        self._transport.start()

    def _io_call(self, method: _CloseMethod, code: int, reason: str) -> None:
        """``core.close`` or ``core.fail``, unless the socket is gone already."""
        if self._transport.sock is not None:
            now = self._rt_now()
            self._process(method(now, code, reason), now)

    def _io_send(self, data: str | bytes, size: int) -> None:
        with self._cond:
            self._pending -= size
        if self._transport.sock is not None and self.core.is_open:  # (else: closed meanwhile)
            self.core.send(data)
            self._flush()

    def _io_ping(self, future: concurrent.futures.Future[float]) -> None:
        try:
            if self._transport.sock is None:
                raise self._closed_error("ping")
            payload = self.core.ping(self._rt_now())
        except ConnectionClosedError as exc:
            if future.set_running_or_notify_cancel():
                future.set_exception(exc)
            return
        self._pings[payload] = future
        self._flush()

    def _io_forget_ping(self, future: concurrent.futures.Future[float]) -> None:
        for payload in [p for p, f in self._pings.items() if f is future]:
            del self._pings[payload]

    def _io_resume(self) -> None:
        """recv() took enough messages (the queue's pop said so): read again, unless
        the socket is gone, reading already resumed, or a push paused the queue again
        since that pop (the pause came later, and stands)."""
        if self._transport.sock is None or self._transport.reading:
            return
        with self._cond:
            if self.queue.paused:
                return
        now = self._rt_now()
        self._process(self._resume(now), now)

    def _timer_due(self) -> None:
        if self._transport.sock is not None:
            super()._timer_due()

    # ------------------------------------------------------- transport protocol

    _data_received = DriverBase._received

    def _written(self, nbytes: int) -> None:
        with self._cond:
            self._wlen -= nbytes
            if self._send_waiters:
                self._cond.notify_all()

    def _connection_lost(self, error: OSError | None) -> None:
        self._reactor.unfile(self)
        self._transport_lost()  # the final Closed: close_code & co. are set before waking
        with self._cond:
            self._is_open = False
            self._wlen = 0
            self._cond.notify_all()
        for future in self._pings.values():
            if future.set_running_or_notify_cancel():
                future.set_exception(self._closed_error("ping"))
        self._pings.clear()
        self._fail_handshake(error or HandshakeError(
            "the connection closed during the opening handshake: "
            "check that the URI points at a WebSocket server"
        ))  # fmt: skip
        with self._cond:  # recv() raises, wait_closed() returns
            self._done = True
            self._cond.notify_all()
        if self._server is not None:
            self._server._forget(self)
        if self._owns_reactor:
            self._reactor.stop_soon()

    # ---------------------------------------------------------------- runtime

    def _rt_now(self) -> float:
        return time.monotonic()

    def _rt_write(self, data: bytes) -> None:
        with self._cond:
            self._wlen += len(data)
        self._transport.write(data)

    def _rt_close(self) -> None:
        self._closing()  # (e.g. at an end of file no close frame was exchanged)
        self._transport.close()

    def _rt_abort(self) -> None:
        if not self._transport.is_closing:
            # Not releasing already: a client's opening handshake ran out of time.
            self._fail_handshake(
                TimeoutError(
                    "no WebSocket handshake within open_timeout: check that the server is "
                    "up, or raise open_timeout"
                )
            )
        self._transport.abort()

    def _rt_pause(self) -> None:
        self._transport.pause_reading()

    def _rt_resume(self) -> None:
        self._transport.resume_reading()

    def _rt_file(self, when: float | None) -> None:
        if self._transport.sock is not None:
            self._reactor.file(self, when)

    def _rt_deliver(self, data: str | bytes) -> bool:
        with self._cond:
            pause = self.queue.push(data)
            self._cond.notify_all()
            dispatch = None if self._scheduled else self._dispatch
            self._scheduled = self._scheduled or dispatch is not None
        if dispatch is not None:
            dispatch.schedule(self)
        return pause

    def _rt_stop_pausing(self) -> bool:
        with self._cond:
            return self.queue.stop_pausing()

    def _opened(self) -> None:
        with self._cond:
            self._is_open = True
        handshake = self._handshake
        if handshake is not None and not handshake.done():
            handshake.set_result(None)
        if self._server is not None:
            self._server._start(self)

    def _refused(self, error: HandshakeError) -> None:
        self._fail_handshake(error)

    def _ping_answered(self, payload: bytes, rtt: float) -> None:
        future = self._pings.pop(payload, None)
        if future is not None and future.set_running_or_notify_cancel():
            future.set_result(rtt)

    def _closing(self) -> None:
        with self._cond:
            self._is_open = False
            self._cond.notify_all()  # send() waiters give up

    def _refusing(self) -> bool:
        return self._server is not None and self._server.closing

    # --------------------------------------------------------------- internal

    def _fail_handshake(self, error: BaseException) -> None:
        handshake = self._handshake
        if handshake is not None and not handshake.done():
            handshake.set_exception(error)

    def _wait_open(self) -> None:
        """Client: until opened, refused or given up (rule ``open-timeout`` bounds it)."""
        assert self._handshake is not None
        self._handshake.result()

    def _abort(self) -> None:
        """Drop the socket (from any thread) and wait until it is released."""
        self._reactor.call_soon(self._transport.abort)
        self.wait_closed()
