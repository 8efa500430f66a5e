"""The tutorial's client: one message, one ping of our own, then a few heartbeats.

Run it with ``python examples/tutorial_client.py`` while the server runs.
"""

from __future__ import annotations

import asyncio

from heartbeat_asyncio import Connection, connect

from heartbeat_core import ConnectionEvent, HeartbeatConfig, RttSample

__all__ = ["main"]


async def main(
    uri: str = "ws://127.0.0.1:8765/", config: HeartbeatConfig | None = None, heartbeats: int = 3
) -> None:
    config = config or HeartbeatConfig(interval=1.0, timeout=2.0)
    answered = asyncio.Event()
    count = 0

    def on_event(conn: Connection, event: ConnectionEvent) -> None:
        nonlocal count
        if isinstance(event, RttSample):
            count += 1
            print(f"heartbeat {event.seq}: {event.rtt * 1000:.1f} ms")
            if count == heartbeats:
                answered.set()

    async with connect(uri, config=config, on_event=on_event) as conn:
        await conn.send("hello")
        print("echo:", await conn.recv())
        rtt = await conn.ping()  # a ping of our own, apart from the heartbeats
        print(f"ping: {rtt * 1000:.1f} ms")
        # Heartbeats run on their own while we wait (or read, or send).
        await asyncio.wait_for(answered.wait(), timeout=heartbeats * (config.interval + 5))
        assert conn.latency is not None
        print(f"smoothed RTT: {conn.latency * 1000:.1f} ms, stats: {conn.stats}")
    print("closed with", conn.close_code)


if __name__ == "__main__":
    asyncio.run(main())
