"""The cheap raw-socket WebSocket load client used for every server in the benchmarks.

One process, non-blocking sockets and one ``selectors`` loop. It opens ``--n``
connections with a pre-built upgrade request (at most ``--concurrency``
handshakes in flight, started over at least ``--spread`` seconds so that the
first heartbeats do not all fall due in the same millisecond), answers every
ping frame with a masked pong carrying the same payload, and counts what it
sees. With ``--busy`` every connection also sends a small masked text frame
every ``--busy-period`` seconds (spread evenly); the servers echo it, and the
echoes are counted.

Control is line-based: it prints ``CONNECTED ...`` once every connection is
open (or has failed); on stdin, ``MARK`` prints the counters as one JSON line
(``MARK {...}``) and ``QUIT`` (or EOF) exits. The runner freezes it with
SIGSTOP for the detection scenario.

    python benchmarks/loadclient.py --port 8765 --n 1000 [--busy]
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import json
import os
import resource
import selectors
import socket
import sys
import time

__all__ = ["main", "raise_nofile_limit"]

_MASK = b"\x37\xfa\x21\x3d"
_HANDSHAKE_TEMPLATE = (
    "GET / HTTP/1.1\r\n"
    "Host: {host}:{port}\r\n"
    "Upgrade: websocket\r\n"
    "Connection: Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    "Sec-WebSocket-Version: 13\r\n\r\n"
)
_CONNECTING, _HANDSHAKING, _OPEN, _CLOSED = range(4)


def raise_nofile_limit() -> int:
    """Raise this process's open-file limit to the hard limit; return the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        hard = 1 << 20
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def _masked(opcode: int, payload: bytes) -> bytes:
    n = len(payload)
    rep = (_MASK * (n // 4 + 1))[:n]
    body = (int.from_bytes(payload, "big") ^ int.from_bytes(rep, "big")).to_bytes(n, "big")
    return bytes((0x80 | opcode, 0x80 | n)) + _MASK + body


class _Conn:
    __slots__ = ("index", "outbuf", "pending", "sock", "state")

    def __init__(self, index: int, sock: socket.socket) -> None:
        self.index = index
        self.sock = sock
        self.state = _CONNECTING
        self.pending = b""
        self.outbuf = b""


class LoadClient:
    """The client's state and loop (see the module docstring)."""

    def __init__(
        self,
        host: str,
        port: int,
        n: int,
        *,
        concurrency: int,
        busy: bool,
        busy_period: float,
        connect_timeout: float,
        spread: float = 0.0,
    ) -> None:
        self.host, self.port, self.n = host, port, n
        self.spread = spread
        self.begin = time.monotonic()
        self.concurrency = concurrency
        self.busy = busy
        self.busy_period = busy_period
        self.connect_timeout = connect_timeout
        self.sel = selectors.DefaultSelector()
        self.conns: list[_Conn] = []
        self.handshake = _HANDSHAKE_TEMPLATE.format(host=host, port=port).encode("ascii")
        self.busy_frame = _masked(0x1, b'{"type":"data","v":1}')
        self.buf = bytearray(65536)
        self.view = memoryview(self.buf)
        self.started = 0
        self.inflight = 0
        self.opened = 0
        self.failed = 0
        self.closed = 0
        self.pings = 0
        self.pongs = 0
        self.texts_sent = 0
        self.echoes = 0
        self.frames_other = 0
        self.close_frames = 0
        self.announced = False

    # ------------------------------------------------------------ connecting

    def _start_more(self) -> None:
        allowed = self.n
        if self.spread > 0:
            # Pace the starts so the first heartbeats do not all fall due together.
            elapsed = time.monotonic() - self.begin
            allowed = min(self.n, int(elapsed / self.spread * self.n) + 1)
        while self.started < allowed and self.inflight < self.concurrency:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn = _Conn(self.started, sock)
            self.started += 1
            self.inflight += 1
            err = sock.connect_ex((self.host, self.port))
            if err not in (0, errno.EINPROGRESS):
                self._fail(conn)
                continue
            self.conns.append(conn)
            self.sel.register(sock, selectors.EVENT_WRITE, conn)

    def _fail(self, conn: _Conn) -> None:
        self.inflight -= 1
        self.failed += 1
        self._drop(conn)

    def _drop(self, conn: _Conn) -> None:
        if conn.state == _CLOSED:
            return
        conn.state = _CLOSED
        with contextlib.suppress(KeyError, ValueError):
            self.sel.unregister(conn.sock)
        conn.sock.close()

    def _on_writable(self, conn: _Conn) -> None:
        if conn.state == _CONNECTING:
            if conn.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
                self._fail(conn)
                return
            conn.state = _HANDSHAKING
            conn.outbuf = self.handshake
        self._flush(conn)

    def _flush(self, conn: _Conn) -> None:
        try:
            sent = conn.sock.send(conn.outbuf)
        except BlockingIOError:
            sent = 0
        except OSError:
            self._lost(conn)
            return
        conn.outbuf = conn.outbuf[sent:]
        self.sel.modify(
            conn.sock, selectors.EVENT_WRITE if conn.outbuf else selectors.EVENT_READ, conn
        )

    def _send(self, conn: _Conn, data: bytes) -> None:
        if conn.outbuf:
            conn.outbuf += data
            return
        try:
            sent = conn.sock.send(data)
        except BlockingIOError:
            sent = 0
        except OSError:
            self._lost(conn)
            return
        if sent < len(data):
            conn.outbuf = data[sent:]
            self.sel.modify(conn.sock, selectors.EVENT_WRITE, conn)

    def _lost(self, conn: _Conn) -> None:
        if conn.state == _HANDSHAKING:
            self._fail(conn)
        elif conn.state == _OPEN:
            self.closed += 1
            self._drop(conn)

    # --------------------------------------------------------------- reading

    def _on_readable(self, conn: _Conn) -> None:
        try:
            n = conn.sock.recv_into(self.buf)
        except BlockingIOError:
            return
        except OSError:
            self._lost(conn)
            return
        if n == 0:
            self._lost(conn)
            return
        data = conn.pending + self.view[:n].tobytes() if conn.pending else self.view[:n].tobytes()
        if conn.state == _HANDSHAKING:
            end = data.find(b"\r\n\r\n")
            if end < 0:
                conn.pending = data
                return
            if not data.startswith(b"HTTP/1.1 101"):
                self._fail(conn)
                return
            conn.state = _OPEN
            self.inflight -= 1
            self.opened += 1
            data = data[end + 4 :]
            conn.pending = b""
            if not data:
                return
        self._frames(conn, data)

    def _frames(self, conn: _Conn, data: bytes) -> None:
        i, size = 0, len(data)
        out: list[bytes] = []
        while size - i >= 2:
            b0, b1 = data[i], data[i + 1]
            length, head = b1 & 0x7F, 2
            if length == 126:
                if size - i < 4:
                    break
                length, head = int.from_bytes(data[i + 2 : i + 4], "big"), 4
            elif length == 127:
                if size - i < 10:
                    break
                length, head = int.from_bytes(data[i + 2 : i + 10], "big"), 10
            if b1 & 0x80:
                head += 4  # servers never mask; tolerate it anyway
            end = i + head + length
            if end > size:
                break
            opcode = b0 & 0x0F
            if opcode == 0x9:
                self.pings += 1
                self.pongs += 1
                out.append(_masked(0xA, data[i + head : end]))
            elif opcode == 0x8:
                self.close_frames += 1
                out.append(_masked(0x8, data[i + head : i + head + 2]))
                self._send(conn, b"".join(out))
                self.closed += 1
                self._drop(conn)
                return
            elif opcode in (0x1, 0x2):
                self.echoes += 1  # (the servers echo every message)
            else:
                self.frames_other += 1
            i = end
        conn.pending = data[i:] if i < size else b""
        if out:
            self._send(conn, out[0] if len(out) == 1 else b"".join(out))

    # ------------------------------------------------------------------ loop

    def counters(self) -> dict[str, float | int]:
        return {
            "t": time.monotonic(),
            "opened": self.opened,
            "failed": self.failed,
            "closed": self.closed,
            "pings": self.pings,
            "pongs": self.pongs,
            "texts_sent": self.texts_sent,
            "echoes": self.echoes,
            "frames_other": self.frames_other,
            "close_frames": self.close_frames,
            "cpu": sum(os.times()[:2]),
        }

    def _on_stdin(self) -> bool:
        line = sys.stdin.readline()
        if not line or line.strip() == "QUIT":
            return False
        if line.strip() == "MARK":
            print("MARK " + json.dumps(self.counters()), flush=True)
        return True

    def run(self) -> int:
        self.sel.register(sys.stdin, selectors.EVENT_READ, None)
        begin = self.begin = time.monotonic()
        self._start_more()
        slots = max(1, round(self.busy_period / 0.01))
        next_tick = 0.0
        slot = 0
        while True:
            if not self.announced:
                if self.opened + self.failed >= self.n:
                    self.announced = True
                    print(
                        f"CONNECTED opened={self.opened} failed={self.failed} "
                        f"secs={time.monotonic() - begin:.2f}",
                        flush=True,
                    )
                    next_tick = time.monotonic()
                elif time.monotonic() - begin > self.connect_timeout:
                    self.announced = True
                    print(
                        f"CONNECTED opened={self.opened} failed={self.n - self.opened} "
                        f"secs={time.monotonic() - begin:.2f} timeout",
                        flush=True,
                    )
                    next_tick = time.monotonic()
            timeout = 0.1 if self.announced or self.spread <= 0 else 0.005
            if self.busy and self.announced:
                timeout = max(0.0, next_tick - time.monotonic())
            for key, mask in self.sel.select(timeout):
                conn = key.data
                if conn is None:
                    if not self._on_stdin():
                        return 0
                    continue
                if mask & selectors.EVENT_WRITE:
                    self._on_writable(conn)
                elif mask & selectors.EVENT_READ:
                    self._on_readable(conn)
            if not self.announced:
                self._start_more()
            elif self.busy and time.monotonic() >= next_tick:
                # Every connection sends once per busy_period: slot k of `slots` each 10 ms tick.
                frame = self.busy_frame
                for conn in self.conns[slot::slots]:
                    if conn.state == _OPEN:
                        self._send(conn, frame)
                        self.texts_sent += 1
                slot = (slot + 1) % slots
                next_tick += 0.01
                if next_tick < time.monotonic() - 0.1:
                    next_tick = time.monotonic()  # we fell behind: do not burst


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Cheap raw-socket WebSocket load client.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--n", type=int, required=True, help="connections to open")
    parser.add_argument("--concurrency", type=int, default=200, help="handshakes in flight")
    parser.add_argument("--busy", action="store_true", help="send a small text frame per period")
    parser.add_argument("--busy-period", type=float, default=0.5)
    parser.add_argument("--connect-timeout", type=float, default=120.0)
    parser.add_argument(
        "--spread", type=float, default=1.0, help="start the connections over at least this long"
    )
    args = parser.parse_args(argv)
    limit = raise_nofile_limit()
    if args.n + 16 > limit:
        print(f"ERROR open-file limit {limit} is too low for {args.n} connections", flush=True)
        return 2
    client = LoadClient(
        args.host,
        args.port,
        args.n,
        concurrency=args.concurrency,
        busy=args.busy,
        busy_period=args.busy_period,
        connect_timeout=args.connect_timeout,
        spread=args.spread,
    )
    return client.run()


if __name__ == "__main__":
    sys.exit(main())
