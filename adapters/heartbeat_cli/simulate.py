"""``heartbeat simulate``: will these heartbeat settings survive this network?

Runs :func:`heartbeat_core.testing.survey` (the real heartbeat rules on a virtual
clock; no sockets, no waiting) and prints the false positives, proxy cuts, how
long a vanished peer takes to be found dead, and the heartbeat traffic per
connection-hour; ``--json`` prints one object instead. Large surveys are split
over ``--workers`` processes (same seed, same figures).

Exit codes: 0 safe (no false positive, no proxy cut); 1 unsafe; 2 usage error
(one line on stderr).
"""

from __future__ import annotations

import argparse
import math
import os
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any, NoReturn

from heartbeat_cli.output import EXIT_ERROR, PROG, Output, error, positive_int
from heartbeat_cli.simulate_report import report
from heartbeat_core import ConfigError, HeartbeatConfig, HeartbeatStyle
from heartbeat_core.testing import (
    Distribution,
    Link,
    Proxy,
    Scenario,
    Side,
    StallKind,
    StallPlan,
    SurveyResult,
    survey,
)

__all__ = ["add_parser", "parse_duration", "parse_fraction", "run_simulate", "run_survey"]

_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0}


def parse_duration(text: str) -> float:
    """``"80ms"``, ``"3s"``, ``"10m"``, ``"1h"`` or a bare number of seconds -> seconds
    (>= 0); :class:`argparse.ArgumentTypeError` otherwise."""
    cleaned = text.strip().lower()
    digits = cleaned.rstrip("abcdefghijklmnopqrstuvwxyz")
    unit = cleaned[len(digits) :].strip() or "s"
    try:
        value = float(digits) * _UNITS[unit]
    except (ValueError, KeyError):
        value = math.nan
    if not (math.isfinite(value) and value >= 0):
        raise argparse.ArgumentTypeError(
            f"expected a duration such as 80ms, 3s, 10m or 1h, got {text!r}"
        )
    return value


def _positive_duration(text: str) -> float:
    value = parse_duration(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a duration > 0, got {text!r}")
    return value


def parse_fraction(text: str) -> float:
    """``"2%"`` or ``"0.02"`` -> 0.02, in [0, 1); :class:`argparse.ArgumentTypeError`
    otherwise."""
    cleaned = text.strip()
    try:
        value = float(cleaned[:-1]) / 100 if cleaned.endswith("%") else float(cleaned)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and 0 <= value < 1):
        raise argparse.ArgumentTypeError(
            f"expected a fraction such as 2% or 0.02 (below 100 %), got {text!r}"
        )
    return value


def _hours(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and 0 < value <= 24 * 365):
        raise argparse.ArgumentTypeError(f"expected a number of hours > 0, got {text!r}")
    return value


_EPILOG = """\
durations: 80ms, 3s, 10m, 1h, or a bare number of seconds; loss: 2% or 0.02.

Each run is a connection that lives --hours (replaced at once when it ends early),
then the peer vanishes and the time until it is found dead is measured. Stalls
arrive at random, --stall-every apart on average. Nothing touches the network.

examples:
  heartbeat simulate --interval 20 --timeout 10 --rtt 80ms --rtt-jitter 40ms --loss 2% \\
      --proxy-idle 60 --stall 3s --hours 24 --runs 1000
  heartbeat simulate --interval 55 --proxy-idle 60 --stall 10s --stall-side server --json

exit codes: 0 safe (no healthy peer declared dead, no proxy cut); 1 unsafe;
2 usage error.
"""


def _one_line_error(message: str) -> NoReturn:
    error(f"simulate: {message} (see {PROG} simulate --help)")
    raise SystemExit(EXIT_ERROR)


def add_parser(sub: Any) -> argparse.ArgumentParser:
    """Add ``simulate`` to the ``heartbeat`` command's subparsers."""
    d = HeartbeatConfig()
    p: argparse.ArgumentParser = sub.add_parser(
        "simulate",
        help="simulate heartbeat settings against a network and its faults (no sockets)",
        description="Simulate many connections under the given heartbeat settings and "
        "network conditions, with heartbeat-core's own rules on a virtual clock, and say "
        "whether the settings are safe.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    # Every mistake in a simulate command line is one line on stderr, unknown options
    # included (argparse leaves those to the top-level parser, which prints its usage).
    p.error = _one_line_error  # type: ignore[method-assign]
    known = p.parse_known_args

    def strict(
        args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        parsed, extras = known(args, namespace)
        if extras:
            _one_line_error(f"unrecognized arguments: {' '.join(extras)}")
        return parsed, extras

    p.parse_known_args = strict  # type: ignore[method-assign,assignment]
    a = p.add_argument
    a(
        "--interval",
        type=_positive_duration,
        default=d.interval,
        help="heartbeat this long after the last sign of life (default: %(default)g s)",
    )
    a(
        "--timeout",
        type=_positive_duration,
        default=d.timeout,
        help="declare the peer dead when a heartbeat is unanswered this long "
        "(default: %(default)g s)",
    )
    a(
        "--jitter",
        type=float,
        default=0.0,
        help="spread each wait by up to ±JITTER·interval, 0-0.5 (default: %(default)g)",
    )
    a(
        "--mode",
        choices=("protocol", "app"),
        default="protocol",
        help='ping frames, or {"type":"ping"} messages (default: %(default)s)',
    )
    a(
        "--heartbeats",
        choices=("server", "client", "both"),
        default="server",
        help="which end sends heartbeats; the other only answers, as a browser does "
        "(default: %(default)s)",
    )
    a("--rtt", type=parse_duration, default=0.0, help="round-trip time (default: 0)")
    a(
        "--rtt-jitter",
        type=parse_duration,
        default=0.0,
        help="spread of the round-trip time (default: 0)",
    )
    a(
        "--distribution",
        choices=[x.value for x in Distribution],
        default="uniform",
        help="how delays spread around the RTT (default: %(default)s)",
    )
    a(
        "--loss",
        type=parse_fraction,
        default=0.0,
        help="segment loss; TCP retransmits after 200 ms, doubling (default: 0)",
    )
    a(
        "--proxy-idle",
        type=_positive_duration,
        default=None,
        metavar="SECONDS",
        help="a proxy that cuts connections idle this long (default: none)",
    )
    a(
        "--stall",
        type=_positive_duration,
        default=None,
        metavar="DURATION",
        help="stalls of this length (frozen process, blocked loop) (default: none)",
    )
    a(
        "--stall-every",
        type=_positive_duration,
        default=600.0,
        metavar="DURATION",
        help="mean time between stalls (default: 10m)",
    )
    a(
        "--stall-side",
        choices=("client", "server"),
        default="client",
        help="the end that stalls (default: %(default)s)",
    )
    a(
        "--stall-kind",
        choices=[k.value for k in StallKind],
        default="process",
        help="process: nothing runs; timers: only timers wait (a background tab) "
        "(default: %(default)s)",
    )
    a(
        "--vanish",
        choices=("client", "server", "none"),
        default=None,
        help="the end that vanishes after --hours (default: the one that only answers; "
        "the client when both send heartbeats)",
    )
    a("--hours", type=_hours, default=1.0, help="hours per run (default: %(default)g)")
    a("--runs", type=positive_int, default=100, help="runs (default: %(default)s)")
    a("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    a(
        "--workers",
        type=positive_int,
        default=None,
        help="processes to split the runs over (default: the number of CPUs, at most 8)",
    )
    a("--json", action="store_true", help="print one JSON object")
    return p


def build(args: argparse.Namespace) -> tuple[Scenario, StallPlan | None, Side | None]:
    """The survey's scenario, stall plan and vanishing side from the parsed arguments;
    :class:`ConfigError` for settings the core refuses."""
    config = HeartbeatConfig(
        interval=args.interval,
        timeout=args.timeout,
        jitter=args.jitter,
        style=HeartbeatStyle(args.mode),
    )
    link = Link.symmetric(
        rtt=args.rtt,
        jitter=args.rtt_jitter,
        distribution=Distribution(args.distribution),
        loss=args.loss,
    )
    who = args.heartbeats
    scenario = Scenario(
        client=config if who in ("client", "both") else None,
        server=config if who in ("server", "both") else None,
        link=link,
        proxy=None if args.proxy_idle is None else Proxy(idle_limit=args.proxy_idle),
    )
    stalls = None
    if args.stall is not None:
        stalls = StallPlan(
            side=Side(args.stall_side),
            duration=args.stall,
            every=args.stall_every,
            kind=StallKind(args.stall_kind),
        )
    vanish_name = args.vanish or ("server" if who == "client" else "client")
    vanish = None if vanish_name == "none" else Side(vanish_name)
    return scenario, stalls, vanish


def _part(
    job: tuple[Scenario, int, int, float, int, StallPlan | None, Side | None],
) -> SurveyResult:
    scenario, first, runs, hours, seed, stalls, vanish = job
    return survey(
        scenario, runs=runs, hours=hours, seed=seed, stalls=stalls, vanish=vanish, first_run=first
    )


def run_survey(
    scenario: Scenario,
    *,
    runs: int,
    hours: float,
    seed: int,
    stalls: StallPlan | None,
    vanish: Side | None = Side.CLIENT,
    workers: int = 1,
) -> SurveyResult:
    """:func:`~heartbeat_core.testing.survey`, split over ``workers`` processes when that
    pays (the result is the same as one process's)."""
    workers = max(1, min(workers, runs, int(runs * hours // 200) or 1))
    if workers == 1:
        return _part((scenario, 0, runs, hours, seed, stalls, vanish))
    bounds = [runs * k // workers for k in range(workers + 1)]
    jobs = [
        (scenario, bounds[k], bounds[k + 1] - bounds[k], hours, seed, stalls, vanish)
        for k in range(workers)
    ]
    with ProcessPoolExecutor(max_workers=workers) as pool:
        return SurveyResult.merge(list(pool.map(_part, jobs)))


async def run_simulate(args: argparse.Namespace, out: Output) -> int:
    """The ``simulate`` command (a coroutine like the others; it never awaits)."""
    try:
        scenario, stalls, vanish = build(args)
    except ConfigError as exc:
        return error(f"simulate: {exc}")
    workers = args.workers or min(8, os.cpu_count() or 1)
    result = run_survey(
        scenario,
        runs=args.runs,
        hours=args.hours,
        seed=args.seed,
        stalls=stalls,
        vanish=vanish,
        workers=workers,
    )
    return report(args, scenario=scenario, stalls=stalls, vanish=vanish, result=result, out=out)
