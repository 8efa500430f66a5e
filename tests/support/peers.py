"""Raw-socket WebSocket peers on loopback that complete the opening handshake and then do
only what the test says: for the frozen ones, nothing at all.

A *frozen* peer is like a process stopped by the debugger, or a laptop that went to sleep
behind NAT: the kernel keeps ACKing, the application never reads and never answers a
ping. Every wait here is bounded (socket timeouts, joins with a timeout).

* ``open_websocket``: a client socket right after the upgrade, nothing past the response
  head read (frozen until the test uses it).
* ``FrozenPeer``: such a client as an object, with ``drain`` to see what it was sent.
* ``FrozenServer``: a server in a thread that answers upgrades, then freezes.
"""

from __future__ import annotations

import base64
import os
import selectors
import socket
import threading
import time

from .frames import CLOSE, Frame, parse_frames, upgrade_request, upgrade_response, websocket_key

__all__ = ["HOST", "FrozenPeer", "FrozenServer", "open_websocket", "read_head"]

HOST = "127.0.0.1"


def read_head(sock: socket.socket) -> bytes:
    """Read an HTTP head, blank line included, byte by byte: nothing after it is consumed
    (what follows stays in the kernel, unread)."""
    head = b""
    while not head.endswith(b"\r\n\r\n"):
        chunk = sock.recv(1)
        if not chunk:
            raise AssertionError(f"the peer closed during the handshake: {head!r}")
        head += chunk
    return head


def open_websocket(
    port: int, path: str = "/", *, host: str = HOST, timeout: float = 10.0
) -> socket.socket:
    """A client socket to ``host:port`` that completed the WebSocket upgrade of ``path``
    (``AssertionError`` unless the answer is 101) and read nothing past the response head:
    it neither reads nor answers anything until the test makes it. ``timeout`` bounds
    every later operation on the socket too."""
    sock = socket.create_connection((host, port), timeout=timeout)
    try:
        key = base64.b64encode(os.urandom(16)).decode("ascii")
        sock.sendall(upgrade_request(f"{host}:{port}", path, key))
        head = read_head(sock)
        assert head.startswith(b"HTTP/1.1 101"), f"handshake refused: {head!r}"
    except BaseException:
        sock.close()
        raise
    return sock


class FrozenPeer:
    """A client that opens a WebSocket, then freezes. Call :meth:`drain` to see what it
    was sent meanwhile."""

    def __init__(self, host: str, port: int, path: str = "/", *, timeout: float = 10.0) -> None:
        self.sock = open_websocket(port, path, host=host, timeout=timeout)
        # From here on the peer is frozen: nothing is read until drain().

    def drain(self, timeout: float = 10.0, *, until_eof: bool = True) -> tuple[list[Frame], bool]:
        """Read until EOF (or, with ``until_eof=False``, until a close frame), bounded by
        ``timeout``: the frames, and whether EOF came."""
        data = bytearray()
        end = time.monotonic() + timeout
        eof = False
        while (left := end - time.monotonic()) > 0:
            if not until_eof and any(f.opcode == CLOSE for f in parse_frames(bytes(data))):
                break
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except TimeoutError:
                break
            except ConnectionResetError:
                eof = True
                break
            if not chunk:
                eof = True
                break
            data += chunk
        return parse_frames(bytes(data)), eof

    def close(self) -> None:
        self.sock.close()


class FrozenServer:
    """A server on ``127.0.0.1:port`` (0: a free port) that answers each WebSocket upgrade,
    then freezes: it never writes to that connection again, and never reads from it
    either, unless ``drain`` (then it reads and discards everything, so the client's
    writes never pile up, and still never answers).

    ``status``: answer the upgrade with this HTTP status instead of 101 (then hold the
    connection, silent). ``max_connections``: accept at most this many connections
    (``None``: any number); later ones wait in the listen backlog, never accepted.
    ``accepted`` counts the upgrades answered. Runs in a thread; :meth:`close` releases
    every socket and the thread (bounded). Binding raises ``OSError`` when the port is
    taken.
    """

    def __init__(
        self,
        port: int = 0,
        *,
        status: int = 101,
        drain: bool = False,
        max_connections: int | None = None,
    ) -> None:
        self._listener = socket.create_server((HOST, port), backlog=16)
        self._listener.setblocking(False)
        self.port: int = self._listener.getsockname()[1]
        self.status = status
        self.drain = drain
        self.max_connections = max_connections
        self.accepted = 0
        self._socks: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="frozen-server", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        selector = selectors.DefaultSelector()
        try:
            selector.register(self._listener, selectors.EVENT_READ)
            heads: dict[socket.socket, bytes] = {}  # connections still in the handshake
            while not self._stop.is_set():
                for key, _ in selector.select(timeout=0.05):
                    sock = key.fileobj
                    assert isinstance(sock, socket.socket)
                    if sock is self._listener:
                        self._accept(selector, heads)
                        continue
                    try:
                        data = sock.recv(65536)
                    except OSError:
                        data = b""
                    if sock not in heads:  # upgraded, drained: discard what it sends
                        if not data:
                            selector.unregister(sock)
                        continue
                    head = heads.pop(sock) + data
                    if data and b"\r\n\r\n" not in head:
                        heads[sock] = head
                        continue
                    if data:
                        self._answer(sock, head)
                    if not (data and self.drain and self.status == 101):
                        selector.unregister(sock)  # frozen: never read again
        finally:
            selector.close()

    def _accept(self, selector: selectors.BaseSelector, heads: dict[socket.socket, bytes]) -> None:
        try:
            conn, _ = self._listener.accept()
        except OSError:
            return
        conn.settimeout(5.0)  # read only when readable; bounds the one sendall
        self._socks.append(conn)
        heads[conn] = b""
        selector.register(conn, selectors.EVENT_READ)
        if self.max_connections is not None and len(self._socks) >= self.max_connections:
            selector.unregister(self._listener)

    def _answer(self, sock: socket.socket, head: bytes) -> None:
        if self.status == 101:
            answer = upgrade_response(websocket_key(head))
        else:
            answer = b"HTTP/1.1 %d Nope\r\ncontent-length: 0\r\nconnection: close\r\n\r\n" % (
                self.status
            )
        try:
            sock.sendall(answer)
        except OSError:
            return
        self.accepted += 1

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5.0)
        for sock in self._socks:
            sock.close()
        self._listener.close()
