"""A well-behaved WebSocket client process holding N connections, for SIGSTOP tests.

    python peer_process.py HOST PORT N [LIFETIME]

Opens N connections, prints ``{"ready": N}``, then answers every ping with its pong
until LIFETIME seconds (default 60) pass or every connection is closed. Freezing this
process (SIGSTOP) makes all N peers half-open at once: the kernel still ACKs, nobody
answers.
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import socket
import sys
import time

# Run as a script: the checkout goes on the path, for the tests' shared frame kit.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from tests.support.frames import CLOSE, PING, PONG, FrameReader, frame, upgrade_request


def main() -> None:
    host, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    lifetime = float(sys.argv[4]) if len(sys.argv) > 4 else 60.0
    end = time.monotonic() + lifetime
    sel = selectors.DefaultSelector()
    for _ in range(n):
        sock = socket.create_connection((host, port), timeout=10)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.sendall(upgrade_request())
        buf = b""
        while b"\r\n\r\n" not in buf:
            chunk = sock.recv(4096)
            if not chunk:
                raise SystemExit("closed during the handshake")
            buf += chunk
        head, _, rest = buf.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101 "), head
        reader = FrameReader(expect_masked=False)
        sock.setblocking(False)
        sel.register(sock, selectors.EVENT_READ, reader)
        for f in reader.feed(rest):
            if f.opcode == PING:
                sock.sendall(frame(PONG, f.payload))
    sys.stdout.write(json.dumps({"ready": n}) + "\n")
    sys.stdout.flush()
    open_socks = n
    while open_socks and time.monotonic() < end:
        for key, _ in sel.select(timeout=0.5):
            sock = key.fileobj  # type: ignore[assignment]
            assert isinstance(sock, socket.socket)  # registered above: always a socket
            try:
                data = sock.recv(65536)
            except OSError:
                data = b""
            frames = key.data.feed(data) if data else []
            done = not data
            for f in frames:
                with contextlib.suppress(OSError):
                    if f.opcode == PING:
                        sock.sendall(frame(PONG, f.payload))
                    elif f.opcode == CLOSE:
                        sock.sendall(frame(CLOSE, f.payload[:2]))
                        done = True
            if done:
                sel.unregister(sock)
                sock.close()
                open_socks -= 1


if __name__ == "__main__":
    main()
