"""Heartbeats in a Starlette application, served by uvicorn.

ASGI has no ping or pong event, so the heartbeat is made of application-level
messages (``{"type":"ping"}`` / ``{"type":"pong"}``), which browsers can answer
too. ``HeartbeatMiddleware`` reads the connection for the endpoint, handles the
heartbeat messages and passes everything else on: the endpoint keeps Starlette's
``iter_text`` and ``send_text``. Run it, then connect to ws://127.0.0.1:8000/ws :
it echoes text.
"""

from __future__ import annotations

import logging

from heartbeat_asgi import HeartbeatMiddleware
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket

from heartbeat_core import EventCallback, HeartbeatConfig

__all__ = ["make_app", "serve"]

log = logging.getLogger("heartbeat_core.examples.starlette_asgi")


async def echo(websocket: WebSocket) -> None:
    """The application: plain Starlette code."""
    await websocket.accept()
    async for text in websocket.iter_text():
        await websocket.send_text(text)


def make_app(
    config: HeartbeatConfig | None = None,
    on_event: EventCallback = lambda scope, event: log.info("%s", event),
) -> Starlette:
    """The application: ``/ws`` is the echo WebSocket; ``on_event`` sees every RTT
    sample, death and close."""
    heartbeat = Middleware(HeartbeatMiddleware, config=config, on_event=on_event)
    return Starlette(routes=[WebSocketRoute("/ws", echo)], middleware=[heartbeat])


def serve(port: int = 8000) -> None:
    import uvicorn

    # ws_ping_interval=None: uvicorn's own protocol pings off (its default is every
    # 20 s), so the core's heartbeat is the only one the client gets.
    uvicorn.run(make_app(), host="127.0.0.1", port=port, ws_ping_interval=None)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    serve()
