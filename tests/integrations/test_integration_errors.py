"""Mistakes are raised where they are made, and what is not a WebSocket passes through."""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import pytest

from heartbeat_core import ConfigError, HeartbeatConfig, HeartbeatStyle

pytestmark = pytest.mark.skipif(
    sys.version_info < (3, 11), reason="websockets 17 needs Python 3.11"
)


def test_websockets_keepalive_arguments_are_refused() -> None:
    import heartbeat_websockets

    async def handler(ws: Any) -> None: ...

    with pytest.raises(ConfigError, match="ping_interval must stay None"):
        heartbeat_websockets.serve(handler, "127.0.0.1", 0, ping_interval=20)
    with pytest.raises(ConfigError, match="ping_timeout"):
        heartbeat_websockets.connect("ws://127.0.0.1:1/", ping_timeout=20)
    with pytest.raises(ConfigError, match="create_connection"):
        heartbeat_websockets.serve(handler, "127.0.0.1", 0, create_connection=object)
    with pytest.raises(ConfigError, match="config must be a HeartbeatConfig"):
        heartbeat_websockets.serve(handler, "127.0.0.1", 0, config={"interval": 1})  # type: ignore[arg-type]


def test_aiohttp_keepalive_arguments_are_refused() -> None:
    import aiohttp
    import heartbeat_aiohttp

    with pytest.raises(ConfigError, match="heartbeat is taken"):
        heartbeat_aiohttp.HeartbeatWebSocketResponse(heartbeat=5.0)
    with pytest.raises(ConfigError, match="autoping is taken"):
        heartbeat_aiohttp.HeartbeatWebSocketResponse(autoping=True)

    async def plain_session() -> None:
        async with aiohttp.ClientSession() as session:
            with pytest.raises(ConfigError, match="autoping"):
                await heartbeat_aiohttp.ws_connect(session, "ws://127.0.0.1:1/", autoping=True)

    asyncio.run(plain_session())


def test_asgi_middleware_arguments_and_passthrough() -> None:
    from heartbeat_asgi import HeartbeatMiddleware

    seen: list[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(scope["type"])

    with pytest.raises(ConfigError, match="ASGI application"):
        HeartbeatMiddleware(42)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="max_queue"):
        HeartbeatMiddleware(app, max_queue=0)
    with pytest.raises(ConfigError, match="HeartbeatConfig"):
        HeartbeatMiddleware(app, config="fast")  # type: ignore[arg-type]
    wrapped = HeartbeatMiddleware(app, config=HeartbeatConfig(interval=1.0))
    assert wrapped.config.style is HeartbeatStyle.APP  # (ASGI has no ping frames)

    async def nothing() -> Any:
        raise AssertionError("an HTTP request is not read by the middleware")

    async def main() -> None:
        await wrapped({"type": "http"}, nothing, nothing)
        await wrapped({"type": "lifespan"}, nothing, nothing)

    asyncio.run(main())
    assert seen == ["http", "lifespan"]


def test_asgi_application_that_never_accepts_reports_one_closed() -> None:
    from heartbeat_asgi import HeartbeatMiddleware

    events: list[object] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        assert (await receive())["type"] == "websocket.connect"
        await send({"type": "websocket.close", "code": 1008})

    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "websocket.connect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    wrapped = HeartbeatMiddleware(app, on_event=lambda scope, event: events.append(event))
    asyncio.run(wrapped({"type": "websocket"}, receive, send))
    assert sent == [{"type": "websocket.close", "code": 1008}]
    assert [type(e).__name__ for e in events] == ["Closed"]
