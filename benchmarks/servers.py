"""The servers under benchmark, each started in its own process by the runner.

    python benchmarks/servers.py --kind KIND [--interval 1] [--timeout 5]

KIND is one of ``floor``, ``websockets``, ``aiohttp``, ``ours-asyncio`` and
``ours-threading`` (a handler per connection, as websockets has), or
``ours-asyncio-onmsg`` and ``ours-threading-onmsg`` (``serve(on_message=...)``: no
task or thread per idle connection; issue 15 was judged on these). Each binds
127.0.0.1 on a free port, prints ``READY <port>`` and serves until its stdin closes
(or it is killed). Every server echoes the messages it receives (the busy scenario
measures the whole message path: in, to the application, out), and heartbeats with the given
interval and timeout (aiohttp has no timeout setting: its pong deadline is
half its heartbeat).

``floor`` is the practical Python limit, built as the reference harness's
floor is (../shared/bench): plain asyncio, ``BufferedProtocol`` reading every
connection into one shared preallocated buffer, one loop timer for all
connections on an absolute grid (every ``interval``), one pre-built empty ping,
and a one-comparison path for the client's 6-byte masked empty pong. Any byte
received counts as an answer (ours has the same rule), and a connection that
sent a data frame since the last tick is not pinged (ours pings only after an
interval without input).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import logging
import math
import os
import sys
import threading
from collections.abc import Callable
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from loadclient import raise_nofile_limit

__all__ = ["KINDS", "main"]

BACKLOG = 4096
_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


# ------------------------------------------------------------------ the floor

_PING = b"\x89\x00"  # the floor's one ping: empty, built once
_PONG_LEN = 6  # a client's empty pong: 0x8A, 0x80, and the 4-byte mask
_CLOSE_1000 = b"\x88\x02\x03\xe8"
_CLOSE_1011 = b"\x88\x02\x03\xf3"
_SWITCHING = (
    b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
    b"Connection: Upgrade\r\nSec-WebSocket-Accept: "
)
# One receive buffer for every connection: asyncio reads into it and calls
# buffer_updated() at once, so no two connections ever hold it together.
_RECV = bytearray(64 * 1024)
_RECV_VIEW = memoryview(_RECV)


class _Floor:
    """The floor server's connections and its one timer, which fires on a grid
    (``start + k * interval``, so it never drifts). At each tick every open
    connection is pinged, except one that sent a data frame since the last tick
    (it is alive, and needs no ping, as ours needs none); a connection whose
    oldest unanswered ping is ``ticks`` ticks old is closed with 1011. Any byte
    received answers the pings (the liveness rule ours has)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, interval: float, timeout: float) -> None:
        self.loop = loop
        self.interval = interval
        self.ticks = max(1, math.ceil(timeout / interval - 1e-9))
        self.open: set[FloorProtocol] = set()
        self.start = loop.time()
        self.tick = 0

    def run(self) -> None:
        self.loop.call_at(self.start + self.interval, self.fire)

    def fire(self) -> None:
        tick = self.tick = self.tick + 1
        overdue = tick - self.ticks  # a ping sent at or before this tick went unanswered
        dead = []
        for proto in self.open:
            if proto.busy:
                proto.busy = False
                continue
            if not proto.unanswered:
                proto.unanswered = tick
            elif proto.unanswered <= overdue:
                dead.append(proto)
                continue
            proto.transport.write(_PING)  # type: ignore[union-attr]
        for proto in dead:
            proto.close(_CLOSE_1011)
        self.loop.call_at(self.start + (tick + 1) * self.interval, self.fire)


def _echo(b0: int, data: bytes, start: int, length: int) -> bytes:
    """The unmasked echo of a whole masked message whose payload starts at ``start``
    (the masking key is the 4 bytes before it; no validation: the floor trusts its client)."""
    key = data[start - 4 : start]
    key = (key * (length // 4 + 1))[:length] if length > 4 else key[:length]
    body = (
        int.from_bytes(data[start : start + length], "little") ^ int.from_bytes(key, "little")
    ).to_bytes(length, "little")
    if length < 126:
        return bytes((b0, length)) + body
    return bytes((b0, 126)) + length.to_bytes(2, "big") + body


class FloorProtocol(asyncio.BufferedProtocol):
    """One connection of the floor server: reads into the shared buffer; an empty
    pong (the common read) costs one comparison."""

    __slots__ = ("busy", "floor", "pending", "transport", "unanswered", "upgraded")

    def __init__(self, floor: _Floor) -> None:
        self.floor = floor
        self.transport: asyncio.Transport | None = None
        self.upgraded = False
        self.pending = b""  # an incomplete head or frame
        self.unanswered = 0  # the tick of the oldest unanswered ping (0: none)
        self.busy = False  # a data frame since the last tick

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def get_buffer(self, sizehint: int) -> memoryview:
        return _RECV_VIEW

    def buffer_updated(self, nbytes: int) -> None:
        if nbytes == _PONG_LEN and _RECV[0] == 0x8A and not self.pending and self.upgraded:
            self.unanswered = 0
            return
        data = _RECV_VIEW[:nbytes].tobytes()
        if self.pending:
            data = self.pending + data
            self.pending = b""
        if self.upgraded:
            self.unanswered = 0
            self._frames(data)
        else:
            self._handshake(data)

    def _handshake(self, data: bytes) -> None:
        end = data.find(b"\r\n\r\n")
        if end < 0:
            self.pending = data
            return
        key = b""
        for line in data[:end].split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"sec-websocket-key":
                key = value.strip()
        accept = base64.b64encode(hashlib.sha1(key + _GUID).digest())
        self.transport.write(_SWITCHING + accept + b"\r\n\r\n")  # type: ignore[union-attr]
        self.upgraded = True
        self.floor.open.add(self)
        if end + 4 < len(data):
            self._frames(data[end + 4 :])

    def _frames(self, data: bytes) -> None:
        """Client frames (always masked): a data frame marks the connection busy, a
        close frame is answered and the connection closed; the rest is skipped."""
        i, size = 0, len(data)
        while size - i >= 6:
            opcode, length = data[i] & 0x0F, data[i + 1] & 0x7F
            head = 6
            if length == 126:
                length, head = int.from_bytes(data[i + 2 : i + 4], "big"), 8
            elif length == 127:
                if size - i < 14:
                    break
                length, head = int.from_bytes(data[i + 2 : i + 10], "big"), 14
            end = i + head + length
            if end > size:
                break
            if opcode == 0x8:
                self.close(_CLOSE_1000)
                return
            if opcode < 0x8:
                self.busy = True
                if opcode in (0x1, 0x2) and data[i] & 0x80:  # a whole message: echoed
                    self.transport.write(_echo(data[i], data, end - length, length))  # type: ignore[union-attr]
            i = end
        if i < size:
            self.pending = data[i:]

    def close(self, frame: bytes) -> None:
        self.floor.open.discard(self)
        if self.transport is not None:
            self.transport.write(frame)
            self.transport.close()  # flushes, then releases the socket

    def connection_lost(self, exc: Exception | None) -> None:
        self.floor.open.discard(self)
        self.transport = None


async def _serve_floor(interval: float, timeout: float, ready: Callable[[int], None]) -> None:
    loop = asyncio.get_running_loop()
    floor = _Floor(loop, interval, timeout)
    server = await loop.create_server(lambda: FloorProtocol(floor), "127.0.0.1", 0, backlog=BACKLOG)
    floor.run()
    ready(server.sockets[0].getsockname()[1])
    await _until_stdin_closes()
    server.close()


# -------------------------------------------------------------- the libraries


async def _serve_websockets(interval: float, timeout: float, ready: Callable[[int], None]) -> None:
    from websockets.asyncio.server import ServerConnection, serve

    async def handler(ws: ServerConnection) -> None:
        async for message in ws:
            await ws.send(message)

    async with serve(
        handler,
        "127.0.0.1",
        0,
        ping_interval=interval,
        ping_timeout=timeout,
        compression=None,
        backlog=BACKLOG,
    ) as server:
        ready(server.sockets[0].getsockname()[1])
        await _until_stdin_closes()


async def _serve_aiohttp(interval: float, timeout: float, ready: Callable[[int], None]) -> None:
    from aiohttp import web

    async def handler(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(heartbeat=interval, compress=False)
        await ws.prepare(request)
        async for message in ws:
            if message.type == web.WSMsgType.TEXT:
                await ws.send_str(message.data)
            elif message.type == web.WSMsgType.BINARY:
                await ws.send_bytes(message.data)
        return ws

    app = web.Application()
    app.router.add_get("/", handler)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, backlog=BACKLOG)
    await site.start()
    server: Any = site._server  # the bound port is only on the asyncio server
    ready(server.sockets[0].getsockname()[1])
    await _until_stdin_closes()
    await runner.cleanup()


async def _serve_ours_asyncio(
    interval: float, timeout: float, ready: Callable[[int], None]
) -> None:
    from heartbeat_asyncio import serve

    from heartbeat_core import HeartbeatConfig

    async def handler(conn: Any) -> None:
        async for message in conn:
            await conn.send(message)

    server = await serve(
        handler, "127.0.0.1", 0, config=HeartbeatConfig(interval=interval, timeout=timeout)
    )
    ready(server.port)
    await _until_stdin_closes()
    await server.close(timeout=1.0)


async def _serve_ours_asyncio_on_message(
    interval: float, timeout: float, ready: Callable[[int], None]
) -> None:
    from heartbeat_asyncio import serve

    from heartbeat_core import HeartbeatConfig

    async def echo(conn: Any, message: str | bytes) -> None:
        await conn.send(message)

    config = HeartbeatConfig(interval=interval, timeout=timeout)
    server = await serve(None, "127.0.0.1", 0, config=config, on_message=echo)
    ready(server.port)
    await _until_stdin_closes()
    await server.close(timeout=1.0)


def _serve_ours_threading(
    interval: float, timeout: float, ready: Callable[[int], None], *, on_message: bool = False
) -> None:
    from heartbeat_threading import serve

    from heartbeat_core import HeartbeatConfig

    def handler(conn: Any) -> None:
        for message in conn:
            conn.send(message)

    def echo(conn: Any, message: str | bytes) -> None:
        conn.send(message)

    config = HeartbeatConfig(interval=interval, timeout=timeout)
    if on_message:
        server = serve(None, "127.0.0.1", 0, config=config, on_message=echo)
    else:
        server = serve(handler, "127.0.0.1", 0, config=config)
    ready(server.port)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    sys.stdin.read()  # until the runner closes our stdin
    server.close(timeout=1.0)


# ------------------------------------------------------------------ plumbing


async def _until_stdin_closes() -> None:
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)


def _ready(port: int) -> None:
    print(f"READY {port}", flush=True)


KINDS = (
    "floor",
    "websockets",
    "aiohttp",
    "ours-asyncio",
    "ours-asyncio-onmsg",
    "ours-threading",
    "ours-threading-onmsg",
)
_ASYNC = {
    "floor": _serve_floor,
    "websockets": _serve_websockets,
    "aiohttp": _serve_aiohttp,
    "ours-asyncio": _serve_ours_asyncio,
    "ours-asyncio-onmsg": _serve_ours_asyncio_on_message,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="A server under benchmark.")
    parser.add_argument("--kind", choices=KINDS, required=True)
    parser.add_argument("--interval", type=float, default=1.0)
    parser.add_argument("--timeout", type=float, default=5.0)
    args = parser.parse_args(argv)
    raise_nofile_limit()
    logging.basicConfig(level=logging.CRITICAL)
    if args.kind.startswith("ours-threading"):
        on_message = args.kind.endswith("-onmsg")
        _serve_ours_threading(args.interval, args.timeout, _ready, on_message=on_message)
    else:
        asyncio.run(_ASYNC[args.kind](args.interval, args.timeout, _ready))
    return 0


if __name__ == "__main__":
    sys.exit(main())
