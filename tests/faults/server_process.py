"""An echo server of either adapter in its own process, for the fault tests.

    python server_process.py ADAPTER HOST INTERVAL TIMEOUT [LIFETIME]

Prints ``{"port": P}`` once listening, then one JSON line per heartbeat verdict or close:
``{"event": "RttSample" | "PeerDead" | "Closed", ..., "t": time.monotonic()}`` (the monotonic
clock is shared by every process of the machine). Exits when stdin closes or after
LIFETIME seconds (default 60).
"""

from __future__ import annotations

import asyncio
import json
import sys
import threading
import time
from typing import Any

from heartbeat_core import Closed, HeartbeatConfig, PeerDead, RttSample

_lock = threading.Lock()


def _emit(obj: dict[str, Any]) -> None:
    with _lock:
        sys.stdout.write(json.dumps(obj) + "\n")
        sys.stdout.flush()


def on_event(conn: object, event: object) -> None:
    if isinstance(event, Closed):
        _emit(
            {"event": "Closed", "code": event.code, "reason": event.reason, "t": time.monotonic()}
        )
    elif isinstance(event, PeerDead):
        _emit({"event": "PeerDead", "waited": event.waited, "t": time.monotonic()})
    elif isinstance(event, RttSample):
        _emit({"event": "RttSample", "rtt": event.rtt, "t": time.monotonic()})


def _wait_stdin_or(lifetime: float) -> None:
    done = threading.Event()

    def watch() -> None:
        sys.stdin.read()
        done.set()

    threading.Thread(target=watch, daemon=True).start()
    done.wait(lifetime)


def main() -> None:
    adapter, host = sys.argv[1], sys.argv[2]
    cfg = HeartbeatConfig(
        interval=float(sys.argv[3]), timeout=float(sys.argv[4]), close_timeout=0.5
    )
    lifetime = float(sys.argv[5]) if len(sys.argv) > 5 else 60.0
    if adapter == "asyncio":
        from heartbeat_asyncio import serve as aserve

        async def handler(conn: Any) -> None:
            async for message in conn:
                await conn.send(message)

        async def run() -> None:
            server = await aserve(handler, host, 0, config=cfg, on_event=on_event)
            _emit({"port": server.port})
            await asyncio.get_running_loop().run_in_executor(None, _wait_stdin_or, lifetime)
            await server.close(timeout=1.0)

        asyncio.run(run())
    else:
        from heartbeat_threading import serve

        def thandler(conn: Any) -> None:
            for message in conn:
                conn.send(message)

        server = serve(thandler, host, 0, config=cfg, on_event=on_event)
        _emit({"port": server.port})
        _wait_stdin_or(lifetime)
        server.close(timeout=1.0)


if __name__ == "__main__":
    main()
