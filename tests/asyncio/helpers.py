"""Helpers for the asyncio adapter tests: bounded runs, raw-socket peers, a peer in a thread."""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import hashlib
import os
import struct
import threading
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
HOST = "127.0.0.1"


def run(coro: Coroutine[Any, Any, T], timeout: float = 20.0) -> T:
    """Run ``coro`` in a fresh loop, bounded by ``timeout`` seconds."""
    return asyncio.run(asyncio.wait_for(coro, timeout))


async def read_head(reader: asyncio.StreamReader) -> bytes:
    return await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5.0)


async def raw_client(
    port: int, path: str = "/"
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A raw TCP client that completes the WebSocket handshake, then does only what it is told."""
    reader, writer = await asyncio.open_connection(HOST, port)
    key = base64.b64encode(os.urandom(16))
    writer.write(
        b"GET " + path.encode() + b" HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
        b"Connection: Upgrade\r\nSec-WebSocket-Key: " + key + b"\r\n"
        b"Sec-WebSocket-Version: 13\r\n\r\n"
    )
    head = await read_head(reader)
    assert head.startswith(b"HTTP/1.1 101"), head
    return reader, writer


def accept_key(key: bytes) -> bytes:
    return base64.b64encode(hashlib.sha1(key + GUID).digest())


async def frozen_server(
    opened: asyncio.Queue[asyncio.StreamWriter],
) -> asyncio.Server:
    """A raw TCP server that accepts the WebSocket handshake, then never reads or writes again."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await read_head(reader)
        key = b""
        for line in head.split(b"\r\n"):
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"sec-websocket-key":
                key = value.strip()
        writer.write(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Accept: " + accept_key(key) + b"\r\n\r\n"
        )
        await opened.put(writer)

    return await asyncio.start_server(handle, HOST, 0)


def frame_header(opcode: int, length: int, *, masked: bool) -> bytes:
    """A FIN frame header (with a zero mask key when ``masked``: payload bytes stay as they are)."""
    first = 0x80 | opcode
    mask_bit = 0x80 if masked else 0
    if length < 126:
        head = struct.pack("!BB", first, mask_bit | length)
    elif length < 1 << 16:
        head = struct.pack("!BBH", first, mask_bit | 126, length)
    else:
        head = struct.pack("!BBQ", first, mask_bit | 127, length)
    return head + (b"\x00\x00\x00\x00" if masked else b"")


async def read_frame(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """Read one unmasked frame (server to client): ``(opcode, payload)``."""
    first, second = await reader.readexactly(2)
    length = second & 0x7F
    if length == 126:
        (length,) = struct.unpack("!H", await reader.readexactly(2))
    elif length == 127:
        (length,) = struct.unpack("!Q", await reader.readexactly(8))
    return first & 0x0F, await reader.readexactly(length)


class ThreadPeer:
    """Runs ``main(stop)`` in its own event loop in a thread (a peer our loop cannot block)."""

    def __init__(
        self, main: Callable[[asyncio.Event, concurrent.futures.Future[Any]], Awaitable[None]]
    ):
        self._main = main
        self.ready: concurrent.futures.Future[Any] = concurrent.futures.Future()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        async def body() -> None:
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            await asyncio.wait_for(self._main(self._stop, self.ready), 30.0)

        try:
            asyncio.run(body())
        except BaseException as exc:
            if not self.ready.done():
                self.ready.set_exception(exc)

    def __enter__(self) -> ThreadPeer:
        self._thread.start()
        self.ready.result(timeout=10.0)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout=10.0)
        assert not self._thread.is_alive()
