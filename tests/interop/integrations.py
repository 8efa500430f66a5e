"""The framework integrations (heartbeat_websockets, heartbeat_aiohttp) behind the
interop tests' blocking interface (:class:`~.harness.AdapterShim`'s), so that the tests
written for our adapters run unchanged through them: our heartbeat inside websockets or
aiohttp, the peer being the same framework with its own keepalive on."""

from __future__ import annotations

import contextlib
from typing import Any

from heartbeat_core import ConnectionClosedError, HeartbeatConfig, HeartbeatStats

from .harness import SLACK, AdapterShim, LoopThread, OurClient, OurServer, Recorder

__all__ = ["INTEGRATIONS", "IntegrationShim", "shim_for"]

#: The integration each interop module can run through, by the framework's name.
INTEGRATIONS = ("websockets-integration", "aiohttp-integration")


class _Facade:
    """What OurClient and OurServer read of a connection, from its ``heartbeat``."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws

    @property
    def stats(self) -> HeartbeatStats:
        stats: HeartbeatStats = self.ws.heartbeat.stats
        return stats

    @property
    def latency(self) -> float | None:
        latency: float | None = self.ws.heartbeat.latency
        return latency

    @property
    def close_code(self) -> int | None:
        code: int | None = self.ws.heartbeat.close_code
        return code

    @property
    def close_reason(self) -> str | None:
        reason: str | None = self.ws.heartbeat.close_reason
        return reason

    @property
    def closed_by(self) -> str | None:
        by: str | None = self.ws.heartbeat.closed_by
        return by


class _WebsocketsClient(_Facade):
    async def send(self, data: str | bytes) -> None:
        await self.ws.send(data)

    async def recv(self) -> str | bytes:
        message: str | bytes = await self.ws.recv()
        return message

    async def ping(self) -> float:
        pong = await self.ws.ping()
        latency: float = await pong
        return latency

    async def close(self, code: int, reason: str) -> None:
        await self.ws.close(code, reason)


class _AiohttpClient(_Facade):
    def __init__(self, ws: Any, session: Any) -> None:
        super().__init__(ws)
        self.session = session

    async def send(self, data: str | bytes) -> None:
        if isinstance(data, str):
            await self.ws.send_str(data)
        else:
            await self.ws.send_bytes(data)

    async def recv(self) -> str | bytes:
        from aiohttp import WSMsgType

        msg = await self.ws.receive()
        if msg.type in (WSMsgType.TEXT, WSMsgType.BINARY):
            data: str | bytes = msg.data
            return data
        raise ConnectionClosedError(f"closed: {msg}", self.ws.close_code, None)

    async def ping(self) -> float:  # (aiohttp's ping returns no round trip)
        raise NotImplementedError

    async def close(self, code: int, reason: str) -> None:
        await self.ws.close(code=code, message=reason.encode())
        await self.session.close()


class _Server:
    """OurServer's view of an integration's server: port, open connections, close."""

    def __init__(self, port: int, conns: list[Any], stop: Any) -> None:
        self.port = port
        self._conns = conns
        self._stop = stop

    @property
    def connections(self) -> list[_Facade]:
        return [_Facade(ws) for ws in self._conns if ws.heartbeat.close_code is None]

    async def close(self, timeout: float) -> None:
        await self._stop()


class IntegrationShim:
    """heartbeat_websockets or heartbeat_aiohttp on a loop thread of its own, with the
    AdapterShim's ``connect`` / ``serve`` / ``shutdown``."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._loop = LoopThread(f"ours-{name}")
        self._clients: list[OurClient] = []
        self._servers: list[OurServer] = []

    def connect(
        self, uri: str, config: HeartbeatConfig, recorder: Recorder, **kwargs: Any
    ) -> OurClient:
        make = _ws_connect if self.name.startswith("websockets") else _aiohttp_connect
        conn = self._loop.run(make(uri, config, recorder), SLACK + 1.0)
        client = OurClient(conn, self._loop)
        self._clients.append(client)
        return client

    def serve(self, config: HeartbeatConfig, **kwargs: Any) -> OurServer:
        recorder = Recorder()
        make = _ws_serve if self.name.startswith("websockets") else _aiohttp_serve
        server = self._loop.run(make(config, recorder), SLACK)
        ours = OurServer(server, recorder, self._loop)
        self._servers.append(ours)
        return ours

    def shutdown(self) -> None:
        for client in self._clients:
            with contextlib.suppress(Exception):
                if client.close_code is None:
                    client.close()
        for server in self._servers:
            with contextlib.suppress(Exception):
                server.close()
        self._loop.stop()


async def _ws_connect(uri: str, config: HeartbeatConfig, recorder: Recorder) -> Any:
    import heartbeat_websockets

    ws = await heartbeat_websockets.connect(uri, config=config, on_event=recorder)
    return _WebsocketsClient(ws)


async def _ws_serve(config: HeartbeatConfig, recorder: Recorder) -> _Server:
    import heartbeat_websockets
    from websockets.exceptions import ConnectionClosed

    conns: list[Any] = []

    async def echo(ws: Any) -> None:
        conns.append(ws)
        with contextlib.suppress(ConnectionClosed):
            async for message in ws:
                await ws.send(message)

    server = await heartbeat_websockets.serve(
        echo, "127.0.0.1", 0, config=config, on_event=recorder
    )

    async def stop() -> None:
        server.close()
        await server.wait_closed()

    return _Server(server.sockets[0].getsockname()[1], conns, stop)


async def _aiohttp_connect(uri: str, config: HeartbeatConfig, recorder: Recorder) -> Any:
    import aiohttp
    import heartbeat_aiohttp

    session = aiohttp.ClientSession(
        ws_response_class=heartbeat_aiohttp.HeartbeatClientWebSocketResponse
    )
    try:
        ws = await heartbeat_aiohttp.ws_connect(session, uri, config=config, on_event=recorder)
    except BaseException:
        await session.close()
        raise
    return _AiohttpClient(ws, session)


async def _aiohttp_serve(config: HeartbeatConfig, recorder: Recorder) -> _Server:
    import heartbeat_aiohttp
    from aiohttp import WSMsgType, web

    conns: list[Any] = []

    async def echo(request: web.Request) -> web.StreamResponse:
        ws = heartbeat_aiohttp.HeartbeatWebSocketResponse(config=config, on_event=recorder)
        await ws.prepare(request)
        conns.append(ws)
        async for msg in ws:
            if msg.type is WSMsgType.TEXT:
                await ws.send_str(msg.data)
            elif msg.type is WSMsgType.BINARY:
                await ws.send_bytes(msg.data)
        return ws

    app = web.Application()
    app.router.add_get("/", echo)
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return _Server(runner.addresses[0][1], conns, runner.cleanup)


def shim_for(name: str) -> AdapterShim | IntegrationShim:
    """Our adapter (``asyncio``, ``threading``) or integration of this name."""
    return IntegrationShim(name) if name in INTEGRATIONS else AdapterShim(name)
