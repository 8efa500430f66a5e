"""Raw-socket WebSocket peers on loopback that complete the opening handshake and then
misbehave exactly as told. Every wait is bounded (socket timeouts, joins with a timeout).

* :func:`open_websocket`: a client socket right after the upgrade; nothing past the
  response head was read, and nothing will be until the test says so.
* :class:`FrozenPeer`: such a client as an object (a process stopped in the debugger,
  a laptop asleep behind NAT: the kernel still ACKs, nobody reads or answers), with
  :meth:`FrozenPeer.drain` to see what it was sent meanwhile.
* :class:`FrozenServer`: a server that answers upgrades, then never answers again.
* :class:`SlowReader`: a client that answers pings but reads at most ``rate`` bytes a
  second, so that what is sent to it piles up.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import selectors
import socket
import struct
import threading
import time
from dataclasses import dataclass

__all__ = ["Frame", "FrozenPeer", "FrozenServer", "SlowReader", "open_websocket"]

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_CLOSE, _PING, _PONG = 0x8, 0x9, 0xA


@dataclass(frozen=True, slots=True)
class Frame:
    """A frame as it came off the wire (``payload`` unmasked)."""

    fin: bool
    rsv: int
    opcode: int
    masked: bool
    payload: bytes

    @property
    def close_code(self) -> int | None:
        """The code of a close frame (``None`` for other frames or an empty close)."""
        if self.opcode != _CLOSE or len(self.payload) < 2:
            return None
        return int(struct.unpack("!H", self.payload[:2])[0])

    @property
    def close_reason(self) -> bytes:
        """The reason of a close frame, as sent (UTF-8)."""
        return self.payload[2:] if self.opcode == _CLOSE else b""


def _unmask(payload: bytes, key: bytes) -> bytes:
    n = len(payload)
    stream = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(stream, "big")).to_bytes(n, "big")


def _take(buf: bytearray) -> Frame | None:
    """The first complete frame of ``buf`` (removed from it), or ``None``."""
    if len(buf) < 2:
        return None
    n, pos = buf[1] & 0x7F, 2
    if n == 126:
        if len(buf) < 4:
            return None
        n, pos = struct.unpack_from("!H", buf, 2)[0], 4
    elif n == 127:
        if len(buf) < 10:
            return None
        n, pos = struct.unpack_from("!Q", buf, 2)[0], 10
    masked = bool(buf[1] & 0x80)
    end = pos + (4 if masked else 0) + n
    if len(buf) < end:
        return None
    payload = bytes(buf[end - n : end])
    if masked:
        payload = _unmask(payload, bytes(buf[pos : pos + 4]))
    frame = Frame(bool(buf[0] & 0x80), (buf[0] >> 4) & 7, buf[0] & 0x0F, masked, payload)
    del buf[:end]
    return frame


def _client_frame(opcode: int, payload: bytes) -> bytes:
    """A masked frame, as a client sends (payload at most 125 bytes)."""
    key = os.urandom(4)
    return bytes([0x80 | opcode, 0x80 | len(payload)]) + key + _unmask(payload, key)


def _read_head(sock: socket.socket) -> bytes:
    head = b""
    while not head.endswith(b"\r\n\r\n"):
        chunk = sock.recv(1)  # one byte at a time: nothing after the head is consumed
        if not chunk:
            raise ConnectionError(f"the peer closed during the handshake: {head!r}")
        head += chunk
    return head


def open_websocket(
    port: int, path: str = "/", *, host: str = "127.0.0.1", timeout: float = 10.0
) -> socket.socket:
    """A client socket to ``host:port`` that completed the WebSocket upgrade of ``path``
    (``ConnectionError`` unless the answer is 101) and read nothing past the response
    head. ``timeout`` bounds every later operation on the socket too."""
    sock = socket.create_connection((host, port), timeout=timeout)
    try:
        key = base64.b64encode(os.urandom(16)).decode("ascii")
        sock.sendall(
            (
                f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                "Sec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        head = _read_head(sock)
        if not head.startswith(b"HTTP/1.1 101"):
            raise ConnectionError(f"handshake refused: {head[:200]!r}")
    except BaseException:
        sock.close()
        raise
    return sock


class FrozenPeer:
    """A client that opens a WebSocket to ``host:port``, then freezes: it never reads
    and never answers. :meth:`drain` reads what it was sent meanwhile."""

    def __init__(self, host: str, port: int, path: str = "/", *, timeout: float = 10.0) -> None:
        self.sock: socket.socket = open_websocket(port, path, host=host, timeout=timeout)

    def drain(self, timeout: float = 10.0, *, until_eof: bool = True) -> tuple[list[Frame], bool]:
        """Read until EOF (or, with ``until_eof=False``, until a close frame), for at
        most ``timeout`` seconds: the frames, and whether EOF came."""
        buf = bytearray()
        frames: list[Frame] = []
        end = time.monotonic() + timeout
        eof = False
        while (left := end - time.monotonic()) > 0:
            if not until_eof and any(f.opcode == _CLOSE for f in frames):
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
            buf += chunk
            while (f := _take(buf)) is not None:
                frames.append(f)
        return frames, eof

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> FrozenPeer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _accept_key(key: bytes) -> str:
    return base64.b64encode(hashlib.sha1(key + _GUID).digest()).decode()


def _websocket_key(head: bytes) -> bytes:
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"sec-websocket-key":
            return value.strip()
    return b""


class FrozenServer:
    """A server on ``127.0.0.1:port`` (0: a free one, see :attr:`port`) that answers
    each WebSocket upgrade, then freezes: it never writes to that connection again, and
    never reads from it either, unless ``drain`` (then it reads and discards
    everything, and still never answers).

    ``status``: answer the upgrade with this HTTP status instead of 101 (then hold the
    connection, silent). ``max_connections``: accept at most this many (later ones wait
    in the backlog). :attr:`accepted` counts the upgrades answered. Runs in a thread;
    :meth:`close` releases every socket and the thread (bounded). ``OSError`` when the
    port is taken.
    """

    def __init__(
        self,
        port: int = 0,
        *,
        status: int = 101,
        drain: bool = False,
        max_connections: int | None = None,
    ) -> None:
        self._listener = socket.create_server(("127.0.0.1", port), backlog=16)
        self._listener.setblocking(False)
        self.port: int = self._listener.getsockname()[1]
        self.status: int = status
        self.drain: bool = drain
        self.max_connections: int | None = max_connections
        self.accepted: int = 0
        self._socks: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="frozen-server", daemon=True)
        self._thread.start()

    def url(self, path: str = "/") -> str:
        """``ws://127.0.0.1:PORT/path``."""
        return f"ws://127.0.0.1:{self.port}{path}"

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
            answer = (
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                "Connection: Upgrade\r\n"
                f"Sec-WebSocket-Accept: {_accept_key(_websocket_key(head))}\r\n\r\n"
            ).encode()
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

    def __enter__(self) -> FrozenServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class SlowReader:
    """A client that opens a WebSocket and then reads at most ``rate`` bytes a second
    (in reads of at most ``chunk`` bytes), answering every ping it reads with its pong
    and a close frame with its close. What is sent to it faster piles up in the
    kernel's buffers and then in the sender's. :attr:`received` counts the bytes read
    after the handshake, :attr:`frames` keeps the frames. Stops at EOF or
    :meth:`close` (bounded)."""

    def __init__(
        self,
        host: str,
        port: int,
        path: str = "/",
        *,
        rate: float = 1024.0,
        chunk: int = 256,
        timeout: float = 10.0,
    ) -> None:
        if not rate > 0 or chunk < 1:
            raise ValueError(f"rate must be > 0 and chunk >= 1, got {rate!r}, {chunk!r}")
        self.sock: socket.socket = open_websocket(port, path, host=host, timeout=timeout)
        self.rate: float = rate
        self.chunk: int = chunk
        self.received: int = 0
        self.frames: list[Frame] = []
        self.eof: bool = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, name="slow-reader", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        buf = bytearray()
        self.sock.settimeout(0.2)
        while not self._stop.is_set():
            try:
                data = self.sock.recv(self.chunk)
            except TimeoutError:
                continue
            except OSError:
                data = b""
            if not data:
                self.eof = True
                return
            self.received += len(data)
            buf += data
            while (f := _take(buf)) is not None:
                self.frames.append(f)
                with contextlib.suppress(OSError):
                    if f.opcode == _PING:
                        self.sock.sendall(_client_frame(_PONG, f.payload))
                    elif f.opcode == _CLOSE:
                        self.sock.sendall(_client_frame(_CLOSE, f.payload[:2]))
            self._stop.wait(len(data) / self.rate)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5.0)
        self.sock.close()

    def __enter__(self) -> SlowReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
