"""One WebSocket over asyncio: the core's :class:`HeartbeatConnection` driven by a protocol.

The driver does four things and decides nothing about *when* (see the core):

1. read into one buffer shared by every connection of the loop
   (:class:`asyncio.BufferedProtocol`), copy out what arrived and feed the core
   with ``now = loop.time()``;
2. write what the core returns, close or abort the transport when told;
3. keep the core's deadline in the loop's single shared timer (:class:`_Timers`);
4. queue messages for :meth:`Connection.recv`.

The receive queue is bounded by backpressure, as in ``heartbeat_threading``:
once ``max_queue`` messages (32), or more than ``max_queue_bytes`` (16 MiB),
wait unread, the transport stops reading until the application has taken half
of them, and the peer is slowed down by TCP. The core is told
(``pause_reading``/``resume_reading``, rule ``paused-reading``): while the
peer's pongs cannot be read nobody is declared dead, and on resuming an
outstanding heartbeat gets a fresh timeout. Memory per connection is bounded by
about ``max_queue_bytes`` + one read + 2 * ``max_size``.

Writes honour the transport's high-water mark: :meth:`Connection.send` waits
while the transport has paused writing.
"""

from __future__ import annotations

import asyncio
import collections
import heapq
import logging
import weakref
from collections.abc import AsyncIterator, Callable, Sequence

from heartbeat_asyncio.keepalive import apply_keepalive
from heartbeat_core import (
    JSON_CODEC,
    AppCodec,
    HeartbeatConfig,
    HeartbeatConnection,
    HeartbeatStats,
    Role,
)
from heartbeat_core.config import DEFAULT_MAX_QUEUE, DEFAULT_MAX_QUEUE_BYTES
from heartbeat_core.errors import ConnectionClosedError, HandshakeError
from heartbeat_core.state import HeartbeatPhase
from heartbeat_core.tcp import TcpKeepalive
from heartbeat_core.wsevents import (
    Abort,
    Accepted,
    Closed,
    CloseTransport,
    Closing,
    ConnectionEvent,
    HttpRequest,
    Message,
    PeerDead,
    PingAnswered,
    Rejected,
    Request,
    RttSample,
)

__all__ = ["Connection", "EventCallback", "HttpHandler", "SelectSubprotocol"]

logger = logging.getLogger("heartbeat_asyncio")

EventCallback = Callable[["Connection", ConnectionEvent], None]
SelectSubprotocol = Callable[[Sequence[str]], "str | None"]
HttpHandler = Callable[[str], "tuple[int, list[tuple[str, str]], bytes] | None"]

#: Size of the read buffer shared by all connections of one event loop.
READ_BUFFER_SIZE = 256 * 1024


#: Timer resolution: deadlines are filed in buckets this many per second.
_BUCKETS_PER_SECOND = 1000


class _Timers:
    """The loop's one timer for every connection.

    Deadlines are filed in 1 ms buckets: a dict from bucket number to the
    connections in it, and a heap of the bucket numbers. A deadline goes into
    the first bucket that *ends* after it, so when a bucket fires every
    deadline in it is due; a connection's timer is at most 1 ms late, filing is
    a list append, and the heap holds buckets, not connections (at 10,000
    connections a second, about a thousand). Each connection is filed once
    (``conn._armed``): it moves only when its deadline moves into an *earlier*
    bucket; a later deadline leaves the filing, which fires early (the core
    ignores that) and files the connection anew. A bucket emptied by such moves
    never wakes the loop. The loop's ``TimerHandle`` is replaced only when the
    earliest bucket moves earlier. Open connections are filed at the core's
    ``wake_at``, which a pong never moves earlier: a heartbeat round trip files
    the connection once.
    """

    __slots__ = (
        "__weakref__",
        "_buckets",
        "_firing",
        "_handle",
        "_keys",
        "_loop",
        "_when",
        "buffer",
        "view",
    )

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        # A weak reference: _loop_timers maps the loop to this object, which must not keep
        # the loop (and its 256 KiB buffer) alive after the loop is gone.
        self._loop = weakref.ref(loop)
        self._buckets: dict[int, list[Connection]] = {}
        self._keys: list[int] = []
        self._handle: asyncio.TimerHandle | None = None
        self._when = 0.0
        self._firing = False
        self.buffer = bytearray(READ_BUFFER_SIZE)
        self.view = memoryview(self.buffer)

    def schedule(self, conn: Connection, deadline: float | None) -> None:
        """File ``conn`` for ``deadline`` (``None``: it needs no timer)."""
        if deadline is None:
            return
        key = int(deadline * _BUCKETS_PER_SECOND) + 1  # the bucket ends after the deadline
        armed = conn._armed
        if armed is not None:
            if armed <= key:
                return
            self.unfile(conn)  # one filing per connection; no wake-up for nothing
        conn._armed = key
        bucket = self._buckets.get(key)
        if bucket is not None:
            bucket.append(conn)
            return
        self._buckets[key] = [conn]
        heapq.heappush(self._keys, key)
        when = key / _BUCKETS_PER_SECOND
        if not self._firing and (self._handle is None or when < self._when):
            self._arm(when)

    def unfile(self, conn: Connection) -> None:
        """Take ``conn`` out of its bucket (a bucket left empty never wakes the loop)."""
        armed, conn._armed = conn._armed, None
        if armed is None:
            return
        bucket = self._buckets.get(armed)
        if bucket is None:
            return  # the bucket is firing right now
        bucket.remove(conn)
        if not bucket:
            del self._buckets[armed]

    def entries(self) -> list[tuple[int, Connection]]:
        """Every filing: ``(bucket, connection)`` (for tests)."""
        return [(key, conn) for key, conns in self._buckets.items() for conn in conns]

    def _arm(self, when: float) -> None:
        if self._handle is not None:
            self._handle.cancel()
        self._when = when
        loop = self._loop()
        if loop is not None:
            self._handle = loop.call_at(when, self._fire)

    def _fire(self) -> None:
        self._handle = None
        loop = self._loop()
        if loop is None:
            return
        now = loop.time()
        # Buckets that ended by now: every deadline in them is due. A connection filed
        # while they run lands in a later bucket (its deadline is not before now).
        last = now * _BUCKETS_PER_SECOND
        keys, buckets = self._keys, self._buckets
        self._firing = True
        try:
            while keys and keys[0] <= last:
                key = heapq.heappop(keys)
                for conn in buckets.pop(key, ()):
                    if conn._armed != key:
                        continue  # unfiled while this bucket was firing
                    conn._armed = None
                    try:
                        conn._timer_due(now)
                    except Exception:
                        logger.exception("timer handling failed for %r", conn)
        finally:
            self._firing = False
            while keys and keys[0] not in buckets:
                heapq.heappop(keys)  # emptied by unfiling: nothing to wake for
            if keys:
                self._arm(keys[0] / _BUCKETS_PER_SECOND)


_loop_timers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Timers] = (
    weakref.WeakKeyDictionary()
)


def _timers_for(loop: asyncio.AbstractEventLoop) -> _Timers:
    """The loop's timers, kept on the loop itself so that they die with it (heap entries
    reference connections, which reference the loop: a mapping would keep it alive)."""
    timers: _Timers | None = getattr(loop, "_heartbeat_asyncio_timers", None)
    if timers is None:
        timers = _loop_timers.get(loop)
    if timers is None:
        timers = _Timers(loop)
        try:
            loop._heartbeat_asyncio_timers = timers  # type: ignore[attr-defined]
        except AttributeError:  # a loop without __dict__ (e.g. uvloop): keep it here
            _loop_timers[loop] = timers
    return timers


class Connection(asyncio.BufferedProtocol):
    """One WebSocket connection, client or server side.

    Create it with :func:`heartbeat_asyncio.connect` or receive it in a
    :func:`heartbeat_asyncio.serve` handler. ``path`` and ``headers`` describe
    the opening handshake: the request target and the request headers on the
    server side, the URI's target and the response headers on the client side.
    """

    __slots__ = (
        "__weakref__",
        "_armed",
        "_closed",
        "_core",
        "_drain",
        "_handshake",
        "_handshake_deadline",
        "_http_handler",
        "_keepalive",
        "_loop",
        "_max_queue",
        "_max_queue_bytes",
        "_on_event",
        "_on_gone",
        "_on_open",
        "_paused",
        "_pings",
        "_queue",
        "_queued",
        "_recv_waiter",
        "_select",
        "_timers",
        "_transport",
        "close_code",
        "close_reason",
        "closed_by",
        "headers",
        "path",
        "remote_address",
        "subprotocol",
    )

    def __init__(
        self,
        role: Role,
        *,
        config: HeartbeatConfig | None = None,
        codec: AppCodec = JSON_CODEC,
        max_size: int | None = 1 << 20,
        max_queue: int = DEFAULT_MAX_QUEUE,
        max_queue_bytes: int = DEFAULT_MAX_QUEUE_BYTES,
        on_event: EventCallback | None = None,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        self._loop = asyncio.get_running_loop() if loop is None else loop
        self._core = HeartbeatConnection(role, config, codec=codec, max_message_size=max_size)
        self._timers = _timers_for(self._loop)
        self._armed: int | None = None  # the timer bucket this connection is filed in
        self._transport: asyncio.Transport | None = None
        self._on_event = on_event
        self._max_queue = max(1, max_queue)
        self._max_queue_bytes = max(1, max_queue_bytes)
        self._paused = False  # reading paused because the queue is full
        self._queue: collections.deque[str | bytes] | None = None  # made at the first message
        self._queued = 0
        self._recv_waiter: asyncio.Future[None] | None = None
        self._drain: asyncio.Future[None] | None = None
        self._pings: dict[bytes, asyncio.Future[float]] = {}
        self._closed: asyncio.Future[None] = self._loop.create_future()
        # Client: resolved with None (accepted) or an exception; server: None.
        self._handshake: asyncio.Future[None] | None = (
            self._loop.create_future() if role is Role.CLIENT else None
        )
        self._on_gone: Callable[[Connection], None] | None = None
        self._handshake_deadline: float | None = None
        # Server hooks, set by the server before the transport connects.
        self._select: SelectSubprotocol | None = None
        self._on_open: Callable[[Connection], None] | None = None
        self._http_handler: HttpHandler | None = None
        self._keepalive: TcpKeepalive | None = None
        self.remote_address: tuple[str, int] | None = None
        self.subprotocol: str | None = None
        self.path = "/"
        self.headers: list[tuple[bytes, bytes]] = []
        self.close_code: int | None = None
        self.close_reason: str | None = None
        self.closed_by: str | None = None

    def __str__(self) -> str:  # formatted only when a log record is emitted
        return f"{self._core.role.value} {self.remote_address}"

    def __repr__(self) -> str:
        return (
            f"<Connection {self._core.role.value} {self.remote_address} {self._core.phase.value}>"
        )

    # ------------------------------------------------------------------ views

    @property
    def stats(self) -> HeartbeatStats:
        """The core's heartbeat figures (pings sent, pongs, RTTs)."""
        return self._core.stats

    @property
    def latency(self) -> float | None:
        """Smoothed RTT in seconds; ``None`` before the first answered heartbeat."""
        return self._core.stats.srtt

    @property
    def is_open(self) -> bool:
        """True while messages can be sent."""
        return self._core.is_open

    @property
    def core(self) -> HeartbeatConnection:
        """The sans-IO connection underneath (read-only use, e.g. ``core.phase``)."""
        return self._core

    # ------------------------------------------------------------ application

    async def send(self, data: str | bytes) -> None:
        """Send a text (``str``) or binary (``bytes``) message.

        Waits while the transport's write buffer is above its high-water mark.
        Raises :class:`ConnectionClosedError` when the connection is not open.
        """
        self._core.send(data)
        self._flush()
        if self._drain is not None:
            while self._drain is not None:
                await asyncio.shield(self._drain)
            if self._transport is None:
                raise self._closed_error("finish sending a message")

    async def recv(self) -> str | bytes:
        """The next message. Raises :class:`ConnectionClosedError` once closed and drained."""
        while not self._queue:
            if self._closed.done():
                raise self._closed_error("receive")
            waiter = self._recv_waiter
            if waiter is None or waiter.done():  # done: a cancelled recv() left it behind
                waiter = self._recv_waiter = self._loop.create_future()
            await waiter  # no shield: cancelling recv() cancels only this private future
        data = self._queue.popleft()
        self._queued -= len(data)
        if (
            self._paused
            and len(self._queue) <= self._max_queue // 2
            and self._queued <= self._max_queue_bytes // 2
        ):
            self._resume_reading()
        return data

    async def __aiter__(self) -> AsyncIterator[str | bytes]:
        """Iterate over messages; ends quietly when the connection closes (see ``close_code``)."""
        while True:
            try:
                yield await self.recv()
            except ConnectionClosedError:
                return

    async def ping(self) -> float:
        """Send one ping of our own (not a heartbeat) and return its round-trip time in seconds."""
        payload = self._core.ping(self._now())
        waiter: asyncio.Future[float] = self._loop.create_future()
        self._pings[payload] = waiter
        self._flush()
        try:
            return await asyncio.shield(waiter)
        finally:
            self._pings.pop(payload, None)

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Start the closing handshake (bounded by ``close_timeout``); return once the
        socket is released. Closing twice is harmless."""
        self.close_nowait(code, reason)
        await self.wait_closed()

    def close_nowait(self, code: int = 1000, reason: str = "") -> None:
        """Start the closing handshake without waiting for it to finish."""
        if self._closed.done():
            return
        if self._transport is None:
            raise ConnectionClosedError("cannot close: the connection was never opened")
        self._process(self._core.close(self._now(), code, reason))

    def abort(self) -> None:
        """Drop the transport now, without a closing handshake."""
        if self._transport is not None:
            self._transport.abort()

    async def wait_closed(self) -> None:
        """Return once the socket is released."""
        await asyncio.shield(self._closed)

    # ------------------------------------------------------- asyncio protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        peer = transport.get_extra_info("peername")
        if isinstance(peer, tuple) and len(peer) >= 2:
            self.remote_address = (str(peer[0]), int(peer[1]))
        if self._keepalive is not None:
            apply_keepalive(transport.get_extra_info("socket"), self._keepalive)
        if self._handshake_deadline is not None:
            self._handshake_deadline += self._loop.time()
            self._timers.schedule(self, self._handshake_deadline)

    def get_buffer(self, sizehint: int) -> memoryview:
        return self._timers.view

    def buffer_updated(self, nbytes: int) -> None:
        if self._transport is not None:
            data = bytes(self._timers.view[:nbytes])
            self._process(self._core.receive_data(data, self._loop.time()))

    def eof_received(self) -> bool:
        self._feed(None)
        return False

    def pause_writing(self) -> None:
        if self._drain is None:
            self._drain = self._loop.create_future()

    def resume_writing(self) -> None:
        drain, self._drain = self._drain, None
        if drain is not None and not drain.done():
            drain.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        if self._closed.done():
            return
        now = self._now()
        self._timers.unfile(self)
        was_open = self._core.phase is not HeartbeatPhase.NEW
        events = self._core.connection_lost(now)
        closed = events[0]
        assert isinstance(closed, Closed)
        self.close_code, self.close_reason, self.closed_by = closed.code, closed.reason, closed.by
        self.resume_writing()
        self._wake_reader()
        error = self._closed_error("ping")
        for waiter in self._pings.values():
            if not waiter.done():
                waiter.set_exception(error)
        if self._handshake is not None and not self._handshake.done():
            self._handshake.set_exception(
                exc
                if isinstance(exc, OSError)  # ssl.SSLError is an OSError
                else HandshakeError(
                    "the connection closed during the opening handshake: "
                    "check that the URI points at a WebSocket server"
                )
            )
            self._handshake.exception()  # whoever awaits it sees it; nobody else is warned
        self._closed.set_result(None)
        if self._on_gone is not None:
            self._on_gone(self)
        if was_open:
            logger.info(
                "%s closed: code=%d reason=%r by %s",
                self,
                closed.code,
                closed.reason,
                closed.by,
            )
        self._emit(closed)

    # --------------------------------------------------------------- internal

    def _now(self) -> float:
        return self._loop.time()

    def _feed(self, data: bytes | None) -> None:
        if self._transport is None:
            return
        self._process(self._core.receive_data(data, self._now()))

    def _timer_due(self, now: float) -> None:
        if self._transport is None:
            return
        deadline = self._handshake_deadline
        if deadline is not None and now >= deadline:
            logger.info("%s: no opening handshake within the timeout; dropped", self)
            self._handshake_deadline = None
            self._transport.abort()
            return
        core = self._core
        last = core.heartbeat.last_now  # (a callback may have used a later loop.time())
        self._process(core.timer_fired(now if now >= last else last))

    def _flush(self) -> None:
        data = self._core.data_to_send()
        if data and self._transport is not None:
            self._transport.write(data)

    def _process(self, events: list[ConnectionEvent]) -> None:
        """Carry out what the core returned: write, queue, close; re-arm the timer."""
        end: CloseTransport | Abort | None = None
        for event in events:
            cls = type(event)
            if cls is RttSample:  # the common one: a heartbeat answered
                assert isinstance(event, RttSample)
                logger.debug("%s: heartbeat %d rtt=%.6f", self, event.seq, event.rtt)
            elif cls is Message:
                assert isinstance(event, Message)
                if self._deliver(event.data):
                    events.extend(self._pause_reading())
            elif cls is CloseTransport or cls is Abort:
                assert isinstance(event, (CloseTransport, Abort))
                end = event if end is None or cls is Abort else end
            elif cls is PingAnswered:
                assert isinstance(event, PingAnswered)
                waiter = self._pings.get(event.payload)
                if waiter is not None and not waiter.done():
                    waiter.set_result(event.rtt)
            elif cls is Closing:
                assert isinstance(event, Closing)
                if self._paused:
                    # No more messages are delivered: read the peer's close frame.
                    events.extend(self._resume_reading(process=False))
                self.close_code, self.close_reason = event.code, event.reason
                self.closed_by = "remote" if event.by_peer else "local"
                logger.debug(
                    "%s closing: code=%d reason=%r by %s",
                    self,
                    event.code,
                    event.reason,
                    self.closed_by,
                )
            elif cls is PeerDead:
                assert isinstance(event, PeerDead)
                logger.debug(
                    "%s: heartbeat %d unanswered after %.3f s: peer dead",
                    self,
                    event.seq,
                    event.waited,
                )
            elif cls is Accepted:
                assert isinstance(event, Accepted)
                self._opened(event.subprotocol, list(event.extra_headers))
            elif cls is Request:
                assert isinstance(event, Request)
                self._on_request(event)
            elif cls is Rejected:
                assert isinstance(event, Rejected)
                if self._handshake is not None and not self._handshake.done():
                    self._handshake.set_exception(
                        HandshakeError(
                            f"the server answered the upgrade with HTTP {event.status}, not 101: "
                            "check the URI's path and the server's logs",
                            status=event.status,
                        )
                    )
            elif cls is HttpRequest:
                assert isinstance(event, HttpRequest)
                self._handshake_deadline = None
                events.extend(self._answer_http(event))
            if self._on_event is not None:
                self._emit(event)
        core = self._core
        data = core.data_to_send()
        transport = self._transport
        if transport is not None:
            if data:
                transport.write(data)
            if end is not None:
                if type(end) is Abort:
                    transport.abort()
                else:
                    transport.close()
        deadline = self._handshake_deadline
        self._timers.schedule(self, core.heartbeat.wake_at if deadline is None else deadline)

    def _deliver(self, data: str | bytes) -> bool:
        """Queue a message; True when reading must pause (the queue is full)."""
        queue = self._queue
        if queue is None:
            queue = self._queue = collections.deque()
        queue.append(data)
        self._queued += len(data)
        self._wake_reader()
        return not self._paused and (
            len(queue) >= self._max_queue or self._queued > self._max_queue_bytes
        )

    def _pause_reading(self) -> list[ConnectionEvent]:
        """Stop reading (backpressure) and tell the core: nobody is declared dead while
        the peer's answers wait unread (rule paused-reading)."""
        transport = self._transport
        if transport is None:
            return []
        self._paused = True
        transport.pause_reading()
        logger.debug(
            "%s: %d messages (%d bytes) wait unread: reading paused",
            self,
            len(self._queue or ()),
            self._queued,
        )
        return self._core.pause_reading(self._now())

    def _resume_reading(self, *, process: bool = True) -> list[ConnectionEvent]:
        """Read again; an outstanding heartbeat gets a fresh timeout (re-armed here, or by
        the caller's ``_process`` when ``process`` is false)."""
        self._paused = False
        transport = self._transport
        if transport is None:
            return []  # gone: nothing to resume
        transport.resume_reading()
        logger.debug("%s: reading resumed", self)
        events = self._core.resume_reading(self._now())
        if process:
            self._process(events)
            return []
        return events

    def _wake_reader(self) -> None:
        waiter, self._recv_waiter = self._recv_waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _answer_http(self, request: HttpRequest) -> list[ConnectionEvent]:
        answer = None
        if self._http_handler is not None:
            try:
                answer = self._http_handler(request.target)
            except Exception:
                logger.exception("http_handler failed on %s", request.target)
                answer = (500, [], b"Internal Server Error\n")
        if answer is None:
            return self._core.respond(
                426, b"Upgrade Required\n", headers=[("Upgrade", "websocket")]
            )
        status, headers, body = answer
        if request.method == "HEAD":
            body = b""
        return self._core.respond(status, body, headers=headers)

    def _on_request(self, request: Request) -> None:
        subprotocol = None
        if self._select is not None and request.subprotocols:
            try:
                subprotocol = self._select(request.subprotocols)
            except Exception:
                logger.exception("select_subprotocol failed on %r", request.subprotocols)
            if subprotocol is not None and subprotocol not in request.subprotocols:
                logger.warning(
                    "select_subprotocol returned %r, which the client did not offer; ignored",
                    subprotocol,
                )
                subprotocol = None
        self.path = request.target
        self.headers = list(request.extra_headers)
        self._handshake_deadline = None
        self._timers.unfile(self)
        events = self._core.accept(now=self._now(), subprotocol=subprotocol)
        self._opened(subprotocol, self.headers)
        if self._on_open is not None:
            self._on_open(self)
        self._process(events)

    def _opened(self, subprotocol: str | None, headers: list[tuple[bytes, bytes]]) -> None:
        self.subprotocol = subprotocol
        if self._core.role is Role.CLIENT:
            self.headers = headers
        logger.info("%s open: path=%s subprotocol=%s", self, self.path, subprotocol)
        if self._handshake is not None and not self._handshake.done():
            self._handshake.set_result(None)

    def _emit(self, event: ConnectionEvent) -> None:
        if self._on_event is None:
            return
        try:
            self._on_event(self, event)
        except Exception:
            logger.exception("on_event callback failed on %r", event)

    def _closed_error(self, what: str) -> ConnectionClosedError:
        code = self._core.close_code
        reason = self._core.close_reason
        return ConnectionClosedError(
            f"cannot {what}: the connection is closed (code {code}, reason {reason!r}); "
            "open a new one to continue",
            code,
            reason,
        )
