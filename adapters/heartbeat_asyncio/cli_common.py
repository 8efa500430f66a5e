"""What the ``heartbeat`` command's subcommands share.

Exit codes, line-by-line output (colour only on a terminal), stop on SIGINT or
SIGTERM, waiting for the first of several things, wording for a connection that
could not be opened, and the echo handler. The commands themselves live in
:mod:`heartbeat_asyncio.cli_serve`, :mod:`heartbeat_asyncio.cli_ping` and
:mod:`heartbeat_asyncio.cli_demo`; :mod:`heartbeat_asyncio.cli` parses the
arguments and runs one of them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import ssl
import sys
import time
from collections.abc import Awaitable
from typing import Any, ClassVar, TextIO

from heartbeat_asyncio import Connection
from heartbeat_core.errors import ConnectionClosedError, HandshakeError

__all__ = ["EXIT_ERROR", "EXIT_FAILED", "EXIT_OK"]

#: Everything went as asked.
EXIT_OK = 0
#: The peer was declared dead or closed the connection first (or a demo step failed).
EXIT_FAILED = 1
#: Usage or connection error (a short message on stderr).
EXIT_ERROR = 2

_PROG = "heartbeat"


# --------------------------------------------------------------------------- output


class _Out:
    """Line-oriented output, flushed line by line (even into a pipe)."""

    _STYLES: ClassVar[dict[str, str]] = {
        "dim": "2",
        "bold": "1",
        "red": "31",
        "green": "32",
        "yellow": "33",
        "blue": "34",
        "magenta": "35",
        "cyan": "36",
    }

    def __init__(self, stream: TextIO, *, color: bool = False) -> None:
        self._stream = stream
        self._color = color
        self._broken = False

    def line(self, text: str = "") -> None:
        if self._broken:
            return
        try:
            self._stream.write(text + "\n")
            self._stream.flush()
        except BrokenPipeError:
            # The reader went away (e.g. `| head`): stop writing, keep running.
            self._broken = True

    def json(self, **fields: object) -> None:
        self.line(json.dumps(fields, separators=(",", ":"), ensure_ascii=False))

    def paint(self, text: str, *styles: str) -> str:
        if not self._color or not styles:
            return text
        codes = ";".join(self._STYLES[s] for s in styles)
        return f"\x1b[{codes}m{text}\x1b[0m"


def _use_color(stream: TextIO) -> bool:
    """Colour only on a terminal, never with ``NO_COLOR`` set or ``TERM=dumb``."""
    if os.environ.get("NO_COLOR", "") != "" or os.environ.get("TERM") == "dumb":
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def _error(message: str) -> int:
    """One line on stderr; returns :data:`EXIT_ERROR`."""
    with contextlib.suppress(OSError):
        sys.stderr.write(f"{_PROG}: {message}\n")
        sys.stderr.flush()
    return EXIT_ERROR


def _ms(seconds: float) -> float:
    return round(seconds * 1000.0, 3)


def _peer(address: object) -> str:
    if isinstance(address, tuple) and len(address) >= 2:
        host, port = address[0], address[1]
        return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"
    return "unknown"


def _clock() -> str:
    now = time.time()
    return time.strftime("%H:%M:%S", time.localtime(now)) + f".{int(now % 1 * 1000):03d}"


# --------------------------------------------------------------------------- shared helpers


def _install_stop(loop: asyncio.AbstractEventLoop, stop: asyncio.Event, got: list[str]) -> None:
    """SIGINT and SIGTERM set ``stop`` (the signal's name goes to ``got``)."""
    for sig in (signal.SIGINT, signal.SIGTERM):

        def handler(sig: signal.Signals = sig) -> None:
            got.append(sig.name)
            stop.set()

        try:
            loop.add_signal_handler(sig, handler)
        except (NotImplementedError, RuntimeError):  # pragma: no cover - not on POSIX
            signal.signal(sig, lambda *_: loop.call_soon_threadsafe(handler))


async def _first(*awaitables: Awaitable[Any]) -> None:
    """Wait until the first of ``awaitables`` completes; cancel the rest."""
    tasks = [asyncio.ensure_future(a) for a in awaitables]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            if not task.done():
                task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


def _describe_connect_error(exc: BaseException) -> str:
    """A short, specific description of why a connection could not be opened."""
    if isinstance(exc, HandshakeError):
        if exc.status is not None:
            return f"the server answered HTTP status {exc.status} instead of 101 (upgrade)"
        return f"the WebSocket handshake failed: {exc}"
    if isinstance(exc, ssl.SSLCertVerificationError):
        why = getattr(exc, "verify_message", None) or getattr(exc, "reason", None) or exc
        return f"TLS failure: the server's certificate is not trusted ({why})"
    if isinstance(exc, ssl.SSLError):
        return f"TLS failure: {getattr(exc, 'reason', None) or exc}"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused (is a server listening on that port?)"
    if isinstance(exc, socket.gaierror):
        return f"cannot resolve the host name ({exc.strerror or exc})"
    if isinstance(exc, (TimeoutError, asyncio.TimeoutError)):
        return "timed out while opening the connection"
    if isinstance(exc, ConnectionResetError):
        return "the connection was reset during the handshake"
    if isinstance(exc, OSError):
        return exc.strerror or str(exc) or type(exc).__name__
    return str(exc) or type(exc).__name__


async def _echo(conn: Connection) -> None:
    """Echo every message back until the connection closes."""
    try:
        async for message in conn:
            await conn.send(message)
    except ConnectionClosedError:
        pass
