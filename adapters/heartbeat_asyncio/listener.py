"""The asyncio server's listening sockets and accept loop, on any asyncio loop.

asyncio's own accept loop (``loop.create_server``) answers a lack of file
descriptors with an error record per failed ``accept()``, thousands a second,
and uvloop's with libuv's behaviour: each loop its own. This one is ours and the
same on every loop (it needs only ``add_reader``, ``call_later`` and
``connect_accepted_socket``): out of descriptors (or memory, or buffers), it stops
watching the listening socket for a short, growing pause decided by
:class:`~heartbeat_core.pacing.AcceptBackoff`, logs at most once a second, and
accepts again within 20 ms of descriptors being freed.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl as ssl_module
from collections.abc import Callable

from heartbeat_core.pacing import RESOURCE_ERRNOS, AcceptBackoff

__all__ = ["Listener", "bind"]

logger: logging.Logger = logging.getLogger("heartbeat_asyncio")

#: Connections accepted per readiness event, so that a burst cannot starve the loop.
_ACCEPTS_PER_EVENT = 64


async def bind(
    loop: asyncio.AbstractEventLoop,
    host: str | None,
    port: int,
    *,
    backlog: int = 1024,
    reuse_port: bool = False,
) -> list[socket.socket]:
    """Listening sockets on every address ``host`` resolves to (``None`` or ``""``: all
    interfaces), as ``loop.create_server`` makes them (``SO_REUSEPORT`` set when
    ``reuse_port``). Raises :class:`OSError` (e.g. the address is in use) with nothing
    left open."""
    infos = await loop.getaddrinfo(
        host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )
    sockets: list[socket.socket] = []
    try:
        for family, kind, proto, _, address in dict.fromkeys(infos):
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if reuse_port:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            if family == socket.AF_INET6 and hasattr(socket, "IPPROTO_IPV6"):
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(address)
            sock.listen(backlog)
            sock.setblocking(False)
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    return sockets


class Listener:
    """Accepts on ``sockets`` and hands every connection to the loop as a transport
    whose protocol ``factory()`` makes (TLS first, when ``ssl`` is given)."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        sockets: list[socket.socket],
        factory: Callable[[], asyncio.BaseProtocol],
        *,
        ssl: ssl_module.SSLContext | None = None,
        ssl_handshake_timeout: float | None = None,
    ) -> None:
        self.sockets = sockets
        self._loop = loop
        self._factory = factory
        self._ssl = ssl
        self._ssl_handshake_timeout = ssl_handshake_timeout
        self._backoff = AcceptBackoff()
        self._paused: dict[socket.socket, asyncio.TimerHandle] = {}
        self._made: set[asyncio.Task[object]] = set()  # transports being made
        self._closed = False

    def start(self) -> None:
        for sock in self.sockets:
            self._loop.add_reader(sock.fileno(), self._accept, sock)

    def close(self) -> None:
        """Stop accepting and close the listening sockets (connections stay)."""
        if self._closed:
            return
        self._closed = True
        for sock in self.sockets:
            timer = self._paused.pop(sock, None)
            if timer is None:
                self._loop.remove_reader(sock.fileno())
            else:
                timer.cancel()
            sock.close()
        for task in self._made:  # (TLS handshakes under way)
            task.cancel()

    def _accept(self, listener: socket.socket) -> None:
        backoff = self._backoff
        for _ in range(_ACCEPTS_PER_EVENT):
            try:
                sock, _ = listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno in RESOURCE_ERRNOS:
                    self._pause(listener, exc)
                    return
                logger.debug("accept failed: %s", exc)  # e.g. ECONNABORTED: that one is gone
                continue
            if backoff.failures and (failures := backoff.accepted(self._loop.time())):
                logger.warning("accepting again after %d failed accept() calls", failures)
            sock.setblocking(False)
            task = self._loop.create_task(self._connect(sock))
            self._made.add(task)
            task.add_done_callback(self._made.discard)

    async def _connect(self, sock: socket.socket) -> object:
        try:
            return await self._loop.connect_accepted_socket(
                self._factory,
                sock,
                ssl=self._ssl,
                ssl_handshake_timeout=self._ssl_handshake_timeout,
            )
        except Exception as exc:  # reset, TLS failure or timeout...: that one is gone
            logger.debug("dropping a new connection: %r", exc)
            sock.close()
            return None

    def _pause(self, listener: socket.socket, exc: OSError) -> None:
        """Out of resources: the listening socket stays readable, so stop watching it
        for a short pause rather than spin on a failing accept()."""
        pause = self._backoff.failed(self._loop.time())
        if pause.log:
            logger.warning(
                "accept failed: %s (%d times in a row): retrying every %.0f ms or sooner; "
                "raise the open-file limit (ulimit -n)",
                exc.strerror or exc,
                pause.failures,
                pause.delay * 1000,
            )
        self._loop.remove_reader(listener.fileno())
        self._paused[listener] = self._loop.call_later(pause.delay, self._resume, listener)

    def _resume(self, listener: socket.socket) -> None:
        del self._paused[listener]
        self._loop.add_reader(listener.fileno(), self._accept, listener)
