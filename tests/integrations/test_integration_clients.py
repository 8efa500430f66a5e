"""The client integrations (websockets' connect, aiohttp's ws_connect) against a server in
a child process: heartbeats answered with RTTs, only ours on the wire, a server frozen
with SIGSTOP closed 1011 within interval + timeout + 100 ms, and the application never
sees a heartbeat message."""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import pytest

from heartbeat_core import Closed, Closing, HeartbeatConfig, HeartbeatStyle, PeerDead, RttSample
from tests.support.frames import PING, TEXT

from .harness import Child, Served

pytestmark = [
    pytest.mark.interop,
    pytest.mark.skipif(sys.version_info < (3, 11), reason="websockets 17 needs Python 3.11"),
]

INTERVAL, TIMEOUT = 0.2, 0.3
BOUND = INTERVAL + TIMEOUT + 0.1
STYLES = [HeartbeatStyle.PROTOCOL, HeartbeatStyle.APP]


class Client:
    """A client integration's connection: what the application received, its close code."""

    def __init__(self) -> None:
        self.received: list[object] = []
        self.close_code: Callable[[], int | None] = lambda: None


@asynccontextmanager
async def websockets_client(
    port: int, config: HeartbeatConfig, record: Served
) -> AsyncIterator[Client]:
    import heartbeat_websockets
    from websockets.exceptions import ConnectionClosed

    client = Client()
    ws = await heartbeat_websockets.connect(
        f"ws://127.0.0.1:{port}/", config=config, on_event=record.on_event
    )
    client.close_code = lambda: ws.heartbeat.close_code

    async def read() -> None:
        with contextlib.suppress(ConnectionClosed):
            async for message in ws:
                client.received.append(message)

    task = asyncio.create_task(read())
    try:
        yield client
    finally:
        await asyncio.wait_for(ws.close(), 5.0)
        await asyncio.wait_for(task, 5.0)


@asynccontextmanager
async def aiohttp_client(
    port: int, config: HeartbeatConfig, record: Served
) -> AsyncIterator[Client]:
    import aiohttp
    import heartbeat_aiohttp

    client = Client()
    async with aiohttp.ClientSession(
        ws_response_class=heartbeat_aiohttp.HeartbeatClientWebSocketResponse
    ) as session:
        ws = await heartbeat_aiohttp.ws_connect(
            session, f"ws://127.0.0.1:{port}/", config=config, on_event=record.on_event
        )
        client.close_code = lambda: ws.close_code

        async def read() -> None:
            async for msg in ws:
                client.received.append(msg.data)

        task = asyncio.create_task(read())
        try:
            yield client
        finally:
            await asyncio.wait_for(ws.close(), 5.0)
            await asyncio.wait_for(task, 5.0)


CLIENTS = {"websockets": websockets_client, "aiohttp": aiohttp_client}
CASES = [
    pytest.param(name, style, id=f"{name}-{style.value}") for name in CLIENTS for style in STYLES
]


@pytest.mark.parametrize(("client", "style"), CASES)
def test_client_finds_a_frozen_server(client: str, style: HeartbeatStyle) -> None:
    config = HeartbeatConfig(interval=INTERVAL, timeout=TIMEOUT, close_timeout=1.0, style=style)

    async def main() -> None:
        child = Child("server", "hello")
        try:
            port = (await child.wait("listening"))["port"]
            record = Served(port, "/")
            async with CLIENTS[client](port, config, record) as conn:
                await child.wait("ready")
                samples = await record.wait(RttSample, count=2)
                assert [s.seq for s in samples[:2]] == [1, 2]
                assert all(0 < s.rtt < 0.5 for s in samples)
                # The server's {"type":"ping"} was answered; the application saw "hello" only.
                while not conn.received:
                    await asyncio.sleep(0.01)
                assert '{"type":"pong"}' in child.frames(TEXT)
                pings = child.frames(PING)
                if style is HeartbeatStyle.PROTOCOL:
                    assert pings == [str(n) for n in range(1, len(pings) + 1)]
                else:
                    assert pings == []
                frozen_at = child.freeze()
                await record.wait(PeerDead)
                closing = [(t, e) for t, e in record.of(Closing) if e.code == 1011]
                assert closing, record.events
                assert closing[0][0] - frozen_at >= TIMEOUT * 0.9
                assert closing[0][0] - frozen_at <= BOUND, closing[0][0] - frozen_at
                (closed,) = await record.wait(Closed)
                assert closed.code == 1011
                assert conn.close_code() == 1011
                assert conn.received == ["hello"]
                child.thaw()
                close = await child.wait("close")
                assert (close["code"], close["reason"]) == (1011, "heartbeat-timeout")
                started = time.monotonic()
            assert time.monotonic() - started < 2.0  # closing after a verdict is quick
        finally:
            child.stop()

    asyncio.run(main())
