"""``heartbeat serve --workers N``: N server processes on one port, one supervisor.

The design, and why (the simplest that keeps one dashboard and one log):

* The command's own process is the *supervisor*: it accepts no connection. It
  starts N workers, each ``python -m heartbeat_cli serve`` with the same
  arguments and a hidden ``--worker INDEX,COUNT,FD``. Every worker is a whole
  ``heartbeat serve`` (:mod:`heartbeat_cli.serve`) listening with
  ``serve(..., reuse_port=True)``: the kernel (``SO_REUSEPORT``) spreads new
  connections among them, and no connection ever crosses a process.
* One log stream: the workers inherit the supervisor's stdout and write to it
  directly, whole lines in writes of at most ``PIPE_BUF`` bytes, which are atomic
  on a pipe or a file (:mod:`heartbeat_cli.sink`): lines never interleave, and no
  line costs a second process a copy. Each worker's lines say which worker it is:
  ``"worker": 1`` in JSON, ``w1`` in text; the supervisor's own lines (``workers``,
  ``worker-exit``) carry ``"worker": null``. Their order across workers is the
  order of the writes. Workers' stderr (``-v`` logging) is shared as is.
* One dashboard and ``/metrics`` for all: a viewer or a scrape reaches whichever
  worker the kernel picks, so every worker sends the supervisor a summary of its
  connections every half second, over a socket pair, and the supervisor relays it
  to the others (:mod:`heartbeat_cli.cluster` merges them). ``/metrics`` lists
  every worker's figures with a ``worker`` label.
* Shutdown: SIGINT or SIGTERM to the supervisor is forwarded (SIGTERM) to every
  worker, which closes its connections with 1001 as a single server does; the
  supervisor waits at most ``--close-timeout`` + 5 s, kills what is left, and
  exits 0 when every worker exited 0.
* A worker that dies (or exits) on its own is reported (``worker-exit``, its exit
  code), the others are stopped gracefully, and the command exits 1: a process
  manager (systemd, a container runtime) restarts the whole server. Restarting
  one worker in place would hide a crash loop; stopping makes it visible.
* ``--port 0``: the supervisor binds a free port first (``SO_REUSEPORT``, not
  listening, so it takes no connection) and hands its number to every worker.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import socket
import sys
from collections.abc import Sequence
from typing import Any

from heartbeat_cli.cluster import parse_worker
from heartbeat_cli.loops import LOOPS
from heartbeat_cli.output import (
    EXIT_ERROR,
    EXIT_FAILED,
    EXIT_OK,
    Output,
    error,
    format_peer,
    wall_clock,
)
from heartbeat_cli.runtime import install_stop
from heartbeat_core.errors import ConfigError
from heartbeat_core.tcp import check_reuse_port

__all__ = ["add_process_arguments", "parse_workers", "run_workers"]

#: Bound on the workers' start (interpreter, imports, listening), seconds.
START_TIMEOUT = 30.0
#: A worker's queue of parts waiting to be relayed to it; more, and parts are skipped.
RELAY_LIMIT = 4 * 1024 * 1024


def parse_workers(text: str) -> int:
    """``--workers``: a whole number >= 1, or ``auto`` (the number of CPUs)."""
    if text == "auto":
        return os.cpu_count() or 1
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a number of processes or 'auto', got {text!r}"
        ) from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a number >= 1 or 'auto', got {text!r}")
    return value


def add_process_arguments(parser: argparse.ArgumentParser) -> None:
    """``heartbeat serve``'s ``--workers`` and ``--loop`` (and the workers' hidden
    ``--worker``)."""
    parser.add_argument(
        "--workers",
        type=parse_workers,
        default=1,
        metavar="N",
        help="server processes sharing the port (SO_REUSEPORT), with one log and one "
        "dashboard; 'auto': one per CPU (default: %(default)s)",
    )
    parser.add_argument(
        "--loop",
        choices=LOOPS,
        default="auto",
        help="event loop; auto: uvloop when installed (pip install "
        "'heartbeat-core[uvloop]'), else asyncio (default: %(default)s)",
    )
    parser.add_argument("--worker", type=parse_worker, default=None, help=argparse.SUPPRESS)


class _Worker:
    def __init__(self, index: int, proc: asyncio.subprocess.Process) -> None:
        self.index = index
        self.proc = proc
        self.writer: asyncio.StreamWriter | None = None
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()


async def run_workers(args: argparse.Namespace, out: Output, argv: Sequence[str]) -> int:
    """Supervise ``args.workers`` workers serving ``argv`` (the command line); returns the
    exit status (see the module's docstring)."""
    count: int = args.workers
    try:
        check_reuse_port(True, available=hasattr(socket, "SO_REUSEPORT"))
    except ConfigError as exc:
        return error(f"--workers {count}: {exc}")
    try:
        family = socket.AF_INET6 if ":" in args.host else socket.AF_INET
        hold = socket.socket(family, socket.SOCK_STREAM)
        hold.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        hold.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        hold.bind((args.host, args.port))
    except OSError as exc:
        return error(f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}")
    port = hold.getsockname()[1]
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    got: list[str] = []
    install_stop(loop, stop, got)
    workers: list[_Worker] = []
    relays: list[asyncio.Task[None]] = []
    try:
        for index in range(1, count + 1):
            mine, theirs = socket.socketpair()
            with theirs:
                spec = f"{index},{count},{theirs.fileno()}"
                proc = await asyncio.create_subprocess_exec(
                    sys.executable, "-m", "heartbeat_cli", *argv,
                    "--port", str(port), "--worker", spec,
                    pass_fds=(theirs.fileno(),),
                )  # fmt: skip
            worker = _Worker(index, proc)
            workers.append(worker)
            reader, worker.writer = await asyncio.open_connection(sock=mine, limit=1 << 24)
            relays.append(asyncio.ensure_future(_relay(worker, reader, workers)))
        exits: dict[asyncio.Future[Any], _Worker] = {
            asyncio.ensure_future(w.proc.wait()): w for w in workers
        }
        started = asyncio.ensure_future(asyncio.wait([w.ready for w in workers]))
        done, _ = await asyncio.wait(
            [started, *exits], timeout=START_TIMEOUT, return_when=asyncio.FIRST_COMPLETED
        )
        hold.close()
        if started not in done:
            started.cancel()
            code = next((w.proc.returncode for w in workers if w.proc.returncode), None)
            if code is None:
                error(f"the workers did not start within {START_TIMEOUT:g} s")
            await _stop_all(workers, args.close_timeout)
            return EXIT_ERROR if code in (None, EXIT_ERROR) else EXIT_FAILED
        _log(out, args, "workers", f"{count} workers on {format_peer((args.host, port))}",
             workers=count, pids=[w.proc.pid for w in workers], port=port)  # fmt: skip
        stopping = asyncio.ensure_future(stop.wait())
        done, _ = await asyncio.wait([stopping, *exits], return_when=asyncio.FIRST_COMPLETED)
        status = EXIT_OK
        if stopping not in done:
            stopping.cancel()
            for task in done:
                dead = exits[task]
                _log(out, args, "worker-exit",
                     f"worker {dead.index} (pid {dead.proc.pid}) exited with "
                     f"{dead.proc.returncode}: stopping the others",
                     index=dead.index, pid=dead.proc.pid, code=dead.proc.returncode)  # fmt: skip
            status = EXIT_FAILED
        codes = await _stop_all(workers, args.close_timeout)
        if any(codes):
            status = EXIT_FAILED
        return status
    finally:
        hold.close()
        await _stop_all(workers, args.close_timeout)
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.gather(*relays, return_exceptions=True), 2.0)
        for worker in workers:
            if worker.writer is not None:
                worker.writer.close()


def _log(out: Output, args: argparse.Namespace, event: str, text: str, **fields: object) -> None:
    if args.log_format == "json":
        out.json(event=event, worker=None, **fields)
    else:
        out.line(f"{wall_clock()}  {text}")


async def _stop_all(workers: list[_Worker], close_timeout: float) -> list[int]:
    """SIGTERM every live worker, wait a bounded time, kill the rest; their exit codes."""
    for worker in workers:
        if worker.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                worker.proc.send_signal(signal.SIGTERM)
    waits = [asyncio.ensure_future(w.proc.wait()) for w in workers]
    if waits:
        _, late = await asyncio.wait(waits, timeout=close_timeout + 5.0)
        if late:
            for worker in workers:
                if worker.proc.returncode is None:
                    with contextlib.suppress(ProcessLookupError):
                        worker.proc.kill()
            await asyncio.wait(waits, timeout=2.0)
    return [w.proc.returncode if w.proc.returncode is not None else -9 for w in workers]


async def _relay(worker: _Worker, reader: asyncio.StreamReader, workers: list[_Worker]) -> None:
    """A worker's channel: its ``ready``, then its parts, relayed unread to the others."""
    with contextlib.suppress(OSError, ValueError, asyncio.IncompleteReadError):
        while line := await reader.readline():
            if not worker.ready.done():
                worker.ready.set_result(None)  # (its first line says it listens)
                continue
            for other in workers:
                writer = other.writer
                if other is worker or writer is None or writer.is_closing():
                    continue
                if writer.transport.get_write_buffer_size() < RELAY_LIMIT:
                    writer.write(line)
