"""Helpers for the embedding examples' tests: a frozen peer and a raw frame reader.

A *frozen* peer completes the WebSocket handshake on a real loopback socket and
then never reads or writes again, like a process stopped by the debugger or a
laptop that went to sleep behind NAT: the kernel keeps ACKing, the application
never answers a ping. Every wait here is bounded.
"""

from __future__ import annotations

import base64
import hashlib
import os
import socket
import threading
import time

from tests.support.frames import Frame, parse_frames

# Short timings for tests: a heartbeat every 0.1 s, a dead peer found 0.25 s later.
INTERVAL = 0.1
TIMEOUT = 0.25
CLOSE_TIMEOUT = 0.5
# Generous bounds for waits, so a loaded machine cannot make the tests flaky.
WAIT = 10.0


class FrozenPeer:
    """A client that opens a WebSocket, then freezes. Call :meth:`drain` to see what it was sent."""

    def __init__(self, host: str, port: int, path: str = "/") -> None:
        self.sock = socket.create_connection((host, port), timeout=WAIT)
        key = base64.b64encode(os.urandom(16)).decode("ascii")
        request = (
            f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n"
        )
        self.sock.sendall(request.encode("ascii"))
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise AssertionError(f"server closed during the handshake: {head!r}")
            head += chunk
        status_line, _, self.rest = head.partition(b"\r\n\r\n")
        if not status_line.startswith(b"HTTP/1.1 101"):
            raise AssertionError(f"handshake refused: {status_line!r}")
        # From here on the peer is frozen: nothing is read until drain().

    def drain(self, timeout: float = WAIT, *, until_eof: bool = True) -> tuple[list[Frame], bool]:
        """Read until EOF (or, with ``until_eof=False``, until a close frame), bounded by
        ``timeout``: the frames, and whether EOF came."""
        data = bytearray(self.rest)
        end = time.monotonic() + timeout
        eof = False
        while (left := end - time.monotonic()) > 0:
            if not until_eof and any(f.opcode == 0x8 for f in parse_frames(bytes(data))):
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


def free_socket(port: int = 0) -> socket.socket:
    """A listening-ready TCP socket bound to loopback ``port`` (0: a free one)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    return sock


def assert_dead_peer_closed(peer: FrozenPeer, *, dropped: bool = True) -> list[Frame]:
    """The frozen peer was pinged, then sent close 1011 ``heartbeat-timeout``, then (unless
    ``dropped`` is false) its socket was released."""
    frames, eof = peer.drain(until_eof=dropped)
    opcodes = [f.opcode for f in frames]
    closes = [f for f in frames if f.opcode == 0x8]
    assert closes, f"no close frame in {opcodes}"
    assert closes[0].close_code == 1011, closes[0]
    assert closes[0].close_reason == b"heartbeat-timeout", closes[0]
    assert eof or not dropped, "the server kept the dead peer's socket open"
    return frames


class FrozenServer:
    """A server that accepts one WebSocket, answers the handshake, then freezes (never reads,
    never answers a ping). Runs in a thread; every wait is bounded."""

    def __init__(self, port: int = 0) -> None:
        self.listener = free_socket(port)
        self.listener.listen(8)
        self.listener.settimeout(WAIT)
        self.port: int = self.listener.getsockname()[1]
        self.accepted: list[socket.socket] = []
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            sock, _ = self.listener.accept()
        except OSError:
            return
        self.accepted.append(sock)
        sock.settimeout(WAIT)
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = sock.recv(4096)
            if not chunk:
                return
            head += chunk
        key = next(
            line.split(b":", 1)[1].strip()
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"sec-websocket-key:")
        )
        accept = base64.b64encode(hashlib.sha1(key + _GUID).digest())
        sock.sendall(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Accept: " + accept + b"\r\n\r\n"
        )
        # Frozen from here on.

    def close(self) -> None:
        self.listener.close()
        self.thread.join(WAIT)
        for sock in self.accepted:
            sock.close()


_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
