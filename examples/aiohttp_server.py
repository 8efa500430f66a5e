"""Heartbeats for aiohttp's ``WebSocketResponse``: protocol pings or application-level ones.

aiohttp reads the frames; heartbeat-core decides when to ping and when the peer
is dead. With ``style=PROTOCOL`` we ping with control frames (``autoping=False``
so that pings and pongs reach us); with ``style=APP`` we send
``{"type":"ping"}`` messages, which is what a browser can answer. Run it, then
connect to ws://127.0.0.1:8080/ws : it echoes text.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable

from aiohttp import WSMsgType, web

from heartbeat_core import (
    JSON_CODEC,
    Action,
    AppKind,
    AppPingReceived,
    AppPongReceived,
    BytesReceived,
    CloseReceived,
    ConnectionClosed,
    ConnectionOpened,
    HeartbeatConfig,
    HeartbeatState,
    PeerDead,
    PingReceived,
    PongReceived,
    RttSample,
    SendAppPing,
    SendAppPong,
    SendClose,
    SendPing,
    SendPong,
    TimerFired,
)

__all__ = ["CONFIG", "ON_ACTION", "make_app"]

log = logging.getLogger("heartbeat_core.examples.aiohttp_server")
CONFIG = web.AppKey("heartbeat_config", HeartbeatConfig)
ON_ACTION: web.AppKey[Callable[[Action], None]] = web.AppKey("heartbeat_on_action")


async def websocket_handler(request: web.Request) -> web.WebSocketResponse:
    config = request.app[CONFIG]
    # autoping=False: pings and pongs reach us; `timeout` bounds aiohttp's closing handshake.
    ws = web.WebSocketResponse(autoping=False, timeout=config.close_timeout)
    await ws.prepare(request)
    loop = asyncio.get_running_loop()
    state = HeartbeatState(config)
    state.handle(ConnectionOpened(now=loop.time()))

    async def apply(actions: Iterable[Action]) -> None:
        for action in actions:
            if isinstance(action, SendPing):
                await ws.ping(action.payload)
            elif isinstance(action, SendPong):
                await ws.pong(action.payload)
            elif isinstance(action, SendAppPing):
                await ws.send_str(JSON_CODEC.ping_text)
            elif isinstance(action, SendAppPong):
                await ws.send_str(JSON_CODEC.pong_text)
            elif isinstance(action, SendClose):
                # Sends the close frame, then waits for the peer's (at most close_timeout)
                # and releases the socket: CloseTransport and Abort are covered by it.
                await ws.close(code=action.code, message=action.reason.encode())
            elif isinstance(action, (RttSample, PeerDead)):
                request.app[ON_ACTION](action)

    while not ws.closed:
        deadline = state.deadline
        assert deadline is not None  # open: a heartbeat or a timeout is always due
        try:  # a zero timeout means "none" to aiohttp: wait at least 1 ms
            msg = await ws.receive(timeout=max(deadline - loop.time(), 0.001))
        except TimeoutError:
            await apply(state.handle(TimerFired(now=max(deadline, loop.time()))))
            continue
        now = loop.time()
        state.handle(BytesReceived(now=now))  # any inbound message is a sign of life
        if msg.type is WSMsgType.PING:
            await apply(state.handle(PingReceived(now=now, payload=msg.data)))
        elif msg.type is WSMsgType.PONG:
            await apply(state.handle(PongReceived(now=now, payload=msg.data)))
        elif msg.type is WSMsgType.TEXT:
            kind = JSON_CODEC.classify(msg.data)
            if kind is AppKind.PING:
                await apply(state.handle(AppPingReceived(now=now)))
            elif kind is AppKind.PONG:
                await apply(state.handle(AppPongReceived(now=now)))
            else:
                await ws.send_str(msg.data)  # the application: an echo
        elif msg.type is WSMsgType.CLOSE:  # aiohttp has already answered: close() is a no-op
            await apply(state.handle(CloseReceived(now=now, code=msg.data, reason=msg.extra or "")))
    state.handle(ConnectionClosed(now=loop.time()))
    return ws


def make_app(
    config: HeartbeatConfig | None = None,
    on_action: Callable[[Action], None] = lambda action: log.info("%s", action),
) -> web.Application:
    """The application: ``/ws`` is the echo WebSocket; ``on_action`` sees RTT samples and deaths."""
    app = web.Application()
    app[CONFIG] = HeartbeatConfig() if config is None else config
    app[ON_ACTION] = on_action
    app.router.add_get("/ws", websocket_handler)
    return app


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    web.run_app(make_app(), host="127.0.0.1", port=8080)
