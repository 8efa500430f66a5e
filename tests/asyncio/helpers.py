"""Helpers for the asyncio adapter tests: bounded runs, raw-socket peers, a peer in a thread.

The raw peers here are asyncio streams (the test keeps their writer in its own loop); the
blocking-socket ones shared by every folder are in ``tests.support.peers``.
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import os
import threading
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

from tests.support.frames import (
    frame_size,
    parse_frames,
    upgrade_request,
    upgrade_response,
    websocket_key,
)

T = TypeVar("T")

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
    key = base64.b64encode(os.urandom(16)).decode("ascii")
    writer.write(upgrade_request(HOST, path, key))
    head = await read_head(reader)
    assert head.startswith(b"HTTP/1.1 101"), head
    return reader, writer


async def frozen_server(
    opened: asyncio.Queue[asyncio.StreamWriter],
) -> asyncio.Server:
    """A raw TCP server that accepts the WebSocket handshake, then never reads or writes again."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await read_head(reader)
        writer.write(upgrade_response(websocket_key(head)))
        await opened.put(writer)

    return await asyncio.start_server(handle, HOST, 0)


async def read_frame(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """Read exactly one frame: ``(opcode, payload)``."""
    data = b""
    while len(data) < (size := frame_size(data)):
        data += await reader.readexactly(size - len(data))
    (f,) = parse_frames(data, complete=True)
    return f.opcode, f.payload


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
