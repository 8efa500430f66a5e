"""``serve()``: a threaded WebSocket server with heartbeats.

One reactor thread accepts, hand-shakes and supervises every connection (all
heartbeats, one timer wheel); each open connection's ``handler(conn)`` runs in a
thread of its own, started by a launcher thread so that a burst of new
connections never holds up the reactor. When the handler returns, the
connection closes with 1000 (1011 if it raised). What the server answers
(subprotocols, plain HTTP, 503 while shutting down) is decided by the core's
:class:`~heartbeat_core.policy.ServerPolicy`, the opening handshake is bounded by
the core (``handshake_timeout``, rule ``open-timeout``).

Out of resources, the server sheds load and keeps serving: when ``accept()`` runs
out of file descriptors it stops accepting for a short, growing pause
(:class:`~heartbeat_core.pacing.AcceptBackoff`) instead of spinning, and when a
handler's thread cannot start (a task limit) that connection is closed with 1013
(try again later); either is logged at most once a second.
"""

from __future__ import annotations

import logging
import queue
import selectors
import socket
import ssl as ssl_module
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import TypeAlias

from heartbeat_core import JSON_CODEC, AppCodec, HeartbeatConfig, Role
from heartbeat_core.config import DEFAULT_MAX_QUEUE, DEFAULT_MAX_QUEUE_BYTES
from heartbeat_core.errors import ConnectionClosedError
from heartbeat_core.options import DEFAULT_MAX_SIZE, DEFAULT_OPEN_TIMEOUT, ConnectionOptions
from heartbeat_core.pacing import RESOURCE_ERRNOS, AcceptBackoff, RateLimit
from heartbeat_core.policy import HttpHandler, ProcessRequest, SelectSubprotocol, ServerPolicy
from heartbeat_core.state import HeartbeatPhase, validate_close
from heartbeat_core.tcp import TcpKeepalive, apply_keepalive, check_reuse_port
from heartbeat_threading.connection import Connection, EventCallback
from heartbeat_threading.reactor import Reactor, TimerTask
from heartbeat_threading.transport import DEFAULT_WRITE_LIMIT, check_write_limit

__all__ = ["Handler", "HttpHandler", "ProcessRequest", "SelectSubprotocol", "Server", "serve"]

logger: logging.Logger = logging.getLogger("heartbeat_threading")

Handler: TypeAlias = Callable[[Connection], None]

#: The close of a connection whose handler's thread could not start.
_NO_THREAD = (1013, "try again later")


class Server:
    """A running server; see :func:`serve`. Usable as a context manager."""

    def __init__(
        self,
        handler: Handler,
        sock: socket.socket,
        options: ConnectionOptions,
        policy: ServerPolicy,
        *,
        ssl: ssl_module.SSLContext | None,
        on_event: EventCallback | None,
        write_limit: int,
    ) -> None:
        self._handler = handler
        self._options = options
        self._policy = policy
        self._ssl = ssl
        self._on_event = on_event
        self._write_limit = write_limit
        self.sockets: list[socket.socket] = [sock]
        self.port: int = sock.getsockname()[1]
        self._cond = threading.Condition()
        # Under _cond: every connection until released, the open ones, the handler threads.
        self._conns: set[Connection] = set()
        self._open: set[Connection] = set()
        self._handlers: set[threading.Thread] = set()
        self._close_started = False
        self._closed = threading.Event()
        self._launches: queue.SimpleQueue[Connection | None] = queue.SimpleQueue()
        self._no_thread_log = RateLimit(1.0)  # (launcher thread only)
        self._launcher = threading.Thread(
            target=self._launch_handlers, name=f"heartbeat-launcher-{self.port}", daemon=True
        )
        self._launcher.start()
        self._reactor = Reactor(f"heartbeat-server-{self.port}")
        self._accept_backoff = AcceptBackoff()  # (I/O thread only, like what follows)
        self._accept_timer = TimerTask(self._io_resume_accepting)
        self._accepting = True
        sock.setblocking(False)
        self._reactor.selector.register(sock, selectors.EVENT_READ, self._io_accept)
        try:
            self._reactor.start()
        except BaseException:
            self._launches.put(None)  # (e.g. no thread for the reactor: end the launcher)
            raise
        logger.info("serving on %s:%d", *sock.getsockname()[:2])

    @property
    def connections(self) -> frozenset[Connection]:
        """The open connections (handshake done, socket not yet released)."""
        with self._cond:
            return frozenset(self._open)

    @property
    def closing(self) -> bool:
        """True once :meth:`close` was called (new upgrades are refused with 503)."""
        with self._cond:
            return self._close_started

    def serve_forever(self) -> None:
        """Block until the server is closed; an interrupt (Ctrl-C) closes it gracefully."""
        try:
            self._closed.wait()
        finally:
            self.close()

    def close(self, code: int = 1001, reason: str = "going away", timeout: float = 5.0) -> None:
        """Stop accepting, close every connection with ``code``, wait at most ``timeout``
        seconds for them and their handlers, abort what is left, and join the server's
        threads."""
        validate_close(code, reason)
        if self._reactor.in_loop():
            raise RuntimeError(
                "Server.close() cannot run on the server's I/O thread (e.g. in on_event): "
                "call it from another thread"
            )
        with self._cond:
            first, self._close_started = not self._close_started, True
        if not first:
            self.wait_closed()
            return
        self._reactor.call_soon(lambda: self._io_shutdown(code, reason))
        me = threading.current_thread()  # close() may run in a handler: it waits not for itself
        with self._cond:
            self._cond.wait_for(lambda: not self._conns and not self._handlers - {me}, timeout)
            stragglers = len(self._conns)
        if stragglers:
            logger.info("aborting %d connections that did not close in time", stragglers)
            self._reactor.call_soon(self._io_abort_all)
            with self._cond:
                self._cond.wait_for(lambda: not self._conns, 1.0)
        self._reactor.stop()
        self._launches.put(None)
        self._launcher.join()
        with self._cond:  # every socket is released: handlers see ConnectionClosedError
            if not self._cond.wait_for(lambda: not self._handlers - {me}, 1.0):
                logger.warning("handler threads %s did not return after close()", self._handlers)
        logger.info("server on port %d closed", self.port)
        self._closed.set()

    def wait_closed(self) -> None:
        """Block until :meth:`close` has finished."""
        self._closed.wait()

    def __enter__(self) -> Server:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -------------------------------------------------------- reactor thread

    def _io_accept(self, mask: int) -> None:
        listener, backoff = self.sockets[0], self._accept_backoff
        for _ in range(64):
            try:
                sock, _addr = listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno in RESOURCE_ERRNOS:
                    self._io_pause_accepting(exc)
                    return
                logger.debug("accept failed: %s", exc)  # e.g. ECONNABORTED: that one is gone
                continue
            if backoff.failures and (failures := backoff.accepted(time.monotonic())):
                logger.warning("accepting again after %d failed accept() calls", failures)
            try:
                self._io_add(sock)
            except OSError as exc:
                logger.debug("dropping a new connection: %s", exc)
                sock.close()

    def _io_pause_accepting(self, exc: OSError) -> None:
        """Out of descriptors (or memory): the listening socket stays readable, so stop
        watching it for a short pause rather than spin on a failing accept()."""
        now = time.monotonic()
        pause = self._accept_backoff.failed(now)
        if pause.log:
            logger.warning(
                "accept failed: %s (%d times in a row): retrying every %.0f ms or sooner; "
                "raise the open-file limit (ulimit -n)",
                exc.strerror or exc, pause.failures, pause.delay * 1000,
            )  # fmt: skip
        self._reactor.selector.unregister(self.sockets[0])
        self._accepting = False
        self._reactor.file(self._accept_timer, now + pause.delay)

    def _io_resume_accepting(self) -> None:
        if not self._accepting and not self.closing:
            self._accepting = True
            self._reactor.selector.register(self.sockets[0], selectors.EVENT_READ, self._io_accept)

    def _io_add(self, sock: socket.socket) -> None:
        options = self._options
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if options.keepalive is not None:
            apply_keepalive(sock, options.keepalive)
        if self._ssl is not None:
            sock = self._ssl.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        conn = Connection(
            options.new_core(Role.SERVER),
            options,
            sock,
            self._reactor,
            on_event=self._on_event,
            policy=self._policy,
            server=self,
            write_limit=self._write_limit,
            tls_handshake=self._ssl is not None,
        )
        with self._cond:
            self._conns.add(conn)
        conn._io_start()  # the core bounds the TLS and WebSocket handshakes from now

    def _start(self, conn: Connection) -> None:
        """The handshake completed: run the application's handler."""
        with self._cond:
            self._open.add(conn)
        self._launches.put(conn)

    def _forget(self, conn: Connection) -> None:
        with self._cond:
            self._conns.discard(conn)
            self._open.discard(conn)
            self._cond.notify_all()

    def _io_shutdown(self, code: int, reason: str) -> None:
        self._reactor.unfile(self._accept_timer)
        for sock in self.sockets:
            if self._accepting:
                self._reactor.selector.unregister(sock)
            sock.close()
        self._accepting = False
        with self._cond:
            conns = list(self._conns)
        for conn in conns:
            if conn.is_open:
                conn._io_call(conn.core.close, code, reason)
            elif conn.core.phase is HeartbeatPhase.NEW:
                conn._transport.abort()  # still in its opening handshake

    def _io_abort_all(self) -> None:
        with self._cond:
            conns = list(self._conns)
        for conn in conns:
            conn._transport.abort()

    # -------------------------------------------------------- handler threads

    def _launch_handlers(self) -> None:
        while (conn := self._launches.get()) is not None:
            thread = threading.Thread(
                target=self._run_handler,
                args=(conn,),
                name=f"heartbeat-handler-{conn.remote_address}",
                daemon=True,
            )
            with self._cond:
                self._handlers.add(thread)
            try:
                thread.start()
            except RuntimeError as exc:  # "can't start new thread": a task limit was hit
                self._no_thread(conn, thread, exc)
            del conn, thread  # (kept until the next launch, they would keep the connection)

    def _no_thread(self, conn: Connection, thread: threading.Thread, exc: RuntimeError) -> None:
        """Refuse ``conn`` (1013, try again later) and serve on: threads may free up."""
        with self._cond:
            self._handlers.discard(thread)
            self._cond.notify_all()
        if (held := self._no_thread_log.allow(time.monotonic())) is not None:
            logger.warning(
                "cannot start a handler thread (%s): closing %s with 1013 (and %d more since "
                "the last report); raise the task limit (ulimit -u, TasksMax)", exc, conn, held
            )  # fmt: skip
        self._reactor.call_soon(lambda: conn._io_call(conn.core.close, *_NO_THREAD))

    def _run_handler(self, conn: Connection) -> None:
        code, reason = 1000, ""
        try:
            self._handler(conn)
        except ConnectionClosedError as exc:  # the peer went away mid-send: a normal end
            logger.debug("%s: handler stopped: %s", conn, exc)
        except Exception:
            logger.exception("%s: handler failed; closing with 1011", conn)
            code, reason = 1011, "internal error"
        finally:
            conn.close(code, reason)
            with self._cond:
                self._handlers.discard(threading.current_thread())
                self._cond.notify_all()


def serve(
    handler: Handler,
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
    write_limit: int = DEFAULT_WRITE_LIMIT,
    backlog: int = 1024,
    reuse_port: bool = False,
) -> Server:
    """Listen on ``host:port`` (0: any free port, see ``Server.port``) and serve
    WebSocket connections with heartbeats; ``handler(conn)`` runs once per connection
    in its own thread. The server runs at once; ``server.serve_forever()`` blocks
    until it is closed.

    Heartbeats follow ``config``; ``on_event`` sees every event the core emits for
    every connection, ``Closed`` included, also for those that never opened (on the
    I/O thread: keep it quick). ``select_subprotocol`` picks one of the subprotocols
    a client offers (``None``: none; if it raises or picks one that was not offered,
    the client gets a 500). ``handshake_timeout`` bounds the opening handshake (TLS
    included): a client that does not finish it in time is dropped.
    ``http_handler(target)`` answers plain HTTP GET and HEAD requests with
    ``(status, headers, body)``; without one (or when it returns None) they get 426
    Upgrade Required. ``process_request(request)`` sees every request first (the
    core's ``Request`` or ``HttpRequest``, headers included) and refuses it by
    returning ``(status, headers, body)``, e.g. 403 for a foreign ``Origin``.
    ``send()`` blocks while more than ``write_limit`` bytes wait.

    ``max_queue`` (default 32) and ``max_queue_bytes`` (default 16 MiB) bound, per
    connection, the messages that wait unread: at either bound the connection stops
    reading until the handler has taken half of both (meanwhile nobody is declared
    dead: the core's ``paused-reading`` rule). ``reuse_port=True`` sets
    ``SO_REUSEPORT`` on the listening socket: several processes (or servers) that all
    ask for it may listen on the same port, and the kernel spreads new connections
    among them (a :class:`~heartbeat_core.errors.ConfigError` where the platform has
    no ``SO_REUSEPORT``).

    Every option is validated before anything listens: a bad one raises
    :class:`~heartbeat_core.errors.ConfigError` here.
    """
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
    check_write_limit(write_limit)
    reuse_port = check_reuse_port(reuse_port, available=hasattr(socket, "SO_REUSEPORT"))
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.create_server(
        (host, port), family=family, backlog=backlog, reuse_port=reuse_port
    )
    try:
        return Server(
            handler, sock, options, policy, ssl=ssl, on_event=on_event, write_limit=write_limit
        )
    except BaseException:
        sock.close()
        raise
