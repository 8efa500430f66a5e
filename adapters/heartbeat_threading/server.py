"""``serve()``: a threaded WebSocket server with heartbeats.

One reactor thread accepts, hand-shakes and supervises every connection (all
heartbeats, one timer heap); each open connection's ``handler(conn)`` runs in a
thread of its own, started by a launcher thread so that a burst of new
connections never holds up the reactor. When the handler returns, the
connection closes with 1000 (1011 if it raised).
"""

from __future__ import annotations

import logging
import queue
import random
import selectors
import socket
import ssl as ssl_module
import threading
import time
from collections.abc import Callable, Sequence
from types import TracebackType

from heartbeat_core import HeartbeatConfig, HeartbeatConnection, Role
from heartbeat_core.codec import JSON_CODEC, AppCodec
from heartbeat_core.config import check_queue_bounds
from heartbeat_core.errors import ConnectionClosedError
from heartbeat_core.state import validate_close
from heartbeat_core.tcp import TcpKeepalive
from heartbeat_core.wsevents import ConnectionEvent, HttpRequest, Request
from heartbeat_threading.connection import (
    DEFAULT_MAX_QUEUE,
    DEFAULT_MAX_QUEUE_BYTES,
    Connection,
    EventCallback,
)
from heartbeat_threading.keepalive import apply_keepalive
from heartbeat_threading.reactor import Reactor

__all__ = ["Handler", "HttpHandler", "Server", "serve"]

log = logging.getLogger("heartbeat_threading")

Handler = Callable[[Connection], None]
HttpHandler = Callable[[str], "tuple[int, list[tuple[str, str]], bytes] | None"]
_UPGRADE_REQUIRED = (426, [("Upgrade", "websocket")], b"This is a WebSocket endpoint.\n")


class Server:
    """A running server; see :func:`serve`. Usable as a context manager."""

    def __init__(
        self,
        handler: Handler,
        sock: socket.socket,
        *,
        config: HeartbeatConfig | None,
        codec: AppCodec,
        ssl: ssl_module.SSLContext | None,
        max_size: int | None,
        select_subprotocol: Callable[[Sequence[str]], str | None] | None,
        handshake_timeout: float,
        keepalive: TcpKeepalive | None,
        on_event: EventCallback | None,
        http_handler: HttpHandler | None,
        max_queue: int,
        max_queue_bytes: int,
        write_limit: int,
    ) -> None:
        self._handler = handler
        self._config = config
        self._codec = codec
        self._ssl = ssl
        self._max_size = max_size
        self._select_subprotocol = select_subprotocol
        self._handshake_timeout = handshake_timeout
        self._keepalive = keepalive
        self._on_event = on_event
        self._http_handler = http_handler
        self._max_queue = max_queue
        self._max_queue_bytes = max_queue_bytes
        self._write_limit = write_limit
        self._random = random.Random().random
        self.sockets = [sock]
        self.port: int = sock.getsockname()[1]
        self._cond = threading.Condition()
        self._conns: set[Connection] = set()
        self._handlers: set[threading.Thread] = set()
        self._launches: queue.SimpleQueue[Connection | None] = queue.SimpleQueue()
        self._launcher = threading.Thread(
            target=self._launch_handlers, name=f"heartbeat-launcher-{self.port}", daemon=True
        )
        self._launcher.start()
        self._close_started = False
        self._closed = threading.Event()
        self._reactor = Reactor(f"heartbeat-server-{self.port}")
        sock.setblocking(False)
        self._reactor.selector.register(sock, selectors.EVENT_READ, self._io_accept)
        self._reactor.start()
        log.info("serving on %s:%d", *sock.getsockname()[:2])

    @property
    def connections(self) -> frozenset[Connection]:
        """The open connections."""
        with self._cond:
            return frozenset(conn for conn in self._conns if conn._opened and not conn._done)

    def serve_forever(self) -> None:
        """Block until the server is closed; an interrupt (Ctrl-C) closes it gracefully."""
        try:
            self._closed.wait()
        finally:
            self.close()

    def close(self, code: int = 1001, reason: str = "going away", timeout: float = 5.0) -> None:
        """Stop accepting, close every connection with ``code``, wait at most ``timeout``
        seconds, abort what is left, and join the server's threads."""
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
        deadline = time.monotonic() + timeout
        self._reactor.call_soon(lambda: self._io_shutdown(code, reason))
        with self._cond:
            done = self._cond.wait_for(lambda: not self._conns, timeout)
        if not done:
            self._reactor.call_soon(self._io_abort_all)
            with self._cond:
                self._cond.wait_for(lambda: not self._conns, 1.0)
        self._reactor.stop()
        self._launches.put(None)
        self._launcher.join()
        with self._cond:
            threads = list(self._handlers)
        for thread in threads:
            if thread is threading.current_thread():
                continue  # close() called from a handler
            thread.join(max(0.1, deadline - time.monotonic()) + 1.0)
            if thread.is_alive():
                log.warning("handler thread %s did not return after close()", thread.name)
        log.info("server on port %d closed", self.port)
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
        listener = self.sockets[0]
        for _ in range(64):
            try:
                sock, _addr = listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # e.g. EMFILE: log and try again on the next event
                log.warning("accept failed: %s", exc)
                return
            try:
                self._io_add(sock)
            except OSError as exc:
                log.debug("dropping a new connection: %s", exc)
                sock.close()

    def _io_add(self, sock: socket.socket) -> None:
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self._keepalive is not None:
            apply_keepalive(sock, self._keepalive)
        if self._ssl is not None:
            sock = self._ssl.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        hc = HeartbeatConnection(
            Role.SERVER,
            self._config,
            codec=self._codec,
            max_message_size=self._max_size,
            random=self._random,
        )
        conn = Connection(
            hc,
            sock,
            self._reactor,
            on_event=self._on_event,
            max_queue=self._max_queue,
            max_queue_bytes=self._max_queue_bytes,
            write_limit=self._write_limit,
            tls_handshake=self._ssl is not None,
            handshake_deadline=time.monotonic() + self._handshake_timeout,
        )
        conn._request_hook = self._io_request
        conn._release_hook = self._io_forget
        with self._cond:
            self._conns.add(conn)
        conn._io_start([], time.monotonic())

    def _io_request(self, conn: Connection, event: ConnectionEvent, now: float) -> None:
        hc = conn._hc
        if isinstance(event, HttpRequest):
            answer = None
            if self._http_handler is not None:
                try:
                    answer = self._http_handler(event.target)
                except Exception:
                    log.exception("http_handler failed for %s", event.target)
                    answer = (500, [], b"Internal Server Error\n")
            status, headers, body = answer or _UPGRADE_REQUIRED
            conn._io_after(hc.respond(status, body, headers=headers), now)
            return
        if not isinstance(event, Request):
            return
        if self._close_started:
            conn._io_after(hc.reject(503, b"Server shutting down\n"), now)
            return
        subprotocol = None
        if self._select_subprotocol is not None and event.subprotocols:
            try:
                subprotocol = self._select_subprotocol(event.subprotocols)
            except Exception:
                log.exception("select_subprotocol failed")
                conn._io_after(hc.reject(500, b"Internal Server Error\n"), now)
                return
        events = hc.accept(now=now, subprotocol=subprotocol)
        conn.subprotocol = subprotocol
        conn._opened = True
        with conn._cond:
            conn._open = True
        log.info("%s: open (server, path %s)", conn._label, event.target)
        self._launches.put(conn)
        conn._io_after(events, now)

    def _io_forget(self, conn: Connection) -> None:
        with self._cond:
            self._conns.discard(conn)
            self._cond.notify_all()

    def _io_shutdown(self, code: int, reason: str) -> None:
        for sock in self.sockets:
            self._reactor.selector.unregister(sock)
            sock.close()
        for conn in list(self._conns):
            if conn._opened:
                conn._io_close(code, reason)
            else:
                conn._io_release()

    def _io_abort_all(self) -> None:
        for conn in list(self._conns):
            conn._io_release()

    # -------------------------------------------------------- handler threads

    def _launch_handlers(self) -> None:
        while (conn := self._launches.get()) is not None:
            thread = threading.Thread(
                target=self._run_handler,
                args=(conn,),
                name=f"heartbeat-handler-{conn._label}",
                daemon=True,
            )
            with self._cond:
                self._handlers.add(thread)
            thread.start()

    def _run_handler(self, conn: Connection) -> None:
        code, reason = 1000, ""
        try:
            self._handler(conn)
        except ConnectionClosedError as exc:  # the peer went away mid-send: a normal end
            log.debug("%s: handler stopped: %s", conn._label, exc)
        except Exception:
            log.exception("%s: handler failed", conn._label)
            code, reason = 1011, "internal error"
        finally:
            conn.close(code, reason)
            with self._cond:
                self._handlers.discard(threading.current_thread())


def serve(
    handler: Handler,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    config: HeartbeatConfig | None = None,
    codec: AppCodec = JSON_CODEC,
    ssl: ssl_module.SSLContext | None = None,
    max_size: int | None = 1 << 20,
    select_subprotocol: Callable[[Sequence[str]], str | None] | None = None,
    handshake_timeout: float = 10.0,
    keepalive: TcpKeepalive | None = None,
    on_event: EventCallback | None = None,
    http_handler: HttpHandler | None = None,
    max_queue: int = DEFAULT_MAX_QUEUE,
    max_queue_bytes: int = DEFAULT_MAX_QUEUE_BYTES,
    write_limit: int = 64 * 1024,
    backlog: int = 1024,
) -> Server:
    """Listen on ``host:port`` (0: any free port, see ``Server.port``) and serve
    WebSocket connections with heartbeats; ``handler(conn)`` runs once per connection
    in its own thread. The server runs at once; ``server.serve_forever()`` blocks
    until it is closed. ``on_event`` sees every core event of every connection (on
    the I/O thread: keep it quick). ``http_handler(target)`` answers plain HTTP GETs
    with ``(status, headers, body)``; without one (or when it returns None) they get
    426 Upgrade Required.

    ``max_queue`` (default 32) and ``max_queue_bytes`` (default 16 MiB) bound, per
    connection, the messages that wait unread: at either bound the connection stops
    reading until the handler has taken half of both. Both must be positive ints,
    else :class:`~heartbeat_core.errors.ConfigError` is raised before anything listens."""
    max_queue, max_queue_bytes = check_queue_bounds(max_queue, max_queue_bytes)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.create_server((host, port), family=family, backlog=backlog)
    try:
        return Server(
            handler,
            sock,
            config=config,
            codec=codec,
            ssl=ssl,
            max_size=max_size,
            select_subprotocol=select_subprotocol,
            handshake_timeout=handshake_timeout,
            keepalive=keepalive,
            on_event=on_event,
            http_handler=http_handler,
            max_queue=max_queue,
            max_queue_bytes=max_queue_bytes,
            write_limit=write_limit,
        )
    except BaseException:
        sock.close()
        raise
