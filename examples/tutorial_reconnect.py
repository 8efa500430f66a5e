"""The tutorial's reconnecting client: a new connection after every loss.

Run it with ``python examples/tutorial_reconnect.py``, then stop and restart
the server: the client notices (a close, or after interval + timeout when the
server is frozen) and reconnects with exponential backoff. Control-C stops it.
"""

from __future__ import annotations

import asyncio
import contextlib

from heartbeat_asyncio import Connected, Disconnected, ReconnectEvent, Retrying, connect_forever

from heartbeat_core import BackoffPolicy, HeartbeatConfig

__all__ = ["main"]


def on_state(event: ReconnectEvent) -> None:
    if isinstance(event, Connected):
        print("connected to", event.uri)
    elif isinstance(event, Disconnected):
        print("disconnected:", event.code, event.reason or event.error)
    elif isinstance(event, Retrying):
        print(f"retrying in {event.delay:.2f} s (attempt {event.attempt})")


async def main(
    uri: str = "ws://127.0.0.1:8765/",
    config: HeartbeatConfig | None = None,
    backoff: BackoffPolicy | None = None,
    connections: int | None = None,
) -> None:
    """Stay connected; stop after ``connections`` connections (``None``: never)."""
    config = config or HeartbeatConfig(interval=1.0, timeout=2.0)
    number = 0
    async for conn in connect_forever(uri, config=config, backoff=backoff, on_state=on_state):
        number += 1
        await conn.send(f"hello #{number}")
        async for message in conn:  # ends when this connection closes
            print("received:", message)
            if number == connections:
                await conn.close()
                return


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):  # Control-C: a quiet stop
        asyncio.run(main())
