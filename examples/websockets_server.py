"""Heartbeats in websockets' own server and client (websockets 17, asyncio API).

``heartbeat_websockets.serve`` and ``connect`` are websockets' ``serve`` and
``connect`` with its keepalive off and the core deciding liveness. The handler is
plain websockets code. Run it, then connect any WebSocket client to
ws://127.0.0.1:8765/ : it echoes text, pings every 20 s, and logs every RTT.
"""

from __future__ import annotations

import asyncio
import logging

import heartbeat_websockets
from websockets.asyncio.server import ServerConnection

from heartbeat_core import ConnectionEvent, HeartbeatConfig, RttSample

__all__ = ["CONFIG", "handler", "log_rtt", "main", "watch"]

log = logging.getLogger("examples.websockets_server")
CONFIG = HeartbeatConfig(interval=20, timeout=10)


async def handler(ws: ServerConnection) -> None:
    """The application: plain websockets code (echo)."""
    async for message in ws:
        await ws.send(message)


def log_rtt(ws: object, event: ConnectionEvent) -> None:
    if isinstance(event, RttSample):
        log.info("heartbeat %d answered in %.1f ms", event.seq, event.rtt * 1000)


async def main(port: int = 8765, config: HeartbeatConfig = CONFIG) -> None:
    async with heartbeat_websockets.serve(
        handler, "127.0.0.1", port, config=config, on_event=log_rtt
    ) as server:
        await server.serve_forever()


async def watch(uri: str, config: HeartbeatConfig = CONFIG) -> None:
    """A client: print what the server sends until the connection ends (closed, or the
    server found dead: then ``recv()`` raises ``ConnectionClosedError``, code 1011)."""
    async with heartbeat_websockets.connect(uri, config=config, on_event=log_rtt) as ws:
        async for message in ws:
            print(message)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    asyncio.run(main())
