"""What the ``heartbeat`` command prints, and how.

Exit codes, line-by-line output (colour only on a terminal), one-line errors on
stderr, the formatting of peers, times and milliseconds, and the wording for a
connection that could not be opened. Every subcommand writes through these.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import socket
import ssl
import sys
import time
from collections.abc import Callable
from typing import ClassVar, TextIO

from heartbeat_cli.sink import LineSink
from heartbeat_core.errors import HandshakeError

# One encoder for every JSON line (json.dumps with separators makes a new one per call).
_JSON = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)

__all__ = [
    "EXIT_ERROR",
    "EXIT_FAILED",
    "EXIT_OK",
    "PROG",
    "Output",
    "describe_connect_error",
    "error",
    "format_peer",
    "milliseconds",
    "positive_int",
    "use_color",
    "wall_clock",
]

#: Everything went as asked.
EXIT_OK = 0
#: The peer was declared dead, closed the connection first or broke the protocol (or a
#: demo step failed).
EXIT_FAILED = 1
#: Usage or connection error (a short message on stderr).
EXIT_ERROR = 2

#: The command's name, in its usage lines and error messages.
PROG = "heartbeat"


class Output:
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

    def __init__(
        self, stream: TextIO, *, color: bool = False, sink: LineSink | None = None
    ) -> None:
        self._stream = stream
        self._color = color
        self._broken = False
        self._sink = sink

    def in_background(self, notice: Callable[[int], str], *, shared: bool = False) -> Output:
        """The same output, written by a thread of its own (a :class:`LineSink`): a stream
        nobody reads never blocks the caller; lines it cannot take are dropped, and
        ``notice(count)`` stands in their place. ``shared``: other processes write to the
        stream too (whole lines in atomic writes). :meth:`close` it when done."""
        sink = LineSink(self._stream, notice=notice, shared=shared)
        return Output(self._stream, color=self._color, sink=sink)

    @property
    def dropped(self) -> int:
        """Lines dropped because the stream did not keep up (background output only)."""
        return 0 if self._sink is None else self._sink.dropped

    def close(self, timeout: float = 1.0) -> None:
        """Background output: write what waits, for at most ``timeout`` seconds."""
        if self._sink is not None:
            self._sink.close(timeout)

    def line(self, text: str = "") -> None:
        """Write ``text`` and a newline; after a broken pipe, nothing."""
        if self._sink is not None:
            self._sink.put(text)
            return
        if self._broken:
            return
        try:
            self._stream.write(text + "\n")
            self._stream.flush()
        except BrokenPipeError:
            # The reader went away (e.g. `| head`): stop writing, keep running.
            self._broken = True

    def json(self, **fields: object) -> None:
        """Write ``fields`` as one compact JSON object on a line."""
        self.line(_JSON.encode(fields))

    def paint(self, text: str, *styles: str) -> str:
        """``text`` in ``styles`` (``"bold"``, ``"red"``, ...) when colour is on."""
        if not self._color or not styles:
            return text
        codes = ";".join(self._STYLES[s] for s in styles)
        return f"\x1b[{codes}m{text}\x1b[0m"


def positive_int(text: str) -> int:
    """An argparse ``type``: a whole number >= 1 (a count of runs, pings, workers...)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a number >= 1, got {text!r}")
    return value


def use_color(stream: TextIO) -> bool:
    """Colour only on a terminal, never with ``NO_COLOR`` set or ``TERM=dumb``."""
    if os.environ.get("NO_COLOR", "") != "" or os.environ.get("TERM") == "dumb":
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def error(message: str) -> int:
    """One line on stderr; returns :data:`EXIT_ERROR`."""
    with contextlib.suppress(OSError):
        sys.stderr.write(f"{PROG}: {message}\n")
        sys.stderr.flush()
    return EXIT_ERROR


def milliseconds(seconds: float) -> float:
    """``seconds`` in milliseconds, rounded to the microsecond."""
    return round(seconds * 1000.0, 3)


def format_peer(address: object) -> str:
    """``host:port`` (``[host]:port`` for IPv6) from a socket address; ``unknown`` otherwise."""
    if isinstance(address, tuple) and len(address) >= 2:
        host, port = address[0], address[1]
        return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"
    return "unknown"


def wall_clock() -> str:
    """The local time of day, to the millisecond (``HH:MM:SS.mmm``)."""
    now = time.time()
    return time.strftime("%H:%M:%S", time.localtime(now)) + f".{int(now % 1 * 1000):03d}"


def describe_connect_error(exc: BaseException) -> str:
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
