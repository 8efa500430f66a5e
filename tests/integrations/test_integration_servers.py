"""The server integrations (websockets' serve, aiohttp's WebSocketResponse, an ASGI
application under uvicorn) against a peer in a child process, on loopback.

Each case checks what the issue asks of an integration: heartbeats answered and RTTs
reported; only the core's heartbeats on the wire (the framework's keepalive is off, no
heartbeat twice); the application never sees a heartbeat message; a peer frozen with
SIGSTOP is sent close 1011 within interval + timeout + 100 ms; a healthy peer behind a
slow handler is never declared dead.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import sys
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

from heartbeat_core import (
    Closed,
    Closing,
    HeartbeatConfig,
    HeartbeatStyle,
    PeerDead,
    RttSample,
)
from tests.support.frames import PING, TEXT

from .harness import Child, Served, aiohttp_server, asgi_server, hypercorn_server, websockets_server

pytestmark = [
    pytest.mark.interop,
    pytest.mark.skipif(sys.version_info < (3, 11), reason="websockets 17 needs Python 3.11"),
]

INTERVAL, TIMEOUT = 0.2, 0.3
#: The issue's bound on finding a frozen peer: interval + timeout + 100 ms.
BOUND = INTERVAL + TIMEOUT + 0.1
APP_PING, APP_PONG = '{"type":"ping"}', '{"type":"pong"}'


def config(style: HeartbeatStyle) -> HeartbeatConfig:
    return HeartbeatConfig(interval=INTERVAL, timeout=TIMEOUT, close_timeout=1.0, style=style)


def _asgi(ws: str) -> Callable[..., Any]:
    def factory(cfg: HeartbeatConfig, slow: float = 0.0) -> Any:
        return asgi_server(cfg, slow, ws=ws)

    return factory


SERVERS: dict[str, tuple[Callable[..., Any], tuple[HeartbeatStyle, ...]]] = {
    "websockets": (websockets_server, (HeartbeatStyle.PROTOCOL, HeartbeatStyle.APP)),
    "aiohttp": (aiohttp_server, (HeartbeatStyle.PROTOCOL, HeartbeatStyle.APP)),
    # ASGI has no ping frames: application-level heartbeats only.
    "asgi-uvicorn-websockets": (_asgi("websockets-sansio"), (HeartbeatStyle.APP,)),
    "asgi-uvicorn-wsproto": (_asgi("wsproto"), (HeartbeatStyle.APP,)),
    "asgi-hypercorn": (hypercorn_server, (HeartbeatStyle.APP,)),
}
CASES = [
    pytest.param(name, style, id=f"{name}-{style.value}")
    for name, (_, styles) in SERVERS.items()
    for style in styles
]


def run(main: Coroutine[Any, Any, None], loop: str = "asyncio") -> None:
    if loop == "uvloop":
        uvloop = pytest.importorskip("uvloop")
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(main)
    else:
        asyncio.run(main)


def assert_only_our_heartbeats(child: Child, style: HeartbeatStyle, rtts: int) -> None:
    """What the peer received: each of our heartbeats once, numbered 1, 2, 3 ... (protocol
    style) or as ``{"type":"ping"}`` messages with no ping frame at all (app style): the
    framework's own keepalive sent nothing."""
    pings = child.frames(PING)
    if style is HeartbeatStyle.PROTOCOL:
        assert pings == [str(n) for n in range(1, len(pings) + 1)], pings
        assert len(pings) >= rtts
    else:
        assert pings == [], f"ping frames besides our heartbeat messages: {pings}"
        assert child.frames(TEXT).count(APP_PING) >= rtts


@pytest.mark.parametrize(("server", "style"), CASES)
def test_round_trip_rtt_and_only_our_heartbeats(server: str, style: HeartbeatStyle) -> None:
    factory = SERVERS[server][0]

    async def main() -> None:
        async with factory(config(style)) as served:
            child = Child("client", "127.0.0.1", str(served.port), served.path, "hello")
            try:
                await child.wait("ready")
                samples = await served.wait(RttSample, count=3)
                assert [s.seq for s in samples[:3]] == [1, 2, 3]
                assert all(0 < s.rtt < 0.5 for s in samples)
                # The application can read the figures on its connection.
                stats = served.heartbeat.stats
                assert stats.pongs_received >= 3 and stats.srtt is not None
                assert served.heartbeat.latency == stats.srtt
                # The peer's own {"type":"ping"} was answered, its "hello" echoed.
                while child.frames(TEXT).count("hello") < 1:
                    await asyncio.sleep(0.01)
                assert APP_PONG in child.frames(TEXT)
                # The application saw "hello" and nothing else: no heartbeat message.
                assert served.app_messages[:1] == ["hello"]
                assert all(not isinstance(m, str) for m in served.app_messages[1:])
                assert_only_our_heartbeats(child, style, len(samples))
                assert served.of(PeerDead) == []
            finally:
                child.stop()

    run(main())


@pytest.mark.parametrize(("server", "style"), CASES)
def test_frozen_peer_is_closed_1011_in_time(server: str, style: HeartbeatStyle) -> None:
    factory = SERVERS[server][0]

    async def main() -> None:
        async with factory(config(style)) as served:
            child = Child("client", "127.0.0.1", str(served.port), served.path)
            try:
                await child.wait("ready")
                await served.wait(RttSample)  # healthy first
                frozen_at = child.freeze()
                (dead,) = await served.wait(PeerDead)
                (dead_at, _), *_ = served.of(PeerDead)
                closing = [(t, e) for t, e in served.of(Closing) if e.code == 1011]
                assert closing, served.events
                closed_at = closing[0][0]
                assert dead_at - frozen_at >= TIMEOUT * 0.9, "declared dead before a timeout"
                assert closed_at - frozen_at <= BOUND, (
                    f"close 1011 sent {closed_at - frozen_at:.3f} s after the freeze "
                    f"(bound {BOUND:.1f} s)"
                )
                assert closing[0][1].reason == "heartbeat-timeout"
                # Thawed, the peer reads what it was sent: close 1011 heartbeat-timeout.
                child.thaw()
                close = await child.wait("close")
                assert (close["code"], close["reason"]) == (1011, "heartbeat-timeout")
                (closed,) = await served.wait(Closed)
                assert closed.code == 1011
                assert dead.seq >= 2
            finally:
                child.stop()

    run(main())


@pytest.mark.parametrize("server", list(SERVERS))
def test_healthy_peer_behind_a_slow_handler_is_never_declared_dead(server: str) -> None:
    factory, styles = SERVERS[server]
    slow = 3 * (INTERVAL + TIMEOUT)

    async def main() -> None:
        async with factory(config(styles[0]), slow) as served:
            child = Child("client", "127.0.0.1", str(served.port), served.path, "hello")
            try:
                await child.wait("ready")
                # The handler took "hello" and sleeps; the peer keeps answering heartbeats.
                while not served.app_messages:
                    await asyncio.sleep(0.01)
                await asyncio.sleep(slow - 0.1)
                assert served.of(PeerDead) == [], served.events
                assert served.of(Closing) == []
                heartbeat_op = PING if styles[0] is HeartbeatStyle.PROTOCOL else TEXT
                assert len(child.frames(heartbeat_op)) >= 2
                while child.frames(TEXT).count("hello") < 1:  # the handler woke and echoed
                    await asyncio.sleep(0.01)
            finally:
                child.stop()

    run(main())


def test_asgi_under_uvloop_finds_a_frozen_peer() -> None:
    async def main() -> None:
        async with asgi_server(config(HeartbeatStyle.APP), ws="wsproto") as served:
            child = Child("client", "127.0.0.1", str(served.port), served.path)
            try:
                await child.wait("ready")
                await served.wait(RttSample)
                frozen_at = child.freeze()
                await served.wait(PeerDead)
                closing = [t for t, e in served.of(Closing) if e.code == 1011]
                assert closing and closing[0] - frozen_at <= BOUND
                child.thaw()
                assert (await child.wait("close"))["code"] == 1011
            finally:
                child.stop()
            # FastAPI's endpoint was told: WebSocketDisconnect(1011).
            assert ("disconnect", 1011) in served.app_messages, json.dumps(
                [str(m) for m in served.app_messages]
            )

    run(main(), loop="uvloop")


@pytest.mark.parametrize("server", ["websockets", "aiohttp"])
def test_a_ping_flood_is_closed_1008(server: str) -> None:
    """The core's flood rule runs inside the framework: a peer pinging faster than
    peer_ping_min_interval, past peer_ping_max_strikes, is closed 1008."""
    from tests.support.frames import CLOSE, frame, parse_frames
    from tests.support.peers import open_websocket

    factory = SERVERS[server][0]
    cfg = HeartbeatConfig(interval=5.0, timeout=5.0, close_timeout=1.0, peer_ping_max_strikes=10)

    async def main() -> None:
        async with factory(cfg) as served:
            sock = await asyncio.to_thread(open_websocket, served.port, served.path)
            try:
                await asyncio.to_thread(sock.sendall, frame(PING, b"x") * 50)
                (closing,) = [e for e in await served.wait(Closing) if e.code == 1008]
                assert closing.reason == "too many pings"
                data = b""
                while not any(f.opcode == CLOSE for f in parse_frames(data)):
                    chunk = await asyncio.to_thread(sock.recv, 65536)
                    assert chunk, "the socket closed before the close frame came"
                    data += chunk
                (close,) = [f for f in parse_frames(data) if f.opcode == CLOSE]
                assert close.close_code == 1008
            finally:
                sock.close()

    run(main())


def test_websockets_jitter_draws_from_the_random_source() -> None:
    """``random=`` reaches the core: a source that always draws 0 shortens every wait by
    jitter x interval (here to half the interval)."""
    import heartbeat_websockets
    from websockets.asyncio.client import connect

    cfg = HeartbeatConfig(interval=0.4, timeout=1.0, jitter=0.5)
    served = Served(0, "/")

    async def handler(ws: Any) -> None:
        await ws.wait_closed()

    async def main() -> None:
        async with heartbeat_websockets.serve(
            handler, "127.0.0.1", 0, config=cfg, on_event=served.on_event, random=lambda: 0.0
        ) as server:
            port = server.sockets[0].getsockname()[1]
            async with connect(f"ws://127.0.0.1:{port}/", ping_interval=None):
                samples = await served.wait(RttSample, count=4, timeout=3.0)
                times = [t for t, _ in served.of(RttSample)][:4]
                gaps = [b - a for a, b in itertools.pairwise(times)]
                assert all(0.15 < gap < 0.3 for gap in gaps), gaps  # 0.2 s, not 0.4 s
                assert len(samples) >= 4

    run(main())
