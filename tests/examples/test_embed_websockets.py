"""examples/websockets_sansio.py against real peers: a websockets client and a frozen one."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TypeVar

import pytest

from tests.support.versions import HAS_WEBSOCKETS, WEBSOCKETS_REASON

if not HAS_WEBSOCKETS:
    pytest.skip(WEBSOCKETS_REASON, allow_module_level=True)

# After the skip: the example and these imports need websockets.
from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection
from websockets.asyncio.server import serve as ws_serve

from examples import websockets_sansio
from heartbeat_core import HeartbeatConfig, PeerDead, RttSample
from tests.support.peers import FrozenPeer, FrozenServer

from .helpers import CLOSE_TIMEOUT, INTERVAL, TIMEOUT, WAIT
from .helpers import assert_dead_peer_closed as assert_dead

pytestmark = pytest.mark.interop
A = TypeVar("A", RttSample, PeerDead)
CONFIG = HeartbeatConfig(interval=INTERVAL, timeout=TIMEOUT, close_timeout=CLOSE_TIMEOUT)


def _to(actions: asyncio.Queue[object]) -> Callable[[object, object], None]:
    """An ``on_event`` that queues every event."""
    return lambda _, event: actions.put_nowait(event)


async def _server() -> tuple[asyncio.Server, int, asyncio.Queue[object]]:
    actions: asyncio.Queue[object] = asyncio.Queue()
    server = await websockets_sansio.serve("127.0.0.1", 0, CONFIG, _to(actions))
    return server, server.sockets[0].getsockname()[1], actions


async def _next(actions: asyncio.Queue[object], kind: type[A]) -> A:
    while True:
        action = await asyncio.wait_for(actions.get(), WAIT)
        if isinstance(action, kind):
            return action


def test_round_trip_with_websockets_client() -> None:
    async def main() -> None:
        server, port, actions = await _server()
        async with server, connect(f"ws://127.0.0.1:{port}/", ping_interval=None) as ws:
            await ws.send("hello")
            assert await asyncio.wait_for(ws.recv(), WAIT) == "hello"
            # The client never sends anything else: only our heartbeats keep it alive, and it
            # answers them itself. Three answered heartbeats in a row:
            samples = [await _next(actions, RttSample) for _ in range(3)]
            assert [s.seq for s in samples] == [1, 2, 3]
            assert all(0 <= s.rtt < WAIT for s in samples)
            await ws.send("still here")
            assert await asyncio.wait_for(ws.recv(), WAIT) == "still here"
        assert ws.close_code == 1000

    asyncio.run(main())


def test_frozen_peer_is_closed_1011() -> None:
    async def main() -> None:
        server, port, actions = await _server()
        async with server:
            peer = await asyncio.to_thread(FrozenPeer, "127.0.0.1", port)
            try:
                started = time.monotonic()
                dead = await _next(actions, PeerDead)
                elapsed = time.monotonic() - started
                assert dead.seq == 1
                assert INTERVAL + TIMEOUT - 0.05 <= elapsed < INTERVAL + TIMEOUT + 5.0
                frames = await asyncio.to_thread(assert_dead, peer)
                assert frames[0].opcode == 0x9  # the heartbeat that went unanswered
            finally:
                peer.close()

    asyncio.run(main())


def test_plain_http_is_answered_and_closed() -> None:
    async def main() -> None:
        server, port, _ = await _server()
        async with server:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            response = await asyncio.wait_for(reader.read(), WAIT)  # until EOF
            assert response.startswith(b"HTTP/1.1 426 ")
            writer.close()

    asyncio.run(main())


def test_client_round_trip_with_websockets_server() -> None:
    """``watch`` (ClientProtocol) against the websockets asyncio server."""

    async def main() -> None:
        actions: asyncio.Queue[object] = asyncio.Queue()
        texts: asyncio.Queue[str] = asyncio.Queue()

        async def handler(ws: ServerConnection) -> None:
            await ws.send("hi")
            await ws.wait_closed()

        async with ws_serve(handler, "127.0.0.1", 0, ping_interval=None) as server:
            port = server.sockets[0].getsockname()[1]
            client = asyncio.create_task(
                websockets_sansio.watch(
                    f"ws://127.0.0.1:{port}/",
                    CONFIG,
                    _to(actions),
                    texts.put_nowait,
                )
            )
            assert await asyncio.wait_for(texts.get(), WAIT) == "hi"
            samples = [await _next(actions, RttSample) for _ in range(3)]
            assert [s.seq for s in samples] == [1, 2, 3]
            server.close()  # 1001: the client answers and its loop ends
            await asyncio.wait_for(client, WAIT)

    asyncio.run(main())


def test_client_finds_a_frozen_server_dead() -> None:
    async def main() -> None:
        actions: asyncio.Queue[object] = asyncio.Queue()
        frozen = await asyncio.to_thread(FrozenServer)
        try:
            started = time.monotonic()
            client = asyncio.create_task(
                websockets_sansio.watch(
                    f"ws://127.0.0.1:{frozen.port}/",
                    CONFIG,
                    _to(actions),
                )
            )
            dead = await _next(actions, PeerDead)
            assert dead.seq == 1
            await asyncio.wait_for(client, WAIT)  # the socket was released
            assert time.monotonic() - started < INTERVAL + TIMEOUT + 5.0
        finally:
            await asyncio.to_thread(frozen.close)

    asyncio.run(main())
