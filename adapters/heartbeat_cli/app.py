"""The ``heartbeat`` command: ``serve``, ``ping`` and ``demo`` (argument parsing, entry point).

``heartbeat serve`` runs an echo server whose every connection is supervised
by the core's heartbeat rules; ``heartbeat ping URL`` is ``ping(8)`` for
WebSocket endpoints; ``heartbeat demo`` shows both, with a frozen client and a
server restart, in about twelve seconds on loopback.

Exit codes: 0 success; 1 the peer was declared dead or closed the connection
first (``ping``), or a step of the demo failed; 2 usage or connection errors.

Each subcommand lives in its own module (:mod:`heartbeat_cli.serve`,
:mod:`heartbeat_cli.ping`, :mod:`heartbeat_cli.demo`) and writes through
:mod:`heartbeat_cli.output`; this module parses the arguments and runs one of them.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import math
import sys
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

import heartbeat_core
from heartbeat_cli.demo import run_demo
from heartbeat_cli.loops import LoopFactory, LoopUnavailable, loop_factory, run
from heartbeat_cli.operators import DEFAULT_PROBE_INTERVAL
from heartbeat_cli.output import EXIT_OK, PROG, Output, error, positive_int, use_color
from heartbeat_cli.ping import run_ping
from heartbeat_cli.serve import run_serve
from heartbeat_cli.simulate import add_parser as add_simulate_parser
from heartbeat_cli.simulate import run_simulate
from heartbeat_cli.sink import LineSink, SinkHandler
from heartbeat_cli.workers import add_process_arguments
from heartbeat_core import HeartbeatConfig

__all__ = ["build_parser", "main", "parse_size"]


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

exit codes: 0 ok; 1 the peer was declared dead, closed the connection first or broke
the protocol; 2 usage or connection error.
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
--no-dashboard leaves both out. Prometheus metrics are at http://HOST:PORT/metrics
(--no-metrics leaves them out). Query strings never reach the log unless --log-query.
--rtt-log adds a line for every answered heartbeat (rtt): one per connection per
interval (at 10,000 connections, a third of the server's CPU).
"""

_PING_EPILOG = """\
The first heartbeat goes out as soon as the connection opens, then one every
--interval. One heartbeat is outstanding at a time: when the previous one is still
unanswered as the next falls due, the next waits. A heartbeat unanswered for --timeout
declares the peer dead. The summary counts every heartbeat sent; one still within its
timeout at exit is shown "in flight", not lost.

examples:
  heartbeat ping ws://127.0.0.1:8765/
  heartbeat ping wss://example.org/socket --count 5 --interval 0.5
  heartbeat ping ws://127.0.0.1:8765/ --mode app --json

exit codes: 0 every heartbeat that had its full timeout was answered (count reached,
or interrupted); 1 the peer was declared dead, closed the connection first or broke
the protocol (the line before the summary says which); 2 usage or connection error
(refused, bad URL, TLS failure, HTTP status).
"""


def build_parser() -> argparse.ArgumentParser:
    """The ``heartbeat`` argument parser (usage errors exit with status 2)."""
    parser = argparse.ArgumentParser(
        prog=PROG,
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
        "--probe-interval",
        type=_non_negative_seconds,
        default=DEFAULT_PROBE_INTERVAL,
        metavar="SECONDS",
        help="send every connection a heartbeat at least this often, even a busy one, to "
        "measure its RTT; measurement only, it never declares a peer dead sooner "
        "(default: %(default)g s; 0 turns probes off)",
    )
    s.add_argument(
        "--no-metrics",
        action="store_true",
        help="do not serve Prometheus metrics at /metrics (they need the metrics extra: "
        "pip install 'heartbeat-core[metrics]')",
    )
    s.add_argument(
        "--rtt-log",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="log a line for every answered heartbeat (rtt): one per connection per "
        "interval, at 10,000 connections a third of the server's CPU (default: off; opens, "
        "closes and dead peers are always logged, and the dashboard and /metrics see every "
        "RTT either way)",
    )
    s.add_argument(
        "--log-query",
        action="store_true",
        help="show request targets' query strings in log lines and events (default: "
        "hidden, they often carry tokens)",
    )
    s.add_argument(
        "--no-dashboard",
        action="store_true",
        help="do not serve the live dashboard (/), the JavaScript client "
        "(/heartbeat-client.js) and the dashboard's feed (/_dashboard)",
    )
    s.add_argument(
        "--dashboard-host",
        action="append",
        default=[],
        metavar="NAME",
        help="a host name the dashboard answers to, besides IP addresses and localhost "
        "(repeatable)",
    )
    s.add_argument(
        "--dashboard-origin",
        action="append",
        default=[],
        metavar="ORIGIN",
        help="a web origin (e.g. https://ops.example.org) whose pages may read the "
        "dashboard's feed, besides the dashboard itself (repeatable)",
    )
    add_process_arguments(s)  # --workers, --loop
    s.add_argument(
        "--dashboard-viewers",
        type=positive_int,
        default=10,
        metavar="N",
        help="the most dashboard pages watching at once (default: %(default)s)",
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
        type=positive_int,
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
    p.add_argument(
        "-H",
        "--header",
        action="append",
        metavar="'NAME: VALUE'",
        help="add a header to the upgrade request (repeatable), e.g. -H 'Authorization: Bearer x'",
    )
    p.add_argument(
        "--subprotocol",
        action="append",
        metavar="NAME",
        help="offer this subprotocol (Sec-WebSocket-Protocol; repeatable)",
    )

    sub.add_parser(
        "demo",
        help="a 12-second tour on loopback: live RTT, a frozen client, a server restart",
        description="Runs a server and a few clients on 127.0.0.1 in both heartbeat "
        "styles, freezes one client (half-open) and restarts the server. Needs nothing "
        "else; ends by itself in about 12 seconds.",
    )
    add_simulate_parser(sub)
    return parser


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
    # Log records are written by a thread of their own: a stalled stderr never blocks the loop.
    log_sink = LineSink(sys.stderr, notice=_dropped_records)
    handler = SinkHandler(log_sink)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=level, handlers=[handler])
    out = Output(sys.stdout, color=use_color(sys.stdout))
    # One module per command; what they print goes through heartbeat_cli.output.
    commands: dict[str, Callable[[argparse.Namespace, Output], Coroutine[Any, Any, int]]] = {
        "serve": run_serve,
        "ping": run_ping,
        "demo": run_demo,
        "simulate": run_simulate,
    }
    factory: LoopFactory = asyncio.new_event_loop
    if args.command == "serve":
        try:
            args.loop_name, factory = loop_factory(args.loop)
        except LoopUnavailable as exc:
            return error(str(exc))
        args.argv = list(sys.argv[1:] if argv is None else argv)
    try:
        return run(commands[args.command](args, out), factory)
    except KeyboardInterrupt:  # a second Ctrl-C, or one before the handlers were installed
        return EXIT_OK
    finally:
        log_sink.close()


def _dropped_records(count: int) -> str:
    return f"WARNING {PROG}: {count} log records dropped: stderr was not read fast enough"
