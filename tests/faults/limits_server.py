"""An echo server in its own process, for the fault tests that exhaust a resource.

    python limits_server.py ADAPTER [--nofile N] [--interval S] [--timeout S]

ADAPTER is ``asyncio``, ``asyncio-uvloop`` or ``threading``. ``--nofile`` lowers the
process's open-file limit (RLIMIT_NOFILE) before the server starts. Prints
``{"port": P}`` once listening; then answers one JSON line per command read on stdin:

* ``stats``: ``rss_kib``, ``fds``, ``threads``, ``cpu_s`` (user + system), ``conns`` (live
  ``Connection`` objects, counted by the garbage collector without collecting);
* ``collect``: a full garbage collection;
* ``threads off`` / ``threads on``: from now on, starting a handler thread fails as it
  does under a task limit (``RuntimeError: can't start new thread``), or works again.

SIGTERM closes the server (1001 for every connection) and exits 0; stdin closing or a
lifetime of 120 s does the same. The library's log (WARNING and up) goes to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import logging
import os
import resource
import signal
import sys
import threading
from typing import Any

from heartbeat_core import HeartbeatConfig

_start = threading.Thread.start
_no_threads = threading.Event()


def _start_unless_limited(self: threading.Thread) -> None:
    if _no_threads.is_set() and self.name.startswith("heartbeat-handler"):
        raise RuntimeError("can't start new thread")
    _start(self)


threading.Thread.start = _start_unless_limited  # type: ignore[method-assign]


_status = open("/proc/self/status")  # noqa: SIM115 (kept open: the fd limit may be reached)


def _fds() -> int:
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:  # out of descriptors
        return -1


def _stats(conn_type: type) -> dict[str, Any]:
    _status.seek(0)
    rss = next(int(line.split()[1]) for line in _status if line.startswith("VmRSS:"))
    times = os.times()
    return {
        "rss_kib": rss,
        "fds": _fds(),
        "threads": threading.active_count(),
        "cpu_s": times.user + times.system,
        "conns": sum(1 for o in gc.get_objects() if type(o) is conn_type),
    }


def _commands(conn_type: type, stop: threading.Event) -> None:
    for line in sys.stdin:
        command = line.strip()
        if command == "threads off":
            _no_threads.set()
        elif command == "threads on":
            _no_threads.clear()
        elif command == "collect":
            gc.collect()
        out: dict[str, Any] = _stats(conn_type) if command == "stats" else {"ok": command}
        sys.stdout.write(json.dumps(out) + "\n")
        sys.stdout.flush()
    stop.set()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("adapter", choices=("asyncio", "asyncio-uvloop", "threading"))
    parser.add_argument("--nofile", type=int)
    parser.add_argument("--interval", type=float, default=0.2)
    parser.add_argument("--timeout", type=float, default=0.4)
    args = parser.parse_args()
    if args.nofile:
        resource.setrlimit(resource.RLIMIT_NOFILE, (args.nofile, args.nofile))
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    config = HeartbeatConfig(interval=args.interval, timeout=args.timeout, close_timeout=0.3)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    if args.adapter == "threading":
        from heartbeat_threading import serve
        from heartbeat_threading.connection import Connection

        def echo(conn: Any) -> None:
            for message in conn:
                conn.send(message)

        server = serve(echo, "127.0.0.1", 0, config=config)
        print(json.dumps({"port": server.port}), flush=True)
        threading.Thread(target=_commands, args=(Connection, stop), daemon=True).start()
        stop.wait(120)
        server.close(timeout=2.0)
        return

    from heartbeat_asyncio import serve as aserve
    from heartbeat_asyncio.connection import Connection as AConnection

    async def aecho(conn: Any) -> None:
        async for message in conn:
            await conn.send(message)

    async def run() -> None:
        server = await aserve(aecho, "127.0.0.1", 0, config=config)
        print(json.dumps({"port": server.port}), flush=True)
        threading.Thread(target=_commands, args=(AConnection, stop), daemon=True).start()
        await asyncio.get_running_loop().run_in_executor(None, stop.wait, 120)
        await server.close(timeout=2.0)

    if args.adapter == "asyncio-uvloop":
        import uvloop

        uvloop.run(run())
    else:
        asyncio.run(run())


if __name__ == "__main__":
    main()
    sys.exit(0)
