"""What ``heartbeat simulate`` prints: the figures of a survey as text or one JSON
object, and what to change when the settings are unsafe."""

from __future__ import annotations

import argparse
import math
from dataclasses import asdict

from heartbeat_cli.output import EXIT_FAILED, EXIT_OK, Output
from heartbeat_core.testing import Scenario, Side, StallPlan, SurveyResult, detection_bound

__all__ = ["report", "suggestions"]


def suggestions(scenario: Scenario, stalls: StallPlan | None, result: SurveyResult) -> list[str]:
    """What to change when ``result`` is unsafe, as sentences."""
    config = scenario.server or scenario.client
    assert config is not None
    out: list[str] = []
    if result.proxy_cuts and scenario.proxy is not None:
        limit = scenario.proxy.idle_limit
        below = limit / 2 / (1 + config.jitter)
        out.append(
            f"proxy cuts: keep --interval below {below:.3g} s (half the {limit:g} s idle "
            "limit, less the jitter), so that a heartbeat late by a whole interval still "
            "reaches the proxy in time"
        )
    if result.false_positives:
        up, down = scenario.link.up, scenario.link.down
        rtt = up.delay + down.delay + 2 * (up.jitter + down.jitter)
        quiet = rtt + (4 * up.rto if up.loss or down.loss else 0.0)
        if stalls is not None:
            quiet += stalls.duration
        need = math.ceil(quiet + 1.0)
        out.append(
            f"false positives: the peer can be silent for about {quiet:.3g} s (stall, RTT "
            f"and retransmissions); use --timeout {need} or more"
            + (f" and --interval {need} or more" if need > config.interval else "")
        )
    return out


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} s"


def report(
    args: argparse.Namespace,
    *,
    scenario: Scenario,
    stalls: StallPlan | None,
    vanish: Side | None,
    result: SurveyResult,
    out: Output,
) -> int:
    """Print ``result`` on ``out`` (text, or JSON with ``--json``); the exit status."""
    config = scenario.server or scenario.client
    assert config is not None
    advice = [] if result.safe else suggestions(scenario, stalls, result)
    bound = detection_bound(config, one_way_delay=scenario.link.up.delay + scenario.link.up.jitter)
    quantiles = {q: result.detection_quantile(q) for q in (0.5, 0.9, 0.99, 1.0)}
    if args.json:
        out.json(
            safe=result.safe,
            runs=result.runs,
            hours=result.hours,
            connection_hours=round(result.connection_hours, 3),
            false_positives=result.false_positives,
            false_positives_per_1000_hours=round(1000 * result.false_positive_rate, 3),
            runs_with_false_positive=result.runs_with_false_positive,
            proxy_cuts=result.proxy_cuts,
            closes=result.closes,
            vanished=None if vanish is None else vanish.value,
            detected=len(result.detections),
            detected_by_proxy=result.detected_by_proxy,
            undetected=result.undetected,
            detection_s={
                "median": quantiles[0.5],
                "p90": quantiles[0.9],
                "p99": quantiles[0.99],
                "max": quantiles[1.0],
                "bound": bound,
            },
            heartbeats_per_hour=round(result.per_hour(result.heartbeats), 3),
            heartbeat_bytes_per_hour=round(result.per_hour(result.heartbeat_bytes), 3),
            wakeups_per_hour=round(result.per_hour(result.wakeups), 3),
            config=asdict(config)
            | {
                "style": config.style.value,
                "liveness": config.liveness.value,
                "payload_prefix": config.payload_prefix.decode("latin-1"),
            },
            suggestions=advice,
            seed=args.seed,
        )
        return EXIT_OK if result.safe else EXIT_FAILED
    who = {"server": "the server", "client": "the client", "both": "both ends"}[args.heartbeats]
    out.line(
        f"{result.runs} runs x {result.hours:g} h ({result.connection_hours:,.0f} "
        f"connection-hours simulated), seed {args.seed}"
    )
    out.line(
        f"  interval {config.interval:g} s, timeout {config.timeout:g} s, {config.style.value} "
        f"heartbeats from {who}; RTT {args.rtt * 1000:g} ms ± {args.rtt_jitter * 1000:g} ms, "
        f"loss {args.loss * 100:g} %"
        + (f", proxy idle limit {args.proxy_idle:g} s" if args.proxy_idle else "")
        + (
            f", {args.stall_side} stalls of {args.stall:g} s every {args.stall_every:g} s"
            if args.stall
            else ""
        )
    )
    out.line(
        f"false positives: {result.false_positives} "
        f"({1000 * result.false_positive_rate:.3g} per 1,000 connection-hours; "
        f"{result.runs_with_false_positive} of {result.runs} runs)"
    )
    out.line(f"proxy cuts: {result.proxy_cuts}")
    if vanish is not None:
        out.line(
            f"vanished {vanish.value} found dead in {len(result.detections)} of {result.runs} "
            f"runs: median {_seconds(quantiles[0.5])}, p90 {_seconds(quantiles[0.9])}, "
            f"p99 {_seconds(quantiles[0.99])}, max {_seconds(quantiles[1.0])} "
            f"(bound {bound:.1f} s)"
            + (
                f"; cut by the proxy first in {result.detected_by_proxy}"
                if result.detected_by_proxy
                else ""
            )
            + (f"; never found in {result.undetected}" if result.undetected else "")
        )
    out.line(
        f"heartbeat traffic per connection-hour: {result.per_hour(result.heartbeats):.0f} "
        f"heartbeats, {result.per_hour(result.heartbeat_bytes):,.0f} bytes, "
        f"{result.per_hour(result.wakeups):.0f} timer wake-ups"
    )
    if result.safe:
        out.line(out.paint("safe", "green", "bold"))
        return EXIT_OK
    out.line(out.paint("UNSAFE", "red", "bold"))
    for line in advice:
        out.line(f"  suggestion: {line}")
    return EXIT_FAILED
