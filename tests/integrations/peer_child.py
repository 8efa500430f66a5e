"""A WebSocket peer in a process of its own, for the integrations' tests (SIGSTOP it to
freeze it: the kernel still ACKs, nothing answers).

    python peer_child.py client HOST PORT PATH [hello]
    python peer_child.py server

``client`` opens one WebSocket to HOST:PORT PATH; ``server`` listens on a free port of
127.0.0.1 (printing ``{"event": "listening", "port": N}``) for one. Either way it prints
``{"event": "ready"}`` once open, answers every ping frame with its pong and every
``{"type":"ping"}`` message with ``{"type":"pong"}``, and prints one JSON line per frame
received (``{"event": "frame", "op": 9, "data": "1"}``). With ``hello`` it then sends one
``{"type":"ping"}`` of its own and the text ``hello``. A close frame is answered and
printed (``{"event": "close", "code": 1011, "reason": "..."}``); the process ends at EOF
or after 30 s.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

import contextlib

from tests.support.frames import (
    CLOSE,
    MASK,
    PING,
    PONG,
    TEXT,
    FrameReader,
    frame,
    upgrade_request,
    upgrade_response,
    websocket_key,
)

APP_PING = b'{"type":"ping"}'
APP_PONG = b'{"type":"pong"}'


def say(**record: object) -> None:
    sys.stdout.write(json.dumps(record) + "\n")
    sys.stdout.flush()


def head(sock: socket.socket) -> tuple[bytes, bytes]:
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(4096)
        if not chunk:
            raise SystemExit("closed during the handshake")
        buf += chunk
    first, _, rest = buf.partition(b"\r\n\r\n")
    return first, rest


def main() -> None:
    mode = sys.argv[1]
    if mode == "client":
        host, port, path = sys.argv[2], int(sys.argv[3]), sys.argv[4]
        sock = socket.create_connection((host, port), timeout=30)
        sock.sendall(upgrade_request(f"{host}:{port}", path))
        answer, rest = head(sock)
        assert answer.startswith(b"HTTP/1.1 101 "), answer
        mask: bytes | None = MASK
        hello = sys.argv[5:] == ["hello"]
    else:
        listener = socket.create_server(("127.0.0.1", 0))
        say(event="listening", port=listener.getsockname()[1])
        listener.settimeout(30)
        sock, _ = listener.accept()
        sock.settimeout(30)
        request, rest = head(sock)
        sock.sendall(upgrade_response(websocket_key(request)))
        mask = None
        hello = sys.argv[2:] == ["hello"]
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    say(event="ready")
    if hello:
        sock.sendall(frame(TEXT, APP_PING, mask=mask) + frame(TEXT, b"hello", mask=mask))
    reader = FrameReader(expect_masked=mask is None)
    end = time.monotonic() + 30
    data = rest
    while time.monotonic() < end:
        for f in reader.feed(data):
            say(event="frame", op=f.opcode, data=f.payload.decode("utf-8", "replace")[:80])
            if f.opcode == PING:
                sock.sendall(frame(PONG, f.payload, mask=mask))
            elif f.opcode == TEXT and f.payload == APP_PING:
                sock.sendall(frame(TEXT, APP_PONG, mask=mask))
            elif f.opcode == CLOSE:
                say(event="close", code=f.close_code, reason=f.close_reason.decode())
                with contextlib.suppress(OSError):
                    sock.sendall(frame(CLOSE, f.payload[:2], mask=mask))
        try:
            data = sock.recv(65536)
        except OSError:
            data = b""
        if not data:
            say(event="eof")
            return


if __name__ == "__main__":
    main()
