"""A flooding WebSocket client, run as its own process by the fault tests.

    python flood_client.py PORT MODE SECONDS [FRAMES_PER_CONNECTION]

MODE ``ping``: open a connection, send FRAMES_PER_CONNECTION pings as fast as the socket
takes them, read until the server closes, reconnect; for SECONDS. MODE ``pong``: one
connection sending unsolicited pongs (random payloads) for SECONDS, then close 1000.
Prints one JSON line: connections, close codes, pongs received, frames sent.
Bounded: every socket has a timeout, every loop a deadline.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
import time

# Run as a script: the checkout goes on the path, for the tests' shared frame kit.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from tests.support.frames import CLOSE, PING, PONG, FrameReader, frame, upgrade_request


def _open(port: int) -> tuple[socket.socket, FrameReader]:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.sendall(upgrade_request())
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(4096)
        if not chunk:
            raise ConnectionError("closed during the handshake")
        buf += chunk
    head, _, rest = buf.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 101 "):
        raise ConnectionError(head.decode("latin-1"))
    reader = FrameReader(expect_masked=False)
    reader.feed(rest)
    return sock, reader


def ping_flood(port: int, seconds: float, per_conn: int) -> dict[str, object]:
    end = time.monotonic() + seconds
    blob = frame(PING, b"flood") * per_conn
    codes: dict[str, int] = {}
    pongs = sent = conns = 0
    close_ms: list[float] = []
    while time.monotonic() < end and conns < 1000:
        sock, reader = _open(port)
        conns += 1
        t0 = time.monotonic()
        code = None
        with contextlib.closing(sock):
            with contextlib.suppress(OSError):
                for i in range(0, len(blob), 65536):
                    sock.sendall(blob[i : i + 65536])
                    sent += len(blob[i : i + 65536]) // 11
            sock.settimeout(max(0.1, end - time.monotonic() + 2))
            with contextlib.suppress(OSError):
                while code is None:
                    chunk = sock.recv(65536)
                    if not chunk:
                        break
                    for f in reader.feed(chunk):
                        if f.opcode == PONG:
                            pongs += 1
                        elif f.opcode == CLOSE:
                            code = f.close_code
        close_ms.append((time.monotonic() - t0) * 1000)
        codes[str(code)] = codes.get(str(code), 0) + 1
    return {
        "connections": conns,
        "codes": codes,
        "pongs": pongs,
        "pings_sent": sent,
        "max_close_ms": max(close_ms, default=0.0),
    }


def pong_flood(port: int, seconds: float) -> dict[str, object]:
    """Reconnect and burst stray pongs until SECONDS pass; report the close codes."""
    end = time.monotonic() + seconds
    rnd = os.urandom(4096)
    batch = b"".join(frame(PONG, rnd[i : i + 1 + i % 120]) for i in range(2000))
    codes: dict[str, int] = {}
    conns = 0
    while time.monotonic() < end and conns < 1000:
        sock, reader = _open(port)
        conns += 1
        code = None
        with contextlib.closing(sock):
            with contextlib.suppress(OSError):
                for _ in range(50):
                    sock.sendall(batch)
            sock.settimeout(3.0)
            with contextlib.suppress(OSError):
                while code is None:
                    chunk = sock.recv(65536)
                    if not chunk:
                        break
                    for f in reader.feed(chunk):
                        if f.opcode == CLOSE:
                            code = f.close_code
        codes[str(code)] = codes.get(str(code), 0) + 1
    first = next(iter(codes), "None")
    return {"connections": conns, "codes": codes, "code": None if first == "None" else int(first)}


def main() -> None:
    port, mode, seconds = int(sys.argv[1]), sys.argv[2], float(sys.argv[3])
    if mode == "ping":
        per_conn = int(sys.argv[4]) if len(sys.argv) > 4 else 30_000
        result = ping_flood(port, seconds, per_conn)
    else:
        result = pong_flood(port, seconds)
    sys.stdout.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
