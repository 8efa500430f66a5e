"""``heartbeat_asyncio.serve`` alone, with no CLI around it, for ../shared/bench's harness.

The reference harness measures ``heartbeat serve``, whose JSON log writes a line per
heartbeat; this server measures the library itself, with a handler task per connection
or, with ``--on-message``, with ``serve(on_message=...)``. Usage, from ../shared/bench:

    heartbeat_load.py --server "ours-lib=.venv/bin/python benchmarks/lib_server.py --port {port}
        --interval {interval} --timeout {timeout}" --peer floor -n 10000 -r 3
"""

from __future__ import annotations

import argparse
import asyncio
import json
from typing import Any

from heartbeat_asyncio import serve

from heartbeat_core import HeartbeatConfig


def parse_args(description: str | None) -> argparse.Namespace:
    """The harness's arguments, and ``--on-message``: for this server and its threading twin."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--interval", type=float, default=1.0)
    parser.add_argument("--timeout", type=float, default=5.0)
    parser.add_argument(
        "--probe-interval", type=float, default=None, help="rule probe (default: off)"
    )
    parser.add_argument(
        "--on-message",
        action="store_true",
        help="serve(on_message=...): no handler per idle connection (default: one each)",
    )
    return parser.parse_args()


async def main() -> None:
    args = parse_args(__doc__)

    async def handler(conn: Any) -> None:
        async for _ in conn:
            pass

    async def on_message(conn: Any, message: str | bytes) -> None:
        pass

    config = HeartbeatConfig(
        interval=args.interval, timeout=args.timeout, probe_interval=args.probe_interval
    )
    if args.on_message:
        await serve(None, "127.0.0.1", args.port, config=config, on_message=on_message)
    else:
        await serve(handler, "127.0.0.1", args.port, config=config)
    print(json.dumps({"event": "listening", "port": args.port}), flush=True)
    await asyncio.Event().wait()  # until the harness stops the process


if __name__ == "__main__":
    asyncio.run(main())
