"""``heartbeat_threading.serve`` alone, for the reference harness in ../shared/bench.

The threading twin of ``lib_server.py``: every connection's handler iterates over
its messages (``for _ in conn: pass``, a thread per connection), as ``servers.py``'s
``ours-threading`` does; with ``--on-message`` the server takes ``on_message`` instead
(worker threads started as needed: an idle connection holds no thread).
Usage, from ../shared/bench:

    heartbeat_load.py --server "ours-threading=.venv/bin/python
        benchmarks/lib_server_threading.py --port {port} --interval {interval}
        --timeout {timeout} [--on-message]" --peer floor -n 5000 -r 3
"""

from __future__ import annotations

import json
import logging
import resource

from heartbeat_threading import Connection, serve
from lib_server import parse_args

from heartbeat_core import HeartbeatConfig


def main() -> None:
    args = parse_args(__doc__)
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # a descriptor per connection
    logging.basicConfig(level=logging.WARNING)

    def handler(conn: Connection) -> None:
        for _ in conn:
            pass

    def on_message(conn: Connection, message: str | bytes) -> None:
        pass

    config = HeartbeatConfig(
        interval=args.interval, timeout=args.timeout, probe_interval=args.probe_interval
    )
    if args.on_message:
        server = serve(on_message=on_message, port=args.port, config=config, backlog=4096)
    else:
        server = serve(handler, "127.0.0.1", args.port, config=config, backlog=4096)
    print(json.dumps({"event": "listening", "port": args.port}), flush=True)
    server.serve_forever()  # until the harness's SIGTERM ends the process


if __name__ == "__main__":
    main()
