"""The tutorial's programs (examples/tutorial_*.py), run against real peers."""

from __future__ import annotations

import asyncio
import re
import time

import pytest
from heartbeat_asyncio import Connected, Disconnected, ReconnectEvent, Retrying

from examples import tutorial_client, tutorial_reconnect, tutorial_server
from heartbeat_core import BackoffPolicy, HeartbeatConfig
from tests.support.peers import FrozenPeer, FrozenServer

from .helpers import CLOSE_TIMEOUT, INTERVAL, TIMEOUT, WAIT
from .helpers import assert_dead_peer_closed as assert_dead

CONFIG = HeartbeatConfig(interval=INTERVAL, timeout=TIMEOUT, close_timeout=CLOSE_TIMEOUT)
BACKOFF = BackoffPolicy(initial=0.05, maximum=0.2)


def test_client_against_server(capsys: pytest.CaptureFixture[str]) -> None:
    async def main() -> None:
        async with await tutorial_server.start(0, CONFIG) as server:
            uri = f"ws://127.0.0.1:{server.port}/"
            await asyncio.wait_for(tutorial_client.main(uri, CONFIG, heartbeats=3), WAIT)

    asyncio.run(main())
    out = capsys.readouterr().out
    assert "echo: hello\n" in out
    assert re.search(r"^ping: \d+\.\d ms$", out, re.M)
    assert re.findall(r"^heartbeat (\d+): \d+\.\d ms$", out, re.M)[:3] == ["1", "2", "3"]
    assert "closed with 1000\n" in out


def test_server_closes_a_frozen_client(capsys: pytest.CaptureFixture[str]) -> None:
    async def main() -> None:
        async with await tutorial_server.start(0, CONFIG) as server:
            peer = await asyncio.to_thread(FrozenPeer, "127.0.0.1", server.port)
            try:
                await asyncio.to_thread(assert_dead, peer)
            finally:
                peer.close()

    asyncio.run(main())
    assert re.search(r"no answer for \d\.\d s, closing \(1011\)", capsys.readouterr().out)


def test_reconnect_after_restart_and_after_a_frozen_server(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Connection 1: the server restarts (1001). Connection 2: a frozen server, declared dead
    (1011). Connection 3: the real server again; the client stops there."""

    port = 0

    async def main() -> None:
        nonlocal port
        states: asyncio.Queue[ReconnectEvent] = asyncio.Queue()
        printed = tutorial_reconnect.on_state

        def on_state(event: ReconnectEvent) -> None:
            printed(event)
            states.put_nowait(event)

        monkeypatch.setattr(tutorial_reconnect, "on_state", on_state)

        async def next_state(kind: type) -> ReconnectEvent:
            while True:
                event = await asyncio.wait_for(states.get(), WAIT)
                if isinstance(event, kind):
                    return event

        server = await tutorial_server.start(0, CONFIG)
        port = server.port
        client = asyncio.create_task(
            tutorial_reconnect.main(f"ws://127.0.0.1:{port}/", CONFIG, BACKOFF, connections=3)
        )
        try:
            await next_state(Connected)
            await server.close()  # a restart: the client hears 1001 and retries
            assert (await next_state(Disconnected)).code == 1001  # type: ignore[union-attr]
            await next_state(Retrying)
            frozen = await asyncio.to_thread(_frozen_on, port)
            try:
                await next_state(Connected)
                gone = await next_state(Disconnected)  # found dead by the heartbeat
                assert gone.code == 1011, gone  # type: ignore[union-attr]
            finally:
                await asyncio.to_thread(frozen.close)
            server = await tutorial_server.start(port, CONFIG)
            await asyncio.wait_for(client, WAIT)
        finally:
            client.cancel()
            await server.close()

    asyncio.run(main())
    out = capsys.readouterr().out
    uri = re.escape(f"ws://127.0.0.1:{port}/")
    # The lines the tutorial shows, in order.
    assert re.search(
        rf"connected to {uri}\nreceived: hello #1\ndisconnected: 1001 going away\n"
        r"retrying in \d\.\d\d s \(attempt 1\)\n",
        out,
    ), out
    assert "disconnected: 1011 heartbeat-timeout\n" in out
    assert out.endswith("received: hello #3\n"), out


def _frozen_on(port: int) -> FrozenServer:
    """A frozen server on ``port`` (retried briefly: the old listener may still linger)."""
    for _ in range(100):
        try:
            return FrozenServer(port, max_connections=1)
        except OSError:
            time.sleep(0.01)
    raise AssertionError(f"port {port} stayed busy")


def test_threading_tutorial(capsys: pytest.CaptureFixture[str]) -> None:
    from examples import tutorial_threading

    tutorial_threading.main(CONFIG, heartbeats=3)
    out = capsys.readouterr().out
    assert "echo: hello\n" in out
    assert re.search(r"^ping: \d+\.\d ms$", out, re.M)
    assert re.findall(r"^heartbeat (\d+): \d+\.\d ms$", out, re.M)[:3] == ["1", "2", "3"]
    assert out.endswith("closed with 1000\n")
