"""The servers under benchmark, each started in its own process by the runner.

    python benchmarks/servers.py --kind KIND [--interval 1] [--timeout 5]

KIND is one of ``floor``, ``websockets``, ``aiohttp``, ``ours-asyncio``,
``ours-threading``. Each binds 127.0.0.1 on a free port, prints
``READY <port>`` and serves until its stdin closes (or it is killed). Every
server echoes the messages it receives (the busy scenario measures the whole
message path: in, to the application, out), and heartbeats with the given
interval and timeout (aiohttp has no timeout setting: its pong deadline is
half its heartbeat).

``floor`` is the practical Python limit: plain asyncio, ``BufferedProtocol``
reading into one shared preallocated buffer, pre-built ping frames, one loop
timer over a heap of deadlines for all connections, and the same liveness rule
as ours (any inbound bytes count).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import heapq
import itertools
import logging
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

_PING = b"\x89\x02hb"
_CLOSE_1011 = b"\x88\x02\x03\xf3"


class _Floor:
    """Shared state of the floor server: one heap of (deadline, seq, protocol), one timer."""

    def __init__(self, loop: asyncio.AbstractEventLoop, interval: float, timeout: float) -> None:
        self.loop = loop
        self.interval = interval
        self.timeout = timeout
        self.heap: list[tuple[float, int, FloorProtocol]] = []
        self.seq = itertools.count()
        self.buffer = bytearray(256 * 1024)
        self.view = memoryview(self.buffer)
        self.handle: asyncio.TimerHandle | None = None
        self.armed = float("inf")

    def push(self, when: float, proto: FloorProtocol) -> None:
        """Look at ``proto`` by ``when``: push only when its wake-up moves earlier."""
        if when >= proto.wake:
            return
        proto.wake = when
        heapq.heappush(self.heap, (when, next(self.seq), proto))
        if when < self.armed:
            if self.handle is not None:
                self.handle.cancel()
            self.armed = when
            self.handle = self.loop.call_at(when, self.fire)

    def fire(self) -> None:
        self.handle = None
        self.armed = float("inf")
        now = self.loop.time()
        heap = self.heap
        limit = now + 0.001
        interval, timeout = self.interval, self.timeout
        later: list[tuple[float, FloorProtocol]] = []
        while heap and heap[0][0] <= limit:
            when, _, proto = heapq.heappop(heap)
            if proto.transport is None or when != proto.wake:
                continue  # gone, or a stale entry (an earlier one was pushed since)
            proto.wake = float("inf")
            if proto.awaiting:
                if proto.last_alive > proto.ping_at:
                    proto.awaiting = False  # answered: fall through to the idle rule
                elif now >= proto.ping_at + timeout:
                    proto.dead()
                    continue
                else:
                    later.append((proto.ping_at + timeout, proto))
                    continue
            due = proto.last_alive + interval
            if due > limit:
                later.append((due, proto))
                continue
            proto.transport.write(_PING)
            proto.ping_at = now
            proto.awaiting = True
            later.append((now + timeout, proto))
        for when, proto in later:
            proto.wake = when
            heapq.heappush(heap, (when, next(self.seq), proto))
        if heap:
            self.armed = heap[0][0]
            self.handle = self.loop.call_at(self.armed, self.fire)


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
    """One connection of the floor server."""

    __slots__ = (
        "awaiting",
        "floor",
        "last_alive",
        "pending",
        "ping_at",
        "transport",
        "upgraded",
        "wake",
    )

    def __init__(self, floor: _Floor) -> None:
        self.floor = floor
        self.transport: asyncio.Transport | None = None
        self.upgraded = False
        self.pending = b""
        self.last_alive = 0.0
        self.ping_at = 0.0
        self.awaiting = False
        self.wake = float("inf")

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def get_buffer(self, sizehint: int) -> memoryview:
        return self.floor.view

    def buffer_updated(self, nbytes: int) -> None:
        floor = self.floor
        now = floor.loop.time()
        data = floor.view[:nbytes].tobytes()
        if self.pending:
            data = self.pending + data
            self.pending = b""
        if not self.upgraded:
            self._handshake(data, now)
            return
        was_awaiting = self.awaiting
        self.last_alive = now
        if was_awaiting:
            self.awaiting = False
            floor.push(now + floor.interval, self)
        self._frames(data)

    def _handshake(self, data: bytes, now: float) -> None:
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
        assert self.transport is not None
        self.transport.write(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n"
        )
        self.upgraded = True
        self.last_alive = now
        self.floor.push(now + self.floor.interval, self)
        rest = data[end + 4 :]
        if rest:
            self._frames(rest)

    def _frames(self, data: bytes) -> None:
        i, size = 0, len(data)
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
                head += 4
            end = i + head + length
            if end > size:
                break
            opcode = b0 & 0x0F
            if opcode == 0x8 and self.transport is not None:
                self.transport.write(b"\x88\x02\x03\xe8")
                self.transport.close()
                return
            if opcode in (0x1, 0x2) and b0 & 0x80 and self.transport is not None:
                self.transport.write(_echo(b0, data, end - length, length))
            i = end
        if i < size:
            self.pending = data[i:]

    def dead(self) -> None:
        if self.transport is not None:
            self.transport.write(_CLOSE_1011)
            self.transport.close()  # flushes, then releases the socket

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None


async def _serve_floor(interval: float, timeout: float, ready: Callable[[int], None]) -> None:
    loop = asyncio.get_running_loop()
    floor = _Floor(loop, interval, timeout)
    server = await loop.create_server(lambda: FloorProtocol(floor), "127.0.0.1", 0, backlog=BACKLOG)
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


def _serve_ours_threading(interval: float, timeout: float, ready: Callable[[int], None]) -> None:
    from heartbeat_threading import serve

    from heartbeat_core import HeartbeatConfig

    def handler(conn: Any) -> None:
        for message in conn:
            conn.send(message)

    server = serve(
        handler, "127.0.0.1", 0, config=HeartbeatConfig(interval=interval, timeout=timeout)
    )
    ready(server.port)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    sys.stdin.read()  # until the runner closes our stdin
    server.close(timeout=1.0)


# ------------------------------------------------------------------ plumbing


async def _until_stdin_closes() -> None:
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)


def _ready(port: int) -> None:
    print(f"READY {port}", flush=True)


KINDS = ("floor", "websockets", "aiohttp", "ours-asyncio", "ours-threading")
_ASYNC = {
    "floor": _serve_floor,
    "websockets": _serve_websockets,
    "aiohttp": _serve_aiohttp,
    "ours-asyncio": _serve_ours_asyncio,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="A server under benchmark.")
    parser.add_argument("--kind", choices=KINDS, required=True)
    parser.add_argument("--interval", type=float, default=1.0)
    parser.add_argument("--timeout", type=float, default=5.0)
    args = parser.parse_args(argv)
    raise_nofile_limit()
    logging.basicConfig(level=logging.CRITICAL)
    if args.kind == "ours-threading":
        _serve_ours_threading(args.interval, args.timeout, _ready)
    else:
        asyncio.run(_ASYNC[args.kind](args.interval, args.timeout, _ready))
    return 0


if __name__ == "__main__":
    sys.exit(main())
