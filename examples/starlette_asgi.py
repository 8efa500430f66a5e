"""Heartbeats in an ASGI application (Starlette, served by uvicorn).

ASGI has no ping or pong event: the server answers protocol pings out of the
application's sight, and the application cannot send one. So heartbeats are
application-level messages (``{"type":"ping"}`` / ``{"type":"pong"}``), which
browsers can answer too. Run it, then connect to ws://127.0.0.1:8000/ws : it
echoes text.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable, Iterable

from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket

from heartbeat_core import (
    JSON_CODEC,
    Action,
    AppKind,
    AppPingReceived,
    AppPongReceived,
    BytesReceived,
    CloseTransport,
    ConnectionClosed,
    ConnectionOpened,
    HeartbeatConfig,
    HeartbeatState,
    HeartbeatStyle,
    PeerDead,
    RttSample,
    SendAppPing,
    SendAppPong,
    SendClose,
    TimerFired,
)

__all__ = ["make_app"]

log = logging.getLogger("heartbeat_core.examples.starlette_asgi")


def make_app(
    config: HeartbeatConfig | None = None,
    on_action: Callable[[Action], None] = lambda action: log.info("%s", action),
) -> Starlette:
    """The application: ``/ws`` is the echo WebSocket; ``on_action`` sees RTT samples and deaths."""
    # Only application-level heartbeats are possible over ASGI.
    config = dataclasses.replace(config or HeartbeatConfig(), style=HeartbeatStyle.APP)

    async def endpoint(websocket: WebSocket) -> None:
        await websocket.accept()
        loop = asyncio.get_running_loop()
        state = HeartbeatState(config)
        state.handle(ConnectionOpened(now=loop.time()))

        async def apply(actions: Iterable[Action]) -> bool:
            """Carry out the actions; False once the connection is done with."""
            for action in actions:
                if isinstance(action, SendAppPing):
                    await websocket.send_text(JSON_CODEC.ping_text)
                elif isinstance(action, SendAppPong):
                    await websocket.send_text(JSON_CODEC.pong_text)
                elif isinstance(action, SendClose):
                    await websocket.close(action.code, action.reason)
                elif isinstance(action, CloseTransport):
                    return False  # returning hands the socket back to the server
                elif isinstance(action, (RttSample, PeerDead)):
                    on_action(action)
                # Abort: ASGI cannot abort; the server bounds its own closing handshake.
            return True

        while True:
            deadline = state.deadline
            assert deadline is not None  # open: a heartbeat or a timeout is always due
            try:  # cancelling receive() is safe: it waits on the server's queue
                message = await asyncio.wait_for(
                    websocket.receive(), max(0.0, deadline - loop.time())
                )
            except TimeoutError:
                if await apply(state.handle(TimerFired(now=max(deadline, loop.time())))):
                    continue
                return
            now = loop.time()
            if message["type"] == "websocket.disconnect":  # the server completed the close
                state.handle(ConnectionClosed(now=now))
                return
            state.handle(BytesReceived(now=now))  # any inbound message is a sign of life
            text = message.get("text")
            kind = None if text is None else JSON_CODEC.classify(text)
            if kind is AppKind.PING:
                await apply(state.handle(AppPingReceived(now=now)))
            elif kind is AppKind.PONG:
                await apply(state.handle(AppPongReceived(now=now)))
            elif text is not None:
                await websocket.send_text(text)  # the application: an echo
            if not state.is_open:  # e.g. the peer pinged too often and we closed
                return

    return Starlette(routes=[WebSocketRoute("/ws", endpoint)])


if __name__ == "__main__":
    import uvicorn

    logging.basicConfig(level=logging.INFO)
    uvicorn.run(make_app(), host="127.0.0.1", port=8000, ws="websockets-sansio")
