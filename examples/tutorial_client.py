"""The tutorial's client: one message, one ping of our own, then a few heartbeats.

Run it with ``python examples/tutorial_client.py`` while the server runs. It exits with
status 0 once the heartbeats were answered and it closed the connection itself, and with
status 1, after one line saying why, when the server closed it first (for instance because
this process was stopped for longer than the server's ``interval + timeout``).
"""

from __future__ import annotations

import asyncio
import sys

from heartbeat_asyncio import Connection, connect

from heartbeat_core import Closed, ConnectionEvent, HeartbeatConfig, RttSample

__all__ = ["main"]


async def main(
    uri: str = "ws://127.0.0.1:8765/", config: HeartbeatConfig | None = None, heartbeats: int = 3
) -> int | None:
    """Return the close code (1000 when all went well)."""
    config = config or HeartbeatConfig(interval=1.0, timeout=2.0)
    done = asyncio.Event()  # the heartbeats were answered, or the connection ended
    count = 0

    def on_event(conn: Connection, event: ConnectionEvent) -> None:
        nonlocal count
        if isinstance(event, RttSample):
            count += 1
            print(f"heartbeat {event.seq}: {event.rtt * 1000:.1f} ms")
            if count == heartbeats:
                done.set()
        elif isinstance(event, Closed):
            done.set()

    async with connect(uri, config=config, on_event=on_event) as conn:
        await conn.send("hello")
        print("echo:", await conn.recv())
        rtt = await conn.ping()  # a ping of our own, apart from the heartbeats
        print(f"ping: {rtt * 1000:.1f} ms")
        # Heartbeats run on their own while we wait (or read, or send). The wait always
        # ends: with the answers, or with the connection, closed by the server or by our
        # heartbeat when the server stops answering.
        await done.wait()
        if conn.is_open:
            assert conn.latency is not None
            print(f"smoothed RTT: {conn.latency * 1000:.1f} ms, stats: {conn.stats}")
    by = " by the server" if conn.closed_by == "remote" else ""
    reason = f" ({conn.close_reason})" if conn.close_reason else ""
    print(f"closed{by} with {conn.close_code}{reason}")
    return conn.close_code


if __name__ == "__main__":
    sys.exit(0 if asyncio.run(main()) == 1000 else 1)
