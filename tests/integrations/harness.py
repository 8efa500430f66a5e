"""The framework integrations under test, each serving one echo endpoint on 127.0.0.1,
and the peer in a child process (peer_child.py) that the tests freeze with SIGSTOP.

Every wait is bounded: the child's lines are awaited with a deadline, servers start and
stop within ``WAIT``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import WebSocket, WebSocketDisconnect

from heartbeat_core import HeartbeatConfig

HERE = Path(__file__).resolve().parent
#: Generous bound for what takes milliseconds on loopback.
WAIT = 10.0


# --------------------------------------------------------------------- the peer


class Child:
    """peer_child.py in a process of its own; its JSON lines are collected by a thread."""

    def __init__(self, *args: str) -> None:
        self.lines: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self.proc = subprocess.Popen(
            [sys.executable, str(HERE / "peer_child.py"), *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            record = json.loads(line)
            record["t"] = time.monotonic()
            with self._lock:
                self.lines.append(record)

    def records(self, event: str) -> list[dict[str, Any]]:
        with self._lock:
            return [r for r in self.lines if r["event"] == event]

    def frames(self, op: int | None = None) -> list[str]:
        """The payloads of the frames the peer received (of opcode ``op``)."""
        return [r["data"] for r in self.records("frame") if op is None or r["op"] == op]

    async def wait(self, event: str, timeout: float = WAIT) -> dict[str, Any]:
        """The first record of ``event``, awaited (bounded)."""
        end = time.monotonic() + timeout
        while not (found := self.records(event)):
            if self.proc.poll() is not None:  # exited: its last lines may still be in transit
                self._thread.join(5.0)
                if found := self.records(event):
                    break
            if time.monotonic() > end or self.proc.poll() is not None:
                raise AssertionError(
                    f"the peer printed no {event!r} within {timeout} s: {self.lines[-10:]} "
                    f"(exit {self.proc.poll()}: {self._stderr()})"
                )
            await asyncio.sleep(0.01)
        return found[0]

    def _stderr(self) -> str:
        if self.proc.poll() is None or self.proc.stderr is None:
            return ""
        return self.proc.stderr.read()[-2000:]

    def freeze(self) -> float:
        """SIGSTOP the peer; the monotonic time it was sent."""
        os.kill(self.proc.pid, signal.SIGSTOP)
        return time.monotonic()

    def thaw(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.proc.pid, signal.SIGCONT)

    def stop(self) -> None:
        """Resume and end the process (by its pid), bounded."""
        self.thaw()
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5.0)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5.0)
        self._thread.join(5.0)
        for pipe in (self.proc.stdout, self.proc.stderr):
            if pipe is not None:
                pipe.close()


# ------------------------------------------------------------------ the servers


@dataclass
class Served:
    """A running integration: where it listens, what ``on_event`` saw (with the time
    it saw it), and every message its application received."""

    port: int
    path: str
    events: list[tuple[float, object]] = field(default_factory=list)
    app_messages: list[object] = field(default_factory=list)
    #: The connection's heartbeat as the application sees it (``ws.heartbeat``,
    #: ``websocket.state.heartbeat``), once it connected.
    heartbeat: Any = None
    #: Another hook that sees every call too (a test's metrics collector, say).
    also: Callable[[object, Any], None] | None = None

    def on_event(self, conn: object, event: object) -> None:
        self.events.append((time.monotonic(), event))
        if self.also is not None:
            self.also(conn, event)

    def of(self, kind: type) -> list[tuple[float, Any]]:
        return [(t, e) for t, e in self.events if isinstance(e, kind)]

    async def wait(self, kind: type, count: int = 1, timeout: float = WAIT) -> list[Any]:
        end = time.monotonic() + timeout
        while len(found := self.of(kind)) < count:
            if time.monotonic() > end:
                raise AssertionError(
                    f"{count} {kind.__name__} not seen within {timeout} s: "
                    f"{[type(e).__name__ for _, e in self.events]}"
                )
            await asyncio.sleep(0.01)
        return [e for _, e in found]


Factory = Callable[[HeartbeatConfig, float], Any]


@asynccontextmanager
async def websockets_server(config: HeartbeatConfig, slow: float = 0.0) -> AsyncIterator[Served]:
    import heartbeat_websockets

    served = Served(0, "/")

    async def handler(ws: Any) -> None:
        served.heartbeat = ws.heartbeat
        with contextlib.suppress(Exception):
            async for message in ws:
                served.app_messages.append(message)
                await asyncio.sleep(slow)
                await ws.send(message)

    async with heartbeat_websockets.serve(
        handler, "127.0.0.1", 0, config=config, on_event=served.on_event
    ) as server:
        served.port = server.sockets[0].getsockname()[1]
        yield served


@asynccontextmanager
async def aiohttp_server(config: HeartbeatConfig, slow: float = 0.0) -> AsyncIterator[Served]:
    import heartbeat_aiohttp
    from aiohttp import WSMsgType, web

    served = Served(0, "/ws")

    async def handler(request: web.Request) -> web.StreamResponse:
        ws = heartbeat_aiohttp.HeartbeatWebSocketResponse(config=config, on_event=served.on_event)
        await ws.prepare(request)
        served.heartbeat = ws.heartbeat
        async for msg in ws:
            served.app_messages.append(msg.data)
            await asyncio.sleep(slow)
            if msg.type is WSMsgType.TEXT:
                await ws.send_str(msg.data)
        served.app_messages.append(("close_code", ws.close_code))
        return ws

    app = web.Application()
    app.router.add_get("/ws", handler)
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        served.port = runner.addresses[0][1]
        yield served
    finally:
        await asyncio.wait_for(runner.cleanup(), WAIT)


@asynccontextmanager
async def asgi_app(config: HeartbeatConfig, slow: float) -> AsyncIterator[tuple[Served, Any]]:
    """A FastAPI application whose endpoint uses FastAPI's own ``receive_text``, wrapped
    in HeartbeatMiddleware. (FastAPI resolves the endpoint's annotations in this
    module's globals: ``WebSocket`` is imported at the top.)"""
    from fastapi import FastAPI
    from heartbeat_asgi import HeartbeatMiddleware

    served = Served(0, "/ws")
    app = FastAPI()

    @app.websocket("/ws")
    async def endpoint(websocket: WebSocket) -> None:
        await websocket.accept()
        served.heartbeat = websocket.state.heartbeat
        try:
            while True:
                text = await websocket.receive_text()
                served.app_messages.append(text)
                await asyncio.sleep(slow)
                await websocket.send_text(text)
        except WebSocketDisconnect as exc:
            served.app_messages.append(("disconnect", exc.code))

    wrapped = HeartbeatMiddleware(app, config=config, on_event=served.on_event)
    yield served, wrapped


@asynccontextmanager
async def asgi_server(
    config: HeartbeatConfig, slow: float = 0.0, ws: str = "websockets-sansio"
) -> AsyncIterator[Served]:
    """:func:`asgi_app` under uvicorn (``ws``: uvicorn's WebSocket implementation; its own
    pings off)."""
    async with asgi_app(config, slow) as (served, wrapped), _uvicorn(wrapped, ws) as port:
        served.port = port
        yield served


@asynccontextmanager
async def _uvicorn(wrapped: Any, ws: str) -> AsyncIterator[int]:
    import uvicorn

    server = uvicorn.Server(
        uvicorn.Config(wrapped, ws=ws, ws_ping_interval=None, lifespan="off", log_level="warning")
    )
    sock = _bound_socket()
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        end = time.monotonic() + WAIT
        while not server.started:  # bounded: uvicorn offers no "started" event
            assert time.monotonic() < end and not task.done(), "uvicorn did not start"
            await asyncio.sleep(0.01)
        yield sock.getsockname()[1]
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, WAIT + 12.0)  # uvicorn's own close bound is 10 s
        sock.close()


@asynccontextmanager
async def hypercorn_server(config: HeartbeatConfig, slow: float = 0.0) -> AsyncIterator[Served]:
    """The same FastAPI application under hypercorn (whose own pings are off by default:
    ``websocket_ping_interval`` is None)."""
    from hypercorn.asyncio import serve
    from hypercorn.config import Config

    async with asgi_app(config, slow) as (served, wrapped):
        sock = _bound_socket()
        sock.listen(64)
        served.port = sock.getsockname()[1]
        cfg = Config()
        cfg.bind = [f"fd://{sock.detach()}"]  # (hypercorn owns it, and closes it)
        cfg.loglevel = "WARNING"
        cfg.graceful_timeout = 1.0
        stop = asyncio.Event()
        task = asyncio.create_task(serve(wrapped, cfg, shutdown_trigger=stop.wait))  # type: ignore[arg-type]
        try:
            yield served
        finally:
            stop.set()
            await asyncio.wait_for(task, WAIT + 12.0)


def _bound_socket() -> Any:
    import socket

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock
