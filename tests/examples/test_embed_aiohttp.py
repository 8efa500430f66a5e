"""examples/aiohttp_server.py against real peers: an aiohttp client and a frozen one."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TypeVar

import aiohttp
import pytest
from aiohttp import WSMsgType, web

from examples import aiohttp_server
from heartbeat_core import (
    JSON_CODEC,
    AppKind,
    HeartbeatConfig,
    HeartbeatStyle,
    PeerDead,
    RttSample,
)
from tests.support.docblocks import doc_block
from tests.support.peers import FrozenPeer

from .helpers import CLOSE_TIMEOUT, INTERVAL, TIMEOUT, WAIT, free_socket
from .helpers import assert_dead_peer_closed as assert_dead

pytestmark = pytest.mark.interop
A = TypeVar("A", RttSample, PeerDead)
STYLES = [HeartbeatStyle.PROTOCOL, HeartbeatStyle.APP]


@asynccontextmanager
async def _server(style: HeartbeatStyle) -> AsyncIterator[tuple[int, asyncio.Queue[object]]]:
    actions: asyncio.Queue[object] = asyncio.Queue()
    config = HeartbeatConfig(
        interval=INTERVAL, timeout=TIMEOUT, close_timeout=CLOSE_TIMEOUT, style=style
    )
    runner = web.AppRunner(
        aiohttp_server.make_app(config, lambda _, event: actions.put_nowait(event)),
        shutdown_timeout=1.0,
    )
    await runner.setup()
    sock = free_socket()
    site = web.SockSite(runner, sock)
    await site.start()
    try:
        yield sock.getsockname()[1], actions
    finally:
        await runner.cleanup()


async def _next(actions: asyncio.Queue[object], kind: type[A]) -> A:
    while True:
        action = await asyncio.wait_for(actions.get(), WAIT)
        if isinstance(action, kind):
            return action


@pytest.mark.parametrize("style", STYLES, ids=lambda s: s.value)
def test_round_trip_with_aiohttp_client(style: HeartbeatStyle) -> None:
    async def main() -> None:
        async with _server(style) as (port, actions), aiohttp.ClientSession() as session:
            ws = await session.ws_connect(f"ws://127.0.0.1:{port}/ws", autoping=True)
            echoes: asyncio.Queue[str] = asyncio.Queue()
            app_pings = 0

            async def client() -> None:  # what a browser page would do
                nonlocal app_pings
                async for msg in ws:  # protocol pings are answered inside receive()
                    if msg.type is WSMsgType.TEXT:
                        if JSON_CODEC.classify(msg.data) is AppKind.PING:
                            app_pings += 1
                            await ws.send_str(JSON_CODEC.pong_text)
                        else:
                            echoes.put_nowait(msg.data)

            reader = asyncio.create_task(client())
            await ws.send_str("hello")
            assert await asyncio.wait_for(echoes.get(), WAIT) == "hello"
            samples = [await _next(actions, RttSample) for _ in range(3)]
            assert [s.seq for s in samples] == [1, 2, 3]
            assert (app_pings >= 3) == (style is HeartbeatStyle.APP)
            await ws.close()
            await asyncio.wait_for(reader, WAIT)
            assert ws.close_code == 1000

    asyncio.run(main())


@pytest.mark.parametrize("style", STYLES, ids=lambda s: s.value)
def test_frozen_peer_is_closed_1011(style: HeartbeatStyle) -> None:
    async def main() -> None:
        async with _server(style) as (port, actions):
            peer = await asyncio.to_thread(FrozenPeer, "127.0.0.1", port, "/ws")
            try:
                started = time.monotonic()
                await _next(actions, PeerDead)
                elapsed = time.monotonic() - started
                assert INTERVAL + TIMEOUT - 0.05 <= elapsed < INTERVAL + TIMEOUT + 5.0
                frames = await asyncio.to_thread(assert_dead, peer)
                assert frames[0].opcode == (0x9 if style is HeartbeatStyle.PROTOCOL else 0x1)
            finally:
                peer.close()

    asyncio.run(main())


def test_the_client_block_of_the_page_against_the_example() -> None:
    """docs/howto/aiohttp.rst's client, as written, against examples/aiohttp_server.py."""
    namespace: dict[str, object] = {}
    exec(doc_block("docs/howto/aiohttp.rst", "aiohttp-client"), namespace)
    client = namespace["client"]
    assert callable(client)

    async def main() -> None:
        async with _server(HeartbeatStyle.PROTOCOL) as (port, _):
            answer = await asyncio.wait_for(client(f"ws://127.0.0.1:{port}/ws"), WAIT)
            assert answer == ["hello"]

    asyncio.run(main())
