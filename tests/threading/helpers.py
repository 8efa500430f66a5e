"""Raw-socket peers for the threading adapter's tests: hand-made handshakes and frames,
so faults (silence, slowness) are under the test's control."""

from __future__ import annotations

import base64
import hashlib
import os
import socket
import threading

from tests.support.frames import take_frame

__all__ = [
    "SLACK",
    "RawServer",
    "raw_client",
    "read_frame",
]

#: Generous slack for timing bounds: other people's tests share these 2 cores.
SLACK = 1.0
_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def _read_head(sock: socket.socket) -> tuple[bytes, bytes]:
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(4096)
        if not chunk:
            raise ConnectionError(f"EOF during the handshake after {buf!r}")
        buf += chunk
    head, _, rest = buf.partition(b"\r\n\r\n")
    return head, rest


def raw_client(port: int, path: str = "/") -> tuple[socket.socket, bytes]:
    """Open a WebSocket to our server by hand; return the socket and any bytes after the 101."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    key = base64.b64encode(os.urandom(16)).decode()
    request = (
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    sock.sendall(request.encode())
    head, rest = _read_head(sock)
    assert head.startswith(b"HTTP/1.1 101"), head
    return sock, rest


def read_frame(sock: socket.socket, buf: bytearray) -> tuple[int, bytes]:
    """Read one frame from ``sock``: ``(opcode, payload)``. ``buf`` keeps leftovers."""
    while (f := take_frame(buf)) is None:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("EOF while reading a frame")
        buf.extend(chunk)
    return f.opcode, f.payload


class RawServer:
    """Accepts one connection, answers the upgrade with ``status`` and then goes silent
    (never reads, never writes) until :meth:`close`: a frozen server."""

    def __init__(self, status: int = 101) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(5)
        self.port = self.listener.getsockname()[1]
        self.status = status
        self.conn: socket.socket | None = None
        self.answered = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            conn, _ = self.listener.accept()
        except OSError:
            return
        self.conn = conn
        head, _ = _read_head(conn)
        key = b""
        for line in head.split(b"\r\n"):
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"sec-websocket-key":
                key = value.strip()
        if self.status == 101:
            accept = base64.b64encode(hashlib.sha1(key + _GUID).digest())
            conn.sendall(
                b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n"
            )
        else:
            conn.sendall(b"HTTP/1.1 %d Nope\r\ncontent-length: 0\r\n\r\n" % self.status)
        self.answered.set()

    def close(self) -> None:
        self._thread.join(5)
        if self.conn is not None:
            self.conn.close()
        self.listener.close()
