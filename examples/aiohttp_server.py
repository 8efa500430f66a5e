"""Heartbeats in aiohttp's WebSocketResponse: protocol pings or application-level ones.

``HeartbeatWebSocketResponse`` is aiohttp's ``WebSocketResponse`` with aiohttp's
own heartbeat off and the core deciding liveness; the handler is plain aiohttp
code and never sees a ping, a pong or a heartbeat message. A peer found dead
gets close 1011, and ``ws.close_code`` reads 1011 here too. Run it, then connect
to ws://127.0.0.1:8080/ws : it echoes text.
"""

from __future__ import annotations

import logging

from aiohttp import WSMsgType, web
from heartbeat_aiohttp import HeartbeatWebSocketResponse

from heartbeat_core import EventCallback, HeartbeatConfig

__all__ = ["CONFIG", "ON_EVENT", "make_app"]

log = logging.getLogger("heartbeat_core.examples.aiohttp_server")
CONFIG = web.AppKey("heartbeat_config", HeartbeatConfig)
ON_EVENT: web.AppKey[EventCallback] = web.AppKey("heartbeat_on_event")


async def websocket_handler(request: web.Request) -> web.WebSocketResponse:
    ws = HeartbeatWebSocketResponse(config=request.app[CONFIG], on_event=request.app[ON_EVENT])
    await ws.prepare(request)
    async for msg in ws:  # the application: an echo
        if msg.type is WSMsgType.TEXT:
            await ws.send_str(msg.data)
    log.info("closed with %s", ws.close_code)
    return ws


def make_app(
    config: HeartbeatConfig | None = None,
    on_event: EventCallback = lambda ws, event: log.info("%s", event),
) -> web.Application:
    """The application: ``/ws`` is the echo WebSocket; ``on_event`` sees every RTT
    sample, death and close."""
    app = web.Application()
    app[CONFIG] = HeartbeatConfig() if config is None else config
    app[ON_EVENT] = on_event
    app.router.add_get("/ws", websocket_handler)
    return app


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    web.run_app(make_app(), host="127.0.0.1", port=8080)
