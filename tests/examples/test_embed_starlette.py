"""examples/starlette_asgi.py (HeartbeatMiddleware) on uvicorn against a websockets client and
a frozen peer; and examples/fastapi_app.py, served as its runner serves it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TypeVar

import pytest
import uvicorn
from websockets.asyncio.client import connect

from examples import starlette_asgi
from heartbeat_core import JSON_CODEC, AppKind, HeartbeatConfig, PeerDead, RttSample
from tests.support.peers import FrozenPeer

from .helpers import CLOSE_TIMEOUT, INTERVAL, TIMEOUT, WAIT, free_socket
from .helpers import assert_dead_peer_closed as assert_dead

pytestmark = pytest.mark.interop
A = TypeVar("A", RttSample, PeerDead)
CONFIG = HeartbeatConfig(interval=INTERVAL, timeout=TIMEOUT, close_timeout=CLOSE_TIMEOUT)


@asynccontextmanager
async def _server() -> AsyncIterator[tuple[int, asyncio.Queue[object]]]:
    actions: asyncio.Queue[object] = asyncio.Queue()
    config = uvicorn.Config(
        starlette_asgi.make_app(CONFIG, lambda _, event: actions.put_nowait(event)),
        ws="websockets-sansio",
        ws_ping_interval=None,  # uvicorn's own protocol pings off: ours are the only heartbeat
        lifespan="off",
        log_level="warning",
    )
    server = uvicorn.Server(config)
    sock = free_socket()
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        for _ in range(int(WAIT / 0.01)):  # bounded: uvicorn offers no "started" event
            if server.started:
                break
            await asyncio.sleep(0.01)
        assert server.started
        yield sock.getsockname()[1], actions
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, WAIT)


async def _next(actions: asyncio.Queue[object], kind: type[A]) -> A:
    while True:
        action = await asyncio.wait_for(actions.get(), WAIT)
        if isinstance(action, kind):
            return action


def test_round_trip_with_websockets_client() -> None:
    async def main() -> None:
        async with _server() as (port, actions):
            async with connect(f"ws://127.0.0.1:{port}/ws", ping_interval=None) as ws:
                await ws.send("hello")
                pings = 0
                while pings < 3:  # answer app-level pings, as a browser page would
                    message = await asyncio.wait_for(ws.recv(), WAIT)
                    assert isinstance(message, str)
                    if JSON_CODEC.classify(message) is AppKind.PING:
                        pings += 1
                        await ws.send(JSON_CODEC.pong_text)
                    else:
                        assert message == "hello"
                samples = [await _next(actions, RttSample) for _ in range(2)]
                assert [s.seq for s in samples] == [1, 2]
            assert ws.close_code == 1000

    asyncio.run(main())


def test_frozen_peer_is_closed_1011() -> None:
    async def main() -> None:
        async with _server() as (port, actions):
            peer = await asyncio.to_thread(FrozenPeer, "127.0.0.1", port, "/ws")
            try:
                started = time.monotonic()
                await _next(actions, PeerDead)
                elapsed = time.monotonic() - started
                assert INTERVAL + TIMEOUT - 0.05 <= elapsed < INTERVAL + TIMEOUT + 5.0
                # uvicorn, not the application, owns the socket: it waits up to its own
                # (fixed, 10 s) closing handshake before releasing it, so only the close
                # frame is checked here.
                frames = await asyncio.to_thread(assert_dead, peer, dropped=False)
                assert JSON_CODEC.classify(frames[0].payload.decode()) is AppKind.PING
            finally:
                peer.close()

    asyncio.run(main())
