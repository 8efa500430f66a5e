"""The tutorial's server: an echo server; every connection has heartbeats.

Run it with ``python examples/tutorial_server.py`` and leave it running; Control-C stops
it, closing every connection with 1001 (going away).
"""

from __future__ import annotations

import asyncio
import contextlib

from heartbeat_asyncio import Connection, Server, serve

from heartbeat_core import ConnectionEvent, HeartbeatConfig, PeerDead, RttSample

__all__ = ["start"]


async def echo(conn: Connection) -> None:
    """One connection: send every message back. Returning closes the connection."""
    async for message in conn:
        await conn.send(message)


def report(conn: Connection, event: ConnectionEvent) -> None:
    """Hear what the heartbeat does, for every connection."""
    if isinstance(event, RttSample):
        print(f"{conn.remote_address}: heartbeat {event.seq} answered in {event.rtt * 1000:.1f} ms")
    elif isinstance(event, PeerDead):
        print(f"{conn.remote_address}: no answer for {event.waited:.1f} s, closing (1011)")


async def start(port: int = 8765, config: HeartbeatConfig | None = None) -> Server:
    """Listen on 127.0.0.1:``port`` (0: any free port)."""
    config = config or HeartbeatConfig(interval=5.0, timeout=3.0)
    return await serve(echo, "127.0.0.1", port, config=config, on_event=report)


async def main() -> None:
    async with await start() as server:
        print(f"listening on ws://127.0.0.1:{server.port}/")
        await server.serve_forever()


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):  # Control-C: a quiet stop
        asyncio.run(main())
