"""The ``heartbeat`` command: ``serve``, ``ping`` and ``demo``.

``heartbeat serve`` runs an echo server whose every connection is supervised
by the core's heartbeat rules; ``heartbeat ping URL`` is ``ping(8)`` for
WebSocket endpoints; ``heartbeat demo`` shows both, with a frozen client and a
server restart, in about fifteen seconds on loopback.

Exit codes: 0 success; 1 the peer was declared dead or closed the connection
first (``ping``), or a step of the demo failed; 2 usage or connection errors.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import math
import os
import signal
import socket
import ssl
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, TextIO
from urllib.parse import urlsplit

import heartbeat_core
from heartbeat_asyncio import (
    Connected,
    Connection,
    Disconnected,
    ReconnectEvent,
    Retrying,
    Server,
    connect,
    connect_forever,
    serve,
)
from heartbeat_asyncio.dashboard import Dashboard
from heartbeat_core import (
    BackoffPolicy,
    Closed,
    Closing,
    ConnectionEvent,
    HeartbeatConfig,
    HeartbeatError,
    HeartbeatStyle,
    Liveness,
    PeerDead,
    Request,
    RttSample,
)
from heartbeat_core.errors import ConnectionClosedError, HandshakeError

__all__ = [
    "EXIT_ERROR",
    "EXIT_FAILED",
    "EXIT_OK",
    "PingStats",
    "build_parser",
    "main",
    "parse_size",
]

logger = logging.getLogger("heartbeat_asyncio.cli")

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


# --------------------------------------------------------------------------- statistics


@dataclass
class PingStats:
    """Round-trip statistics in the manner of ``ping(8)``.

    ``rtts`` holds the answered heartbeats' round-trip times (seconds);
    ``lost`` counts heartbeats unanswered for their whole timeout. A heartbeat
    still within its timeout at exit is neither (see ``in_flight``).
    """

    rtts: list[float] = field(default_factory=list)
    lost: int = 0
    in_flight: int = 0

    def add(self, rtt: float) -> None:
        self.rtts.append(rtt)

    @property
    def received(self) -> int:
        return len(self.rtts)

    @property
    def sent(self) -> int:
        """Heartbeats whose fate is known: answered, or unanswered for the whole timeout."""
        return len(self.rtts) + self.lost

    @property
    def loss(self) -> float:
        """The lost fraction of :attr:`sent` (0.0 when nothing was sent)."""
        return self.lost / self.sent if self.sent else 0.0

    @property
    def min(self) -> float | None:
        return min(self.rtts) if self.rtts else None

    @property
    def max(self) -> float | None:
        return max(self.rtts) if self.rtts else None

    @property
    def avg(self) -> float | None:
        return sum(self.rtts) / len(self.rtts) if self.rtts else None

    @property
    def mdev(self) -> float | None:
        """Standard deviation, as ``ping(8)`` computes it: sqrt(mean(x²) - mean(x)²)."""
        if not self.rtts:
            return None
        n = len(self.rtts)
        mean = sum(self.rtts) / n
        mean_sq = sum(r * r for r in self.rtts) / n
        return math.sqrt(max(0.0, mean_sq - mean * mean))

    def as_json(self) -> dict[str, object]:
        def ms(value: float | None) -> float | None:
            return None if value is None else _ms(value)

        return {
            "event": "summary",
            "sent": self.sent,
            "received": self.received,
            "loss": round(self.loss, 6),
            "min_ms": ms(self.min),
            "avg_ms": ms(self.avg),
            "max_ms": ms(self.max),
            "mdev_ms": ms(self.mdev),
            "in_flight": self.in_flight,
        }

    def text_lines(self, target: str, elapsed: float) -> list[str]:
        head = f"--- {target} heartbeat statistics ---"
        counts = (
            f"{self.sent} sent, {self.received} received, {self.loss * 100:.0f}% loss, "
            f"time {elapsed * 1000:.0f}ms"
        )
        if self.in_flight:
            counts += f" ({self.in_flight} in flight at exit, not counted)"
        lines = [head, counts]
        if self.rtts:
            assert self.min is not None and self.avg is not None
            assert self.max is not None and self.mdev is not None
            lines.append(
                "rtt min/avg/max/mdev = "
                f"{self.min * 1000:.3f}/{self.avg * 1000:.3f}/{self.max * 1000:.3f}/"
                f"{self.mdev * 1000:.3f} ms"
            )
        return lines


# --------------------------------------------------------------------------- arguments


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"expected a number of seconds > 0, got {text!r}")
    return value


def _non_negative_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not (math.isfinite(value) and value >= 0):
        raise argparse.ArgumentTypeError(f"expected a number of seconds >= 0, got {text!r}")
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a number >= 1, got {text!r}")
    return value


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number, got {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"expected a port in 0-65535, got {text!r}")
    return value


_SIZE_UNITS = {
    "": 1,
    "b": 1,
    "k": 1000,
    "kb": 1000,
    "kib": 1024,
    "m": 1000**2,
    "mb": 1000**2,
    "mib": 1024**2,
}


def parse_size(text: str) -> int:
    """``"1048576"``, ``"64KiB"``, ``"1MiB"``, ``"2MB"`` -> a number of bytes (>= 1).

    Raises :class:`argparse.ArgumentTypeError` with a readable message otherwise.
    """
    cleaned = text.strip().lower()
    digits = cleaned.rstrip("abcdefghijklmnopqrstuvwxyz")
    unit = cleaned[len(digits) :].strip()
    try:
        number = float(digits)
    except ValueError:
        number = math.nan
    if unit not in _SIZE_UNITS or not math.isfinite(number) or number * _SIZE_UNITS[unit] < 1:
        raise argparse.ArgumentTypeError(
            f"expected a size in bytes such as 1048576, 64KiB or 1MiB, got {text!r}"
        )
    return int(number * _SIZE_UNITS[unit])


_MAIN_EPILOG = """\
examples:
  heartbeat demo                          see it all in about 12 seconds
  heartbeat serve --port 8765             an echo server; every connection supervised
  heartbeat ping ws://127.0.0.1:8765/     ping(8) for a WebSocket endpoint

exit codes: 0 ok; 1 the peer was declared dead or closed the connection first;
2 usage or connection error.
"""

_SERVE_EPILOG = """\
modes (how the server's heartbeats travel):
  protocol  idle connections get ping frames; {"type":"ping"} is an ordinary, echoed message
  app       idle connections get {"type":"ping"} and should answer {"type":"pong"} (or
            anything); the peer's {"type":"ping"} is answered with {"type":"pong"}
  both      ping frames, and the peer's {"type":"ping"} is answered with {"type":"pong"}
The peer's protocol pings are always answered.

examples:
  heartbeat serve
  heartbeat serve --port 9000 --interval 5 --timeout 3 --mode app
  heartbeat serve --log-format json | jq .

The live dashboard is at http://HOST:PORT/ (the JavaScript client at /heartbeat-client.js);
--no-dashboard leaves both out.
"""

_PING_EPILOG = """\
One heartbeat is outstanding at a time: when the previous one is still unanswered as
the next falls due, the next waits. A heartbeat unanswered for --timeout declares the
peer dead.

examples:
  heartbeat ping ws://127.0.0.1:8765/
  heartbeat ping wss://example.org/socket --count 5 --interval 0.5
  heartbeat ping ws://127.0.0.1:8765/ --mode app --json

exit codes: 0 every heartbeat that had its full timeout was answered (count reached,
or interrupted); 1 the peer was declared dead or closed the connection first;
2 usage or connection error (refused, bad URL, TLS failure, HTTP status).
"""


def build_parser() -> argparse.ArgumentParser:
    """The ``heartbeat`` argument parser (usage errors exit with status 2)."""
    parser = argparse.ArgumentParser(
        prog=_PROG,
        description="Keep WebSocket connections honest: find dead peers, keep idle "
        "connections alive, measure round-trip time.",
        epilog=_MAIN_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--version", action="version", version=f"%(prog)s {heartbeat_core.__version__}"
    )
    parser.add_argument(
        "-v", "--verbose", action="count", default=0, help="log more on stderr (-vv: debug)"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    defaults = HeartbeatConfig()
    s = sub.add_parser(
        "serve",
        help="run an echo server with supervised connections",
        description="An echo server (text and binary) in which every connection is "
        "supervised by heartbeat-core's rules: any inbound byte proves the peer alive.",
        epilog=_SERVE_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    s.add_argument("--host", default="127.0.0.1", help="address to bind (default: %(default)s)")
    s.add_argument("--port", type=_port, default=8765, help="port to bind (default: %(default)s)")
    s.add_argument(
        "--interval",
        type=_positive_seconds,
        default=defaults.interval,
        help="heartbeat this long after the last sign of life (default: %(default)g s)",
    )
    s.add_argument(
        "--timeout",
        type=_positive_seconds,
        default=defaults.timeout,
        help="declare the peer dead when a heartbeat is unanswered this long "
        "(default: %(default)g s)",
    )
    s.add_argument(
        "--close-timeout",
        type=_non_negative_seconds,
        default=defaults.close_timeout,
        help="bound on a closing handshake (default: %(default)g s)",
    )
    s.add_argument(
        "--max-size",
        type=parse_size,
        default=1 << 20,
        help="largest message accepted; larger ones close with 1009 (default: 1MiB)",
    )
    s.add_argument(
        "--mode",
        choices=("protocol", "app", "both"),
        default="both",
        help="heartbeat style (default: %(default)s; see below)",
    )
    s.add_argument(
        "--log-format",
        choices=("text", "json"),
        default="text",
        help="text one-liners, or one JSON object per line (default: %(default)s)",
    )
    s.add_argument(
        "--no-dashboard",
        action="store_true",
        help="do not serve the live dashboard (/), the JavaScript client "
        "(/heartbeat-client.js) and the dashboard's feed (/_dashboard)",
    )

    p = sub.add_parser(
        "ping",
        help="measure a WebSocket endpoint's heartbeat round trip",
        description="Connect to URL, send a heartbeat every interval, print each "
        "answer's round-trip time and a ping(8)-style summary on exit.",
        epilog=_PING_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("url", metavar="URL", help="ws://host[:port]/path or wss://...")
    p.add_argument(
        "--interval",
        "-i",
        type=_positive_seconds,
        default=1.0,
        help="seconds between heartbeats (default: %(default)g)",
    )
    p.add_argument(
        "--timeout",
        "-W",
        type=_positive_seconds,
        default=5.0,
        help="seconds to wait for an answer before declaring the peer dead (default: %(default)g)",
    )
    p.add_argument(
        "--count",
        "-c",
        type=_positive_int,
        default=None,
        help="stop after N answered heartbeats (default: until interrupted)",
    )
    p.add_argument(
        "--mode",
        choices=("protocol", "app"),
        default="protocol",
        help='ping frames, or {"type":"ping"} messages (default: %(default)s)',
    )
    p.add_argument("--json", action="store_true", help="one JSON object per line")

    sub.add_parser(
        "demo",
        help="a 12-second tour on loopback: live RTT, a frozen client, a server restart",
        description="Runs a server and a few clients on 127.0.0.1 in both heartbeat "
        "styles, freezes one client (half-open) and restarts the server. Needs nothing "
        "else; ends by itself in about 12 seconds.",
    )
    return parser


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


def _check_url(url: str) -> str | None:
    """``None`` when ``url`` is a usable ws:// or wss:// URL, else what is wrong."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        return f"bad URL {url!r}: {exc}"
    del port
    if parts.scheme not in ("ws", "wss"):
        return f"bad URL {url!r}: the scheme must be ws:// or wss://"
    if not parts.hostname:
        return f"bad URL {url!r}: no host name (use ws://host[:port]/path)"
    return None


def _serve_config(
    mode: str, interval: float, timeout: float, close_timeout: float
) -> HeartbeatConfig:
    return HeartbeatConfig(
        interval=interval,
        timeout=timeout,
        close_timeout=close_timeout,
        style=HeartbeatStyle.APP if mode == "app" else HeartbeatStyle.PROTOCOL,
        answer_app_pings=mode != "protocol",
    )


async def _echo(conn: Connection) -> None:
    """Echo every message back until the connection closes."""
    try:
        async for message in conn:
            await conn.send(message)
    except ConnectionClosedError:
        pass


# --------------------------------------------------------------------------- serve


async def _serve_main(args: argparse.Namespace, out: _Out) -> int:
    json_mode = args.log_format == "json"
    try:
        config = _serve_config(args.mode, args.interval, args.timeout, args.close_timeout)
    except HeartbeatError as exc:
        return _error(str(exc))

    def log(event: str, text: str, **fields: object) -> None:
        if json_mode:
            out.json(event=event, **fields)
        else:
            out.line(f"{_clock()}  {text}")

    opened: set[Connection] = set()

    def on_event(conn: Connection, event: ConnectionEvent) -> None:
        peer = _peer(conn.remote_address)
        if isinstance(event, Request):
            # The upgrade is accepted as this event is reported: the connection is open.
            opened.add(conn)
            log("open", f"open    {peer}  {event.target}", peer=peer, path=event.target)
        elif isinstance(event, RttSample):
            log(
                "rtt",
                f"rtt     {peer}  seq={event.seq} rtt={event.rtt * 1000:.3f} ms",
                peer=peer,
                seq=event.seq,
                rtt_ms=_ms(event.rtt),
            )
        elif isinstance(event, PeerDead):
            log(
                "dead",
                f"dead    {peer}  heartbeat {event.seq} unanswered for "
                f"{event.waited * 1000:.0f} ms",
                peer=peer,
                seq=event.seq,
                waited_ms=_ms(event.waited),
            )
        elif isinstance(event, Closed) and conn in opened:
            # (Sockets that never completed an upgrade -- junk, plain HTTP -- are not logged.)
            opened.discard(conn)
            reason = f" {event.reason!r}" if event.reason else ""
            log(
                "close",
                f"close   {peer}  code={event.code}{reason} by {event.by}",
                peer=peer,
                code=event.code,
                reason=event.reason,
                by=event.by,
            )

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    got: list[str] = []
    _install_stop(loop, stop, got)
    dashboard = None if args.no_dashboard else Dashboard()

    def on_any_event(conn: Connection, event: ConnectionEvent) -> None:
        on_event(conn, event)
        if dashboard is not None:
            dashboard.on_event(conn, event)

    try:
        server = await serve(
            _echo if dashboard is None else dashboard.handler(_echo),
            args.host,
            args.port,
            config=config,
            max_size=args.max_size,
            on_event=on_any_event,
            http_handler=None if dashboard is None else dashboard.http_handler,
        )
    except OSError as exc:
        what = exc.strerror or str(exc)
        return _error(f"cannot listen on {args.host}:{args.port}: {what}")
    log(
        "listening",
        f"listening on {_peer((args.host, server.port))} (mode {args.mode}, interval "
        f"{args.interval:g} s, timeout {args.timeout:g} s); Ctrl-C to stop",
        host=args.host,
        port=server.port,
        mode=args.mode,
        interval=args.interval,
        timeout=args.timeout,
    )
    if dashboard is not None:
        url = f"http://{_peer((args.host, server.port))}/"
        log("dashboard", f"dashboard on {url} (--no-dashboard turns it off)", url=url)
    for finding in config.findings():
        log("warning", f"warning {finding}", message=finding)
    await stop.wait()
    count = len(server.connections)
    log(
        "shutdown",
        f"{got[0] if got else 'stop'}: closing {count} connection(s) with 1001",
        signal=got[0] if got else None,
        connections=count,
    )
    await server.close(1001, "going away", timeout=max(args.close_timeout, 0.1))
    await server.wait_closed()
    log("stopped", "stopped")
    return EXIT_OK


# --------------------------------------------------------------------------- ping


@dataclass
class _PingState:
    stats: PingStats = field(default_factory=PingStats)
    dead: PeerDead | None = None
    closed: Closed | None = None
    close_started_by_peer: Closing | None = None
    done: asyncio.Event = field(default_factory=asyncio.Event)
    ended: asyncio.Event = field(default_factory=asyncio.Event)


async def _ping_main(args: argparse.Namespace, out: _Out) -> int:
    problem = _check_url(args.url)
    if problem is not None:
        return _error(problem)
    json_mode: bool = args.json
    try:
        config = HeartbeatConfig(
            interval=args.interval,
            timeout=args.timeout,
            close_timeout=min(2.0, args.timeout),
            fixed_rate=True,
            liveness=Liveness.PONG_ONLY,
            style=HeartbeatStyle.APP if args.mode == "app" else HeartbeatStyle.PROTOCOL,
            answer_app_pings=True,
        )
    except HeartbeatError as exc:
        return _error(str(exc))

    st = _PingState()
    target = args.url

    def on_event(conn: Connection, event: ConnectionEvent) -> None:
        if st.done.is_set():
            return  # --count reached: what arrives while we close is not reported
        if isinstance(event, RttSample):
            st.stats.add(event.rtt)
            if json_mode:
                out.json(event="pong", seq=event.seq, rtt_ms=_ms(event.rtt))
            else:
                out.line(f"pong from {target}: seq={event.seq} rtt={event.rtt * 1000:.3f} ms")
            if args.count is not None and st.stats.received >= args.count:
                st.done.set()
        elif isinstance(event, PeerDead):
            st.dead = event
            st.stats.lost += 1
            if json_mode:
                out.json(event="dead", seq=event.seq, waited_ms=_ms(event.waited))
            else:
                out.line(
                    f"no answer to heartbeat seq={event.seq} after "
                    f"{event.waited * 1000:.0f} ms: peer declared dead"
                )
            st.ended.set()
        elif isinstance(event, Closing) and event.by_peer:
            st.close_started_by_peer = event
        elif isinstance(event, Closed):
            st.closed = event
            st.ended.set()

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    got: list[str] = []
    _install_stop(loop, stop, got)
    started = time.monotonic()
    connecting = asyncio.ensure_future(connect(args.url, config=config, on_event=on_event))
    await _first(asyncio.shield(connecting), stop.wait())
    if not connecting.done():
        connecting.cancel()
        with contextlib.suppress(BaseException):
            await connecting
        return _ping_summary(
            st, out=out, json_mode=json_mode, target=target, started=started, status=EXIT_OK
        )
    try:
        conn = connecting.result()
    except (OSError, HeartbeatError, ValueError, asyncio.TimeoutError) as exc:
        return _error(f"cannot connect to {target}: {_describe_connect_error(exc)}")

    if not json_mode:
        style = "protocol ping frames" if args.mode == "protocol" else '{"type":"ping"} messages'
        out.line(f"PING {target}: {style} every {args.interval:g} s, timeout {args.timeout:g} s")

    async def drain() -> None:
        # Messages are not what we measure; read them so nothing piles up.
        with contextlib.suppress(ConnectionClosedError):
            async for _ in conn:
                pass
        st.ended.set()

    drainer = asyncio.ensure_future(drain())
    await _first(st.done.wait(), stop.wait(), st.ended.wait())
    bound = config.close_timeout + 1.0
    if st.dead is None and st.closed is None and not st.ended.is_set():
        with contextlib.suppress(ConnectionClosedError, asyncio.TimeoutError, OSError):
            await asyncio.wait_for(conn.close(1000), bound)
    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(conn.wait_closed(), bound)
    with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError):
        await asyncio.wait_for(drainer, 1.0)

    if st.done.is_set():  # --count answered heartbeats: success, whatever came after
        return _ping_summary(
            st, out=out, json_mode=json_mode, target=target, started=started, status=EXIT_OK
        )
    st.stats.in_flight = max(0, conn.stats.pings_sent - st.stats.sent)
    if st.dead is not None:
        return _ping_summary(
            st, out=out, json_mode=json_mode, target=target, started=started, status=EXIT_FAILED
        )
    if conn.closed_by == "remote" or st.close_started_by_peer is not None:
        code = conn.close_code if conn.close_code is not None else 1006
        reason = conn.close_reason or ""
        if json_mode:
            out.json(event="closed", code=code, reason=reason)
        else:
            why = f" ({reason})" if reason else ""
            out.line(f"the server closed the connection: code {code}{why}")
        return _ping_summary(
            st, out=out, json_mode=json_mode, target=target, started=started, status=EXIT_FAILED
        )
    return _ping_summary(
        st, out=out, json_mode=json_mode, target=target, started=started, status=EXIT_OK
    )


def _ping_summary(
    st: _PingState, *, out: _Out, json_mode: bool, target: str, started: float, status: int
) -> int:
    if json_mode:
        out.json(**st.stats.as_json())
    else:
        out.line()
        for line in st.stats.text_lines(target, time.monotonic() - started):
            out.line(line)
    return status


# --------------------------------------------------------------------------- demo


_DEMO_SERVER_INTERVAL = 0.5
_DEMO_SERVER_TIMEOUT = 1.0
_DEMO_CLIENT_INTERVAL = 1.0
_DEMO_DOWN_FOR = 1.5
_DEMO_BACKOFF = BackoffPolicy(
    initial=0.25, multiplier=2.0, maximum=2.0, reset_after=60.0, full_jitter=False
)


_DEMO_COLORS = {"server": "green", "alice": "cyan", "bob": "magenta", "carol": "yellow"}


class _DemoFailed(Exception):
    """A step of the demo did not happen in time."""


@dataclass
class _DemoClient:
    name: str
    style: HeartbeatStyle
    connected: asyncio.Event = field(default_factory=asyncio.Event)
    conn: Connection | None = None
    task: asyncio.Task[None] | None = None
    stopping: bool = False
    down_since: float | None = None
    retries: list[float] = field(default_factory=list)
    back_after: float | None = None
    rtts: list[float] = field(default_factory=list)

    @property
    def label(self) -> str:
        return "ping frames" if self.style is HeartbeatStyle.PROTOCOL else '{"type":"ping"}'


def _child_env() -> dict[str, str]:
    """The environment for a child ``python -m heartbeat_asyncio``: our import paths first."""
    import heartbeat_asyncio

    paths = [
        os.path.dirname(os.path.dirname(os.path.abspath(heartbeat_asyncio.__file__))),
        os.path.dirname(os.path.dirname(os.path.abspath(heartbeat_core.__file__))),
    ]
    env = dict(os.environ)
    if env.get("PYTHONPATH"):
        paths.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env["NO_COLOR"] = "1"
    return env


class _Demo:
    """The scripted tour behind ``heartbeat demo``."""

    def __init__(self, out: _Out) -> None:
        self.out = out
        self.loop = asyncio.get_running_loop()
        self.t0 = self.loop.time()
        self.server: Server | None = None
        self.port = 0
        self.names: dict[Connection, str] = {}
        self.carol_conn: Connection | None = None
        self.carol_open = asyncio.Event()
        self.carol_gone = asyncio.Event()
        self.carol_dead_at: float | None = None
        self.carol_released_at: float | None = None
        self.carol_rtts: list[float] = []
        self.proc: asyncio.subprocess.Process | None = None
        self.reader: asyncio.Future[None] | None = None
        self.server_rtts = 0
        self.clients = [
            _DemoClient("alice", HeartbeatStyle.PROTOCOL),
            _DemoClient("bob", HeartbeatStyle.APP),
        ]
        self.server_config = HeartbeatConfig(
            interval=_DEMO_SERVER_INTERVAL,
            timeout=_DEMO_SERVER_TIMEOUT,
            close_timeout=0.5,
            style=HeartbeatStyle.PROTOCOL,
            answer_app_pings=True,
        )

    # ------------------------------------------------------------- output

    def say(self, who: str, text: str, *emphasis: str) -> None:
        """One timestamped line: the speaker in its colour, the text with ``emphasis``."""
        elapsed = self.loop.time() - self.t0
        stamp = self.out.paint(f"{elapsed:5.1f}s", "dim")
        name = self.out.paint(who.ljust(7), _DEMO_COLORS.get(who, "blue"))
        self.out.line(f"{stamp}  {name}{self.out.paint(text, *emphasis)}")

    def stage(self, title: str) -> None:
        self.out.line()
        self.out.line(self.out.paint(f"== {title}", "bold"))

    # ------------------------------------------------------------- server side

    def on_server_event(self, conn: Connection, event: ConnectionEvent) -> None:
        name = self.names.get(conn, _peer(conn.remote_address))
        if isinstance(event, RttSample):
            self.server_rtts += 1
        elif isinstance(event, PeerDead):
            if conn is self.carol_conn:
                self.carol_dead_at = self.loop.time()
            self.say(
                "server",
                f"{name}: heartbeat {event.seq} unanswered for {event.waited * 1000:.0f} ms "
                "-> declared dead, close 1011",
                "red",
                "bold",
            )
        elif isinstance(event, Closed):
            if conn is self.carol_conn:
                self.carol_released_at = self.loop.time()
                self.carol_gone.set()
            reason = f" {event.reason!r}" if event.reason else ""
            self.say("server", f"{name}: closed, code {event.code}{reason}, socket released")

    async def handler(self, conn: Connection) -> None:
        name = conn.path.strip("/") or _peer(conn.remote_address)
        self.names[conn] = name
        if name == "carol" and self.carol_conn is None:
            self.carol_conn = conn
            self.carol_open.set()
        self.say("server", f"accepted {name} ({_peer(conn.remote_address)})")
        await _echo(conn)

    async def listen(self, port: int) -> None:
        deadline = self.loop.time() + 5.0
        while True:
            try:
                self.server = await serve(
                    self.handler,
                    "127.0.0.1",
                    port,
                    config=self.server_config,
                    on_event=self.on_server_event,
                )
            except OSError:
                if port == 0 or self.loop.time() > deadline:
                    raise
                await asyncio.sleep(0.1)
                continue
            self.port = self.server.port
            return

    # ------------------------------------------------------------- clients

    def on_client_event(self, client: _DemoClient, event: ConnectionEvent) -> None:
        if isinstance(event, RttSample):
            client.rtts.append(event.rtt)
            self.say(
                client.name,
                f"{client.label:<15} heartbeat {event.seq:>2}  rtt {event.rtt * 1000:6.2f} ms",
            )

    def on_client_state(self, client: _DemoClient, event: ReconnectEvent) -> None:
        now = self.loop.time()
        if isinstance(event, Connected):
            client.connected.set()
            if client.down_since is not None:
                client.back_after = now - client.down_since
                self.say(
                    client.name,
                    f"reconnected after {client.back_after:.2f} s "
                    f"({len(client.retries)} waits: "
                    + ", ".join(f"{d:g} s" for d in client.retries)
                    + ")",
                    "bold",
                )
        elif isinstance(event, Disconnected):
            client.connected.clear()
            if client.stopping:
                return
            if client.down_since is None:
                client.down_since = now
            if event.error is not None:
                why = _describe_connect_error(event.error)
            else:
                why = f"closed with {event.code}" + (f" {event.reason!r}" if event.reason else "")
            self.say(client.name, f"disconnected: {why}")
        elif isinstance(event, Retrying):
            if client.stopping:
                return
            client.retries.append(event.delay)
            self.say(
                client.name,
                f"retry {event.attempt} in {event.delay:g} s (exponential backoff)",
            )

    async def run_client(self, client: _DemoClient) -> None:
        config = HeartbeatConfig(
            interval=_DEMO_CLIENT_INTERVAL,
            timeout=2.0,
            close_timeout=0.5,
            fixed_rate=True,
            style=client.style,
        )
        uri = f"ws://127.0.0.1:{self.port}/{client.name}"
        stream = connect_forever(
            uri,
            backoff=_DEMO_BACKOFF,
            on_state=lambda event: self.on_client_state(client, event),
            config=config,
            open_timeout=2.0,
            on_event=lambda conn, event: self.on_client_event(client, event),
        )
        try:
            async for conn in stream:
                client.conn = conn
                async for _ in conn:
                    pass
                if client.stopping:
                    break
        finally:
            aclose = getattr(stream, "aclose", None)
            if aclose is not None:
                with contextlib.suppress(Exception):
                    await aclose()

    async def start_carol(self) -> None:
        uri = f"ws://127.0.0.1:{self.port}/carol"
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "heartbeat_asyncio",
            "ping",
            uri,
            "--json",
            "--interval",
            f"{_DEMO_CLIENT_INTERVAL:g}",
            "--timeout",
            "5",
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
            env=_child_env(),
            start_new_session=True,  # the demo alone signals it (not the terminal's Ctrl-C)
        )
        self.say("carol", f"started as process {self.proc.pid}: heartbeat ping {uri}")
        self.reader = asyncio.ensure_future(self.read_carol(self.proc))
        await self.wait(self.carol_open.wait(), 20.0, "carol (a separate process) did not connect")

    async def read_carol(self, proc: asyncio.subprocess.Process) -> None:
        assert proc.stdout is not None
        async for raw in proc.stdout:
            try:
                record = json.loads(raw)
            except ValueError:
                continue
            if record.get("event") == "pong":
                rtt_ms = float(record["rtt_ms"])
                self.carol_rtts.append(rtt_ms / 1000.0)
                self.say(
                    "carol",
                    f"{'ping frames':<15} heartbeat {record['seq']:>2}  rtt {rtt_ms:6.2f} ms"
                    "  (own process: heartbeat ping)",
                )

    def stop_carol(self) -> None:
        proc = self.proc
        if proc is not None and proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()

    async def wait(self, awaitable: Awaitable[Any], seconds: float, what: str) -> None:
        try:
            await asyncio.wait_for(awaitable, seconds)
        except asyncio.TimeoutError:
            raise _DemoFailed(f"{what} within {seconds:g} s") from None

    # ------------------------------------------------------------- the script

    async def run(self) -> int:
        out = self.out
        out.line(out.paint("heartbeat demo", "bold") + ": everything on 127.0.0.1, about 15 s")
        try:
            summary = await self.script()
        except _DemoFailed as exc:
            out.line()
            out.line(out.paint(f"demo failed: {exc}", "red", "bold"))
            return EXIT_FAILED
        finally:
            await self.teardown()
        self.stage("summary")
        for line in summary:
            out.line(f"  {line}")
        return EXIT_OK

    async def script(self) -> list[str]:
        limit = _DEMO_SERVER_INTERVAL + _DEMO_SERVER_TIMEOUT
        self.stage("a server and three clients")
        await self.listen(0)
        self.say(
            "server",
            f"listening on 127.0.0.1:{self.port}; pings a connection idle for "
            f"{_DEMO_SERVER_INTERVAL:g} s, declares it dead {_DEMO_SERVER_TIMEOUT:g} s later",
        )
        await self.start_carol()
        for client in self.clients:
            client.task = asyncio.ensure_future(self.run_client(client))
        for client in self.clients:
            await self.wait(client.connected.wait(), 10.0, f"{client.name} did not connect")

        self.stage("live round-trip times, both heartbeat styles (every second)")
        await asyncio.sleep(4.2)

        self.stage("carol freezes: half-open, its TCP connection stays up but nothing answers")
        assert self.proc is not None
        freeze_at = self.loop.time()
        os.kill(self.proc.pid, signal.SIGSTOP)
        self.say("carol", "frozen (SIGSTOP): no FIN, no RST, just silence", "bold")
        await self.wait(self.carol_gone.wait(), limit + 5.0, "the server did not notice carol")
        dead_at = self.carol_dead_at if self.carol_dead_at is not None else self.loop.time()
        detect = dead_at - freeze_at
        verdict = "within" if detect <= limit + 0.05 else "later than (the machine is busy)"
        self.say(
            "server",
            f"found carol dead {detect:.2f} s after it froze: {verdict} "
            f"interval + timeout = {limit:g} s",
            "green",
        )
        self.stop_carol()
        await asyncio.sleep(1.0)

        self.stage("the server restarts; clients come back with exponential backoff")
        assert self.server is not None
        await self.server.close(1001, "server restarting", timeout=1.0)
        await self.server.wait_closed()
        self.say("server", f"stopped; down for {_DEMO_DOWN_FOR:g} s")
        await asyncio.sleep(_DEMO_DOWN_FOR)
        await self.listen(self.port)
        self.say("server", f"listening again on 127.0.0.1:{self.port}")
        for client in self.clients:
            await self.wait(client.connected.wait(), 15.0, f"{client.name} did not come back")

        self.stage("back to normal")
        await asyncio.sleep(2.6)

        return self.summary(detect, limit)

    def summary(self, detect: float, limit: float) -> list[str]:
        lines = []
        stats = PingStats(rtts=self.carol_rtts + [r for c in self.clients for r in c.rtts])
        if stats.rtts:
            assert stats.min is not None and stats.avg is not None and stats.max is not None
            lines.append(
                f"live RTT: {stats.received} answered heartbeats from 3 clients (ping frames and "
                f'{{"type":"ping"}} messages), min/avg/max {stats.min * 1000:.2f}/'
                f"{stats.avg * 1000:.2f}/{stats.max * 1000:.2f} ms; the server's own "
                f"heartbeats answered: {self.server_rtts}"
            )
        lines.append(
            f"half-open: carol froze; the server declared it dead after {detect:.2f} s "
            f"(interval {_DEMO_SERVER_INTERVAL:g} s + timeout {_DEMO_SERVER_TIMEOUT:g} s = "
            f"{limit:g} s) and released its socket"
        )
        back = ", ".join(
            f"{c.name} back after {c.back_after:.2f} s ({len(c.retries)} waits)"
            for c in self.clients
            if c.back_after is not None
        )
        lines.append(f"restart: server down {_DEMO_DOWN_FOR:g} s; {back}")
        lines.append(
            "try it: heartbeat serve   and, in another terminal,   "
            "heartbeat ping ws://127.0.0.1:8765/"
        )
        return lines

    async def teardown(self) -> None:
        self.stop_carol()
        for client in self.clients:
            client.stopping = True
            if client.conn is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(client.conn.close(1000), 2.0)
        for client in self.clients:
            if client.task is not None:
                try:
                    await asyncio.wait_for(client.task, 2.0)
                except (asyncio.TimeoutError, asyncio.CancelledError, Exception):
                    client.task.cancel()
        if self.server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.server.close(1001, "demo over", timeout=1.0), 3.0)
        if self.proc is not None:
            with contextlib.suppress(asyncio.TimeoutError, ProcessLookupError):
                await asyncio.wait_for(self.proc.wait(), 5.0)


async def _demo_main(args: argparse.Namespace, out: _Out) -> int:
    del args
    if not hasattr(signal, "SIGSTOP"):
        return _error("the demo freezes a client process with SIGSTOP, which needs a POSIX system")
    demo = _Demo(out)
    stop = asyncio.Event()
    got: list[str] = []
    _install_stop(asyncio.get_running_loop(), stop, got)
    task = asyncio.ensure_future(demo.run())
    await _first(asyncio.shield(task), stop.wait())
    if task.done():
        return task.result()
    task.cancel()  # run() tears everything down (the frozen child included) on the way out
    with contextlib.suppress(asyncio.CancelledError):
        await task
    out.line()
    out.line(f"{got[0] if got else 'stop'}: demo interrupted, everything it started is stopped")
    return EXIT_OK


# --------------------------------------------------------------------------- entry point


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``heartbeat`` command; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    level = (
        logging.WARNING
        if args.verbose == 0
        else (logging.INFO if args.verbose == 1 else logging.DEBUG)
    )
    logging.basicConfig(
        level=level, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s"
    )
    out = _Out(sys.stdout, color=_use_color(sys.stdout))
    commands: dict[str, Callable[[argparse.Namespace, _Out], Coroutine[Any, Any, int]]] = {
        "serve": _serve_main,
        "ping": _ping_main,
        "demo": _demo_main,
    }
    try:
        return asyncio.run(commands[args.command](args, out))
    except KeyboardInterrupt:  # a second Ctrl-C, or one before the handlers were installed
        return EXIT_OK
