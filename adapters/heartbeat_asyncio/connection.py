"""One WebSocket over asyncio: the core's :class:`HeartbeatConnection` driven by a protocol.

The driver carries bytes and time to the core and carries out what it says; what
every driver does alike lives in :class:`~heartbeat_core.driver.DriverBase`. Here:

1. read into the loop's shared buffer (:class:`asyncio.BufferedProtocol`) and
   feed the core with ``now = clock()`` (:data:`.loop.clock`: the monotonic clock);
2. write, close or abort the transport when told; pause and resume reading;
3. file the core's ``wake_at`` with the loop's shared timer (:mod:`.loop`);
4. hand messages to :meth:`Connection.recv` through the core's receive queue,
   whose bounds pause reading (``max_queue`` messages or ``max_queue_bytes``).

Writes honour the transport's high-water mark: :meth:`Connection.send` waits
while the transport has paused writing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, TypeAlias, cast

from heartbeat_asyncio.loop import LoopShare, clock, share_for
from heartbeat_core import HeartbeatConfig, HeartbeatStats, Role
from heartbeat_core.driver import DriverBase, ServerSide
from heartbeat_core.errors import ConnectionClosedError, HandshakeError
from heartbeat_core.options import ConnectionOptions
from heartbeat_core.policy import ServerPolicy
from heartbeat_core.tcp import apply_keepalive
from heartbeat_core.wsevents import ConnectionEvent

if TYPE_CHECKING:
    from heartbeat_asyncio.delivery import Delivery

__all__ = ["Connection", "EventCallback"]

logger: logging.Logger = logging.getLogger("heartbeat_asyncio")

#: ``on_event(conn, event)``: every event the core emits, for every connection.
EventCallback: TypeAlias = Callable[["Connection", ConnectionEvent], None]

_CLIENT = Role.CLIENT  # (a global: cheaper than the enum's attribute on 3.10/3.11)


class Connection(DriverBase, asyncio.BufferedProtocol):
    """One WebSocket connection, client or server side.

    Create it with :func:`heartbeat_asyncio.connect` or receive it in a
    :func:`heartbeat_asyncio.serve` handler. ``path`` and ``headers`` describe
    the opening handshake: the request target and the request headers on the
    server side, the URI's target and the response headers on the client side.
    """

    __slots__ = (
        "__weakref__",
        "_closed",
        "_delivery",
        "_drain",
        "_ended",
        "_handshake",
        "_loop",
        "_options",
        "_pings",
        "_recv_waiter",
        "_server",
        "_share",
        "_transport",
    )

    def __init__(
        self,
        role: Role,
        options: ConnectionOptions | None = None,
        *,
        on_event: EventCallback | None = None,
        policy: ServerPolicy | None = None,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        options = ConnectionOptions() if options is None else options
        super().__init__(
            options.new_core(role),
            options.new_queue(),
            logger=logger,
            on_event=on_event,
            policy=policy,
        )
        self._options = options
        self._loop = asyncio.get_running_loop() if loop is None else loop
        self._share: LoopShare = share_for(self._loop)
        self._server: ServerSide | None = None  # set by the server that accepted it
        # serve(on_message=...): gets each message, at once or (while a call waits) queued.
        self._delivery: Delivery | None = None
        self._transport: asyncio.Transport | None = None
        self._recv_waiter: asyncio.Future[None] | None = None
        self._drain: asyncio.Future[None] | None = None
        # Made when first needed (most connections never ping, and nobody waits for
        # most of them to close): each idle connection costs less memory.
        self._pings: dict[bytes, asyncio.Future[float]] | None = None
        self._closed: asyncio.Future[None] | None = None  # wait_closed()'s
        self._ended = False  # the socket is released
        # Client: resolved with None (accepted) or an exception; server: None.
        self._handshake: asyncio.Future[None] | None = (
            self._loop.create_future() if role is _CLIENT else None
        )

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
        """True while messages can be sent."""
        return self.core.is_open

    # ------------------------------------------------------------ application

    async def send(self, data: str | bytes) -> None:
        """Send a text (``str``) or binary (``bytes``) message.

        Waits while the transport's write buffer is above its high-water mark.
        Raises :class:`ConnectionClosedError` when the connection is not open.
        """
        core = self.core
        core.send(data)
        transport = self._transport
        if transport is not None:  # (_flush, inlined: once per message)
            transport.write(core.data_to_send())
        while self._drain is not None:
            await asyncio.shield(self._drain)
            if self._transport is None:
                raise self._closed_error("finish sending a message")

    async def recv(self) -> str | bytes:
        """The next message. Raises :class:`ConnectionClosedError` once closed and drained."""
        queue = self.queue
        while not queue:
            if self._ended:
                raise self._closed_error("receive")
            waiter = self._recv_waiter
            if waiter is None or waiter.done():  # done: a cancelled recv() left it behind
                waiter = self._recv_waiter = self._loop.create_future()
            await waiter  # no shield: cancelling recv() cancels only this private future
        return self._take()

    async def __aiter__(self) -> AsyncIterator[str | bytes]:
        """Iterate over messages; ends quietly when the connection closes (see ``close_code``)."""
        while True:
            try:
                yield await self.recv()
            except ConnectionClosedError:
                return

    async def ping(self) -> float:
        """Send one ping of our own (not a heartbeat) and return its round-trip time in seconds."""
        payload = self.core.ping(self._rt_now())
        waiter: asyncio.Future[float] = self._loop.create_future()
        pings = self._pings
        if pings is None:
            pings = self._pings = {}
        pings[payload] = waiter
        self._flush()
        try:
            return await asyncio.shield(waiter)
        finally:
            pings.pop(payload, None)

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Start the closing handshake (bounded by ``close_timeout``); return once the
        socket is released. Closing twice is harmless."""
        self.close_nowait(code, reason)
        await self.wait_closed()

    def close_nowait(self, code: int = 1000, reason: str = "") -> None:
        """Start the closing handshake without waiting for it to finish."""
        if self._ended:
            return
        if self._transport is None:
            raise ConnectionClosedError("cannot close: the connection was never opened")
        now = self._rt_now()
        self._process(self.core.close(now, code, reason), now)

    def fail(self, code: int = 1011, reason: str = "") -> None:
        """Fail the connection: a close frame, then the socket is released without
        waiting for the peer's (bounded by ``close_timeout``)."""
        if self._ended or self._transport is None:
            return
        now = self._rt_now()
        self._process(self.core.fail(now, code, reason), now)

    def abort(self) -> None:
        """Drop the transport now, without a closing handshake."""
        if self._transport is not None:
            self._transport.abort()

    async def wait_closed(self) -> None:
        """Return once the socket is released."""
        if self._ended:
            return
        closed = self._closed
        if closed is None:
            closed = self._closed = self._loop.create_future()
        await asyncio.shield(closed)

    # ------------------------------------------------------- asyncio protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # Any asyncio-compatible transport (uvloop's too): duck typing, no isinstance.
        self._transport = cast(asyncio.Transport, transport)
        peer = transport.get_extra_info("peername")
        if isinstance(peer, tuple) and len(peer) >= 2:
            self.remote_address: tuple[str, int] | None = (str(peer[0]), int(peer[1]))
        if self._options.keepalive is not None:
            apply_keepalive(transport.get_extra_info("socket"), self._options.keepalive)
        self._transport_made()

    def get_buffer(self, sizehint: int) -> memoryview:
        return self._share.view

    def buffer_updated(self, nbytes: int) -> None:
        if self._transport is not None:  # (DriverBase._received, inlined: once per read)
            now = clock()
            self._process(self.core.receive_data(bytes(self._share.view[:nbytes]), now), now)

    def _timer_due(self) -> None:
        transport = self._transport
        if transport is not None:  # (DriverBase._timer_due, inlined: once per heartbeat)
            now = clock()
            core = self.core
            frame = core.ping_due(now)
            if frame is None:
                self._process(core.timer_fired(now), now)
                return
            # The common timer: a heartbeat (what _process does with it).
            transport.write(frame)
            if self._share.wheel.file(self, core.heartbeat.wake_at):
                self._share.rearm()

    def eof_received(self) -> bool:
        if self._transport is not None:
            self._received(None)
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
        if self._ended:
            return
        self._share.unfile(self)
        self._transport_lost()
        self.resume_writing()
        self._wake_reader()
        if self._pings:
            error = self._closed_error("ping")
            for waiter in self._pings.values():
                if not waiter.done():
                    waiter.set_exception(error)
        self._fail_handshake(
            exc
            if isinstance(exc, OSError)  # ssl.SSLError is an OSError
            else HandshakeError(
                "the connection closed during the opening handshake: "
                "check that the URI points at a WebSocket server"
            )
        )
        self._ended = True
        if self._closed is not None:
            self._closed.set_result(None)
        if self._server is not None:
            self._server._forget(self)

    # ---------------------------------------------------------------- runtime

    def _rt_now(self) -> float:
        return clock()

    def _rt_write(self, data: bytes) -> None:
        if self._transport is not None:
            self._transport.write(data)

    def _rt_close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    def _rt_abort(self) -> None:
        transport = self._transport
        if transport is None:
            return
        if not transport.is_closing():
            # Not releasing already: a client's opening handshake ran out of time.
            self._fail_handshake(
                TimeoutError(
                    "no WebSocket handshake within open_timeout: check that the server is "
                    "up, or raise open_timeout"
                )
            )
        transport.abort()

    def _rt_pause(self) -> None:
        if self._transport is not None:
            self._transport.pause_reading()

    def _rt_resume(self) -> None:
        if self._transport is not None:
            self._transport.resume_reading()

    def _rt_file(self, when: float | None) -> None:
        if self._transport is not None and self._share.wheel.file(self, when):
            self._share.rearm()

    def _rt_deliver(self, data: str | bytes) -> bool:
        delivery = self._delivery
        if delivery is not None and not self.queue and delivery.at_once(self, data):
            return False  # (handed to on_message: it never waited in the queue)
        pause = self.queue.push(data)
        self._wake_reader()
        if delivery is not None:
            delivery(self, not pause)  # (pausing: the pause first, then a task delivers)
        return pause

    def _rt_stop_pausing(self) -> bool:
        return self.queue.stop_pausing()

    def _opened(self) -> None:
        if self._handshake is not None and not self._handshake.done():
            self._handshake.set_result(None)
        if self._server is not None:
            self._server._start(self)

    def _refused(self, error: HandshakeError) -> None:
        self._fail_handshake(error)

    def _ping_answered(self, payload: bytes, rtt: float) -> None:
        waiter = self._pings.get(payload) if self._pings else None
        if waiter is not None and not waiter.done():
            waiter.set_result(rtt)

    def _refusing(self) -> bool:
        return self._server is not None and self._server.closing

    # --------------------------------------------------------------- internal

    def _fail_handshake(self, error: BaseException) -> None:
        handshake = self._handshake
        if handshake is not None and not handshake.done():
            handshake.set_exception(error)
            handshake.exception()  # whoever awaits it sees it; nobody else is warned

    def _take(self) -> str | bytes:
        """The oldest waiting message (the queue is not empty): for recv() and on_message.
        Reading resumes when the queue says so."""
        data, resume = self.queue.pop()
        if resume and self._transport is not None:
            now = self._rt_now()
            self._process(self._resume(now), now)
        return data

    def _wake_reader(self) -> None:
        waiter, self._recv_waiter = self._recv_waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
