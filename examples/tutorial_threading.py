"""The tutorial with threads: the same echo server and client, blocking calls, no asyncio.

Run it with ``python examples/tutorial_threading.py``: it starts the server,
connects a client, and shows a message, a ping and a few heartbeats.
"""

from __future__ import annotations

import threading

from heartbeat_threading import Connection, connect, serve

from heartbeat_core import ConnectionEvent, HeartbeatConfig, RttSample

__all__ = ["main"]


def echo(conn: Connection) -> None:
    """Runs in a thread of its own, one per connection."""
    for message in conn:
        conn.send(message)


def main(config: HeartbeatConfig | None = None, heartbeats: int = 3) -> None:
    config = config or HeartbeatConfig(interval=1.0, timeout=2.0)
    answered = threading.Event()
    count = 0

    def on_event(conn: Connection, event: ConnectionEvent) -> None:  # on the reactor thread
        nonlocal count
        if isinstance(event, RttSample):
            count += 1
            print(f"heartbeat {event.seq}: {event.rtt * 1000:.1f} ms")
            if count == heartbeats:
                answered.set()

    with serve(echo, "127.0.0.1", 0, config=config) as server:
        uri = f"ws://127.0.0.1:{server.port}/"
        with connect(uri, config=config, on_event=on_event) as conn:
            conn.send("hello")
            print("echo:", conn.recv(timeout=10))
            print(f"ping: {conn.ping(timeout=10) * 1000:.1f} ms")
            # Heartbeats run on the reactor thread while this one waits.
            if not answered.wait(timeout=heartbeats * (config.interval + 5)):
                raise TimeoutError("the heartbeats were not answered")
        print("closed with", conn.close_code)


if __name__ == "__main__":
    main()
