"""Third-party Python peers (websockets, aiohttp) with their own keepalive on, each running
on a :class:`LoopThread` of its own so that both of our adapters can talk to them from
plain blocking test code."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

from .harness import SLACK, LoopThread

# Not on 3.10 (tests.support.versions): the websockets tests skip there, the aiohttp ones run.
if sys.version_info >= (3, 11):
    from websockets.asyncio.client import ClientConnection
    from websockets.asyncio.client import connect as ws_connect
    from websockets.asyncio.server import ServerConnection
    from websockets.asyncio.server import serve as ws_serve
    from websockets.exceptions import ConnectionClosed
    from websockets.protocol import State

__all__ = [
    "AiohttpClientPeer",
    "AiohttpServerPeer",
    "Ended",
    "WebsocketsClientPeer",
    "WebsocketsServerPeer",
]


@dataclass(frozen=True)
class Ended:
    """How a peer's side of a connection ended."""

    code: int | None
    reason: str | None
    error: str | None = None


@dataclass
class _Sides:
    """Per-connection records kept by a peer server (touched only on the peer's loop)."""

    conns: list[Any] = field(default_factory=list)
    ended: list[Ended] = field(default_factory=list)


# -------------------------------------------------------------------- websockets


class WebsocketsServerPeer:
    """A websockets server that echoes, with ``ping_interval``/``ping_timeout`` on."""

    def __init__(self, loop: LoopThread, ping_interval: float, ping_timeout: float) -> None:
        self._loop = loop
        self._sides = _Sides()
        sides = self._sides

        async def handler(ws: ServerConnection) -> None:
            sides.conns.append(ws)
            error = None
            try:
                async for message in ws:
                    await ws.send(message)
            except ConnectionClosed as exc:
                error = repr(exc)
            sides.ended.append(Ended(ws.close_code, ws.close_reason, error))

        async def start() -> Any:
            return await ws_serve(
                handler,
                "127.0.0.1",
                0,
                ping_interval=ping_interval,
                ping_timeout=ping_timeout,
                close_timeout=2.0,
            )

        self.server = loop.run(start())
        self.port: int = self.server.sockets[0].getsockname()[1]
        self.url = f"ws://127.0.0.1:{self.port}/"

    def latencies(self) -> list[float]:
        """websockets' ``latency`` (its last keepalive RTT) of every connection."""
        return self._loop.call(lambda: [ws.latency for ws in self._sides.conns])

    def open_count(self) -> int:
        return self._loop.call(lambda: sum(ws.state is State.OPEN for ws in self._sides.conns))

    def ended(self) -> list[Ended]:
        return self._loop.call(lambda: list(self._sides.ended))

    def close(self) -> None:
        async def stop() -> None:
            self.server.close()
            await asyncio.wait_for(self.server.wait_closed(), SLACK)

        with contextlib.suppress(Exception):
            self._loop.run(stop(), SLACK + 1.0)


class WebsocketsClientPeer:
    """A websockets client with keepalive on; incoming messages go to a queue."""

    def __init__(
        self, loop: LoopThread, url: str, ping_interval: float, ping_timeout: float
    ) -> None:
        self._loop = loop
        self.ended: Ended | None = None

        async def start() -> tuple[ClientConnection, asyncio.Queue[str | bytes]]:
            ws = await ws_connect(
                url, ping_interval=ping_interval, ping_timeout=ping_timeout, close_timeout=2.0
            )
            queue: asyncio.Queue[str | bytes] = asyncio.Queue()
            asyncio.get_running_loop().create_task(self._read(ws, queue))
            return ws, queue

        self.ws, self._queue = loop.run(start())

    async def _read(self, ws: ClientConnection, queue: asyncio.Queue[str | bytes]) -> None:
        error = None
        try:
            async for message in ws:
                queue.put_nowait(message)
        except ConnectionClosed as exc:
            error = repr(exc)
        self.ended = Ended(ws.close_code, ws.close_reason, error)

    @property
    def latency(self) -> float:
        return self._loop.call(lambda: self.ws.latency)

    @property
    def is_open(self) -> bool:
        return self._loop.call(lambda: self.ws.state is State.OPEN)

    def echo(self, data: str | bytes, timeout: float = SLACK) -> str | bytes:
        async def go() -> str | bytes:
            await self.ws.send(data)
            return await asyncio.wait_for(self._queue.get(), timeout)

        return self._loop.run(go(), timeout + 1.0)

    def close(self, code: int = 1000) -> None:
        async def stop() -> None:
            await asyncio.wait_for(self.ws.close(code), SLACK)

        with contextlib.suppress(Exception):
            self._loop.run(stop(), SLACK + 1.0)


# ----------------------------------------------------------------------- aiohttp


class AiohttpServerPeer:
    """An aiohttp server whose WebSocket handler echoes, with ``heartbeat=`` on."""

    def __init__(self, loop: LoopThread, heartbeat: float) -> None:
        self._loop = loop
        self._sides = _Sides()
        sides = self._sides

        async def handler(request: web.Request) -> web.WebSocketResponse:
            ws = web.WebSocketResponse(heartbeat=heartbeat)
            await ws.prepare(request)
            sides.conns.append(ws)
            async for message in ws:
                if message.type is aiohttp.WSMsgType.TEXT:
                    await ws.send_str(message.data)
                elif message.type is aiohttp.WSMsgType.BINARY:
                    await ws.send_bytes(message.data)
            exc = ws.exception()
            sides.ended.append(Ended(ws.close_code, None, None if exc is None else repr(exc)))
            return ws

        async def start() -> tuple[web.AppRunner, int]:
            app = web.Application()
            app.router.add_get("/", handler)
            runner = web.AppRunner(app, handle_signals=False)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            return runner, runner.addresses[0][1]

        self._runner, self.port = loop.run(start())
        self.url = f"ws://127.0.0.1:{self.port}/"

    def open_count(self) -> int:
        return self._loop.call(lambda: sum(not ws.closed for ws in self._sides.conns))

    def ended(self) -> list[Ended]:
        return self._loop.call(lambda: list(self._sides.ended))

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._loop.run(self._runner.cleanup(), SLACK + 1.0)


class AiohttpClientPeer:
    """An aiohttp client with ``heartbeat=`` on, always reading (so its pongs are seen)."""

    def __init__(self, loop: LoopThread, url: str, heartbeat: float) -> None:
        self._loop = loop
        self.ended: Ended | None = None

        async def start() -> tuple[
            aiohttp.ClientSession, aiohttp.ClientWebSocketResponse, asyncio.Queue[str | bytes]
        ]:
            session = aiohttp.ClientSession()
            try:
                ws = await session.ws_connect(url, heartbeat=heartbeat, autoclose=True)
            except BaseException:
                await session.close()
                raise
            queue: asyncio.Queue[str | bytes] = asyncio.Queue()
            asyncio.get_running_loop().create_task(self._read(ws, queue))
            return session, ws, queue

        self._session, self.ws, self._queue = loop.run(start())

    async def _read(
        self, ws: aiohttp.ClientWebSocketResponse, queue: asyncio.Queue[str | bytes]
    ) -> None:
        async for message in ws:
            if message.type in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY):
                queue.put_nowait(message.data)
        exc = ws.exception()
        self.ended = Ended(ws.close_code, None, None if exc is None else repr(exc))

    @property
    def is_open(self) -> bool:
        return self._loop.call(lambda: not self.ws.closed)

    def echo(self, data: str | bytes, timeout: float = SLACK) -> str | bytes:
        async def go() -> str | bytes:
            if isinstance(data, str):
                await self.ws.send_str(data)
            else:
                await self.ws.send_bytes(data)
            return await asyncio.wait_for(self._queue.get(), timeout)

        return self._loop.run(go(), timeout + 1.0)

    def close(self, code: int = 1000) -> None:
        async def stop() -> None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.ws.close(code=code), SLACK)
            await self._session.close()

        with contextlib.suppress(Exception):
            self._loop.run(stop(), SLACK + 1.0)
