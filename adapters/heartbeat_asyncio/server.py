"""The asyncio WebSocket server: ``serve(handler, host, port)`` and graceful shutdown.

Each open connection's ``handler(conn)`` runs in a task of its own; with
``on_message`` instead, an idle connection holds no task (:mod:`.delivery`).

Connections are accepted by our own accept loop (:mod:`heartbeat_asyncio.listener`),
the same on every asyncio loop, which pauses briefly instead of spinning when the
process runs out of file descriptors.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl as ssl_module
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import TypeAlias

from heartbeat_asyncio.connection import Connection, EventCallback
from heartbeat_asyncio.delivery import Delivery, MessageHandler
from heartbeat_asyncio.listener import Listener, bind
from heartbeat_core import JSON_CODEC, AppCodec, HeartbeatConfig, Role
from heartbeat_core.config import DEFAULT_MAX_QUEUE, DEFAULT_MAX_QUEUE_BYTES
from heartbeat_core.errors import ConnectionClosedError
from heartbeat_core.options import DEFAULT_MAX_SIZE, DEFAULT_OPEN_TIMEOUT, ConnectionOptions
from heartbeat_core.policy import (
    HttpHandler,
    ProcessRequest,
    SelectSubprotocol,
    ServerPolicy,
    check_application,
)
from heartbeat_core.state import HeartbeatPhase
from heartbeat_core.tcp import TcpKeepalive, check_reuse_port

__all__ = ["Handler", "HttpHandler", "ProcessRequest", "SelectSubprotocol", "Server", "serve"]

logger: logging.Logger = logging.getLogger("heartbeat_asyncio")

Handler: TypeAlias = Callable[[Connection], Awaitable[None]]


class Server:
    """A listening WebSocket server; every connection's heartbeat is supervised.

    Use ``async with await serve(...) as server:`` (closed on leaving the block)
    or keep the object and call :meth:`close`.
    """

    def __init__(self, handler: Handler | None, on_message: MessageHandler | None = None) -> None:
        self._handler = handler
        self._listener: Listener | None = None
        self._all: set[Connection] = set()
        self._open: set[Connection] = set()
        # The handlers' tasks, or on_message's delivery tasks (only while a call waits).
        self._tasks: set[asyncio.Task[None]] = set()
        self._delivery = None if on_message is None else Delivery(on_message, self._tasks)
        self._closing: asyncio.Task[None] | None = None
        self._port = 0
        self._closed = asyncio.get_running_loop().create_future()

    @property
    def sockets(self) -> list[socket.socket]:
        """The listening sockets."""
        if self._listener is None:
            return []
        return list(self._listener.sockets)

    @property
    def port(self) -> int:
        """The bound port (useful with ``port=0``)."""
        return self._port

    @property
    def connections(self) -> frozenset[Connection]:
        """The open connections (handshake done, not yet closed)."""
        return frozenset(self._open)

    @property
    def closing(self) -> bool:
        """True once :meth:`close` was called (new upgrades are refused with 503)."""
        return self._closing is not None

    # ---------------------------------------------------------------- control

    async def close(
        self, code: int = 1001, reason: str = "going away", timeout: float = 5.0
    ) -> None:
        """Stop accepting, close every connection with ``code`` and wait up to ``timeout``
        seconds for them and their handlers (or ``on_message`` calls, which still get the
        messages received before the close); then abort and cancel what is left."""
        if self._closing is None:
            self._closing = asyncio.ensure_future(self._shutdown(code, reason, timeout))
        await asyncio.shield(self._closing)

    async def _shutdown(self, code: int, reason: str, timeout: float) -> None:
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout
        if self._listener is not None:
            self._listener.close()
        logger.info("server closing %d connections with %d", len(self._all), code)
        for conn in list(self._all):
            if conn.is_open:
                conn.close_nowait(code, reason)
            elif conn.core.phase is HeartbeatPhase.NEW:
                conn.abort()  # still in its opening handshake
        waiting = [asyncio.ensure_future(conn.wait_closed()) for conn in self._all]
        if waiting:
            _, pending = await asyncio.wait(waiting, timeout=max(0.0, end - loop.time()))
            if pending:
                logger.info("aborting %d connections that did not close in time", len(pending))
                for conn in list(self._all):
                    conn.abort()
                await asyncio.wait(pending, timeout=1.0)
        if self._tasks:
            _, tasks = await asyncio.wait(set(self._tasks), timeout=max(0.0, end - loop.time()))
            for task in tasks:
                task.cancel()
            if tasks:
                await asyncio.wait(tasks, timeout=1.0)
        if not self._closed.done():
            self._closed.set_result(None)

    async def wait_closed(self) -> None:
        """Return once :meth:`close` has finished."""
        await asyncio.shield(self._closed)

    async def serve_forever(self) -> None:
        """Serve until :meth:`close` is called; closes the server when cancelled."""
        try:
            await self.wait_closed()
        except asyncio.CancelledError:
            await self.close()
            raise

    async def __aenter__(self) -> Server:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # --------------------------------------------------------------- internal

    def _forget(self, conn: Connection) -> None:
        self._all.discard(conn)
        self._open.discard(conn)

    def _start(self, conn: Connection) -> None:
        """The handshake completed: run the application's handler (with on_message, a
        task starts only when a call waits: :class:`.Delivery`)."""
        self._open.add(conn)
        if self._handler is None:
            return
        task = asyncio.get_running_loop().create_task(self._run(conn, self._handler))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, conn: Connection, handler: Handler) -> None:
        try:
            await handler(conn)
        except ConnectionClosedError:
            pass  # the peer went away while the handler was talking to it
        except Exception:
            logger.exception("handler failed for %r; closing with 1011", conn)
            conn.close_nowait(1011, "internal error")
        conn.close_nowait(1000)


async def serve(
    handler: Handler | None = None,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    config: HeartbeatConfig | None = None,
    codec: AppCodec = JSON_CODEC,
    ssl: ssl_module.SSLContext | None = None,
    max_size: int | None = DEFAULT_MAX_SIZE,
    max_queue: int = DEFAULT_MAX_QUEUE,
    max_queue_bytes: int = DEFAULT_MAX_QUEUE_BYTES,
    select_subprotocol: SelectSubprotocol | None = None,
    handshake_timeout: float = DEFAULT_OPEN_TIMEOUT,
    keepalive: TcpKeepalive | None = None,
    on_event: EventCallback | None = None,
    http_handler: HttpHandler | None = None,
    process_request: ProcessRequest | None = None,
    backlog: int = 1024,
    reuse_port: bool = False,
    on_message: MessageHandler | None = None,
) -> Server:
    """Listen on ``host:port`` and run ``handler(conn)`` for every WebSocket connection
    (in a task of its own), or ``await on_message(conn, message)`` for every message.

    When the handler returns, its connection is closed with 1000 (1011 if it
    raised). Heartbeats follow ``config``; ``on_event`` sees every event the core
    emits for every connection. ``select_subprotocol`` picks one of the
    subprotocols a client offers (``None``: none; if it raises or picks one that
    was not offered, the client gets a 500). ``handshake_timeout`` bounds the
    opening handshake: a client that does not finish it in time is dropped.
    ``http_handler`` answers plain HTTP GET and HEAD requests (``target ->
    (status, headers, body)``; ``None`` or no handler: 426 Upgrade Required).
    ``process_request(request)`` sees every request first (the core's ``Request`` or
    ``HttpRequest``, headers included) and refuses it by returning ``(status,
    headers, body)``, e.g. 403 for a foreign ``Origin``.

    ``max_queue`` (default 32) and ``max_queue_bytes`` (default 16 MiB) bound, per
    connection, the messages that arrived but the handler has not yet taken with
    ``recv()``: once that many messages, or more than that many bytes, wait
    unread, the connection stops reading its socket (TCP then slows the client
    down) until the handler has taken half of them. Meanwhile heartbeats still go
    out but nobody is declared dead (the core's ``paused-reading`` rule).

    ``backlog`` is the listening sockets' queue of connections not yet accepted.
    ``reuse_port=True`` sets ``SO_REUSEPORT`` on them: several processes (or
    servers) that all ask for it may listen on the same port, and the kernel spreads
    new connections among them (``heartbeat serve --workers N`` runs on it). Where
    the platform has no ``SO_REUSEPORT`` it raises
    :class:`~heartbeat_core.errors.ConfigError`.

    ``on_message`` (an ``async def``) instead of ``handler``: an idle connection holds no
    task (a waiting handler's costs about 2 KB). ``on_message(conn, message)`` is called
    for each message, in order and one at a time: at once, in the read that brought the
    message, until it first waits (a call that never waits needs no task); a call that
    waits goes on in a task, which delivers the messages that came meanwhile, and ends
    when none waits. A call that starts at once runs in a fresh copy of the context, as
    in a task of its own. Messages that come while
    a call waits wait in the receive queue as they would for ``recv()``, so its bounds
    pause reading while ``on_message`` is slow. If it raises, the error is logged
    and the connection closes with 1011 and gets no more messages (a
    :class:`~heartbeat_core.errors.ConnectionClosedError` is ignored, as from a handler).
    As no handler returns, nothing closes the connection but the peer, your code or
    :meth:`Server.close`; messages received before a close are still delivered. Pass
    exactly one of ``handler`` and ``on_message``.

    Every option is validated before anything listens: a bad one raises
    :class:`~heartbeat_core.errors.ConfigError` here.
    """
    check_application(
        handler, on_message,
        handler_runs="a task per connection",
        on_message_runs="a task only while a call waits",
        kind="async def",
    )  # fmt: skip
    options = ConnectionOptions(
        config=config,
        codec=codec,
        max_size=max_size,
        max_queue=max_queue,
        max_queue_bytes=max_queue_bytes,
        open_timeout=handshake_timeout,
        keepalive=keepalive,
    )
    policy = ServerPolicy(
        select_subprotocol=select_subprotocol,
        http_handler=http_handler,
        process_request=process_request,
        logger=logger,
    )
    options.new_core(Role.SERVER)  # the core's own checks, before listening
    reuse_port = check_reuse_port(reuse_port, available=hasattr(socket, "SO_REUSEPORT"))
    loop = asyncio.get_running_loop()
    server = Server(handler, on_message)
    role = Role.SERVER  # (read once: an enum's attribute is slow on 3.10/3.11)

    def factory() -> Connection:
        conn = Connection(role, options, on_event=on_event, policy=policy, loop=loop)
        conn._server, conn._delivery = server, server._delivery
        server._all.add(conn)
        return conn

    listener = Listener(
        loop,
        await bind(loop, host, port, backlog=backlog, reuse_port=reuse_port),
        factory,
        ssl=ssl,
        ssl_handshake_timeout=options.open_timeout if ssl is not None else None,
    )
    server._listener = listener
    server._port = int(listener.sockets[0].getsockname()[1])
    listener.start()
    logger.info("server listening on %s:%d", host, server.port)
    return server
