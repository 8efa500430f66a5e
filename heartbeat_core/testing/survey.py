"""Many simulated connections summed up: what ``heartbeat simulate`` prints.

:func:`survey` runs ``runs`` connections of ``hours`` each under one
:class:`~heartbeat_core.testing.Scenario` (its ``duration`` is ignored), each
with its own seed. Within a run, a connection that ends early (a healthy peer
declared dead, a proxy cut, a close) is counted and replaced by a fresh one at
once, as a reconnecting client would, until the hours are up; then the peer
vanishes, at a random moment of the next heartbeat cycle, and the time until it is
found dead is measured. Stalls can be drawn at
random (a :class:`StallPlan`) on top of the scenario's own faults.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

from heartbeat_core.config import HeartbeatConfig
from heartbeat_core.errors import ConfigError
from heartbeat_core.randomness import RandomSource, default_random
from heartbeat_core.testing.faults import Fault, Side, Stall, StallKind, Vanish
from heartbeat_core.testing.simulator import Ending, Scenario, SimResult, simulate

__all__ = ["StallPlan", "SurveyResult", "detection_bound", "survey"]


@dataclass(frozen=True, slots=True, kw_only=True)
class StallPlan:
    """Stalls of ``side`` lasting ``duration`` seconds, arriving at random with a mean
    gap of ``every`` seconds (a Poisson process, drawn per run)."""

    side: Side
    duration: float
    every: float
    kind: StallKind = StallKind.PROCESS

    def __post_init__(self) -> None:
        if not isinstance(self.side, Side):
            raise ConfigError(f"side must be a Side, got {self.side!r}")
        for name in ("duration", "every"):
            value = getattr(self, name)
            if not (
                isinstance(value, (int, float))
                and not isinstance(value, bool)
                and math.isfinite(value)
                and value > 0
            ):
                raise ConfigError(f"{name} must be a finite number of seconds > 0, got {value!r}")
        if not isinstance(self.kind, StallKind):
            raise ConfigError(f"kind must be a StallKind, got {self.kind!r}")

    def draw(self, rand: RandomSource, until: float) -> tuple[Stall, ...]:
        """The stalls of one run, from 0 to ``until``."""
        stalls: list[Stall] = []
        t = 0.0
        while True:
            t += -self.every * math.log(1.0 - rand())
            if t >= until:
                return tuple(stalls)
            stalls.append(Stall(side=self.side, at=t, duration=self.duration, kind=self.kind))
            t += self.duration


def detection_bound(config: HeartbeatConfig, *, one_way_delay: float = 0.0) -> float:
    """The longest a vanished peer can go undetected by an endpoint running ``config``
    whose own process keeps running: its last bytes may still arrive ``one_way_delay``
    after it vanished, the next heartbeat is due at most ``interval · (1 + jitter)``
    after them, and it is declared dead ``timeout`` later."""
    return one_way_delay + config.interval * (1 + config.jitter) + config.timeout


@dataclass(frozen=True, slots=True, kw_only=True)
class SurveyResult:
    """The sum of a :func:`survey` (or of several, with :meth:`merge`)."""

    runs: int
    #: Hours per run (before the peer vanishes).
    hours: float
    #: Virtual time simulated in all, in hours (connections and detection tails).
    connection_hours: float
    #: Healthy peers declared dead.
    false_positives: int
    #: Runs with at least one false positive.
    runs_with_false_positive: int
    #: Connections the proxy cut for idleness.
    proxy_cuts: int
    #: Connections closed for another reason (e.g. a ping flood).
    closes: int
    #: Connections opened in all (one per run, plus one per early end).
    connections: int
    #: Seconds from the peer vanishing to its verdict, one per run that found it, sorted.
    detections: tuple[float, ...]
    #: Runs whose vanished peer the proxy cut off before a heartbeat found it dead.
    detected_by_proxy: int
    #: Runs whose vanished peer was never found dead (e.g. nobody sends heartbeats).
    undetected: int
    #: Totals of both endpoints over every connection.
    heartbeats: int
    heartbeat_bytes: int
    wakeups: int

    @property
    def safe(self) -> bool:
        """No false positive and no proxy cut."""
        return self.false_positives == 0 and self.proxy_cuts == 0

    def per_hour(self, total: int) -> float:
        """``total`` per connection-hour (0 when nothing was simulated)."""
        return total / self.connection_hours if self.connection_hours else 0.0

    @property
    def false_positive_rate(self) -> float:
        """False positives per connection-hour."""
        return self.per_hour(self.false_positives)

    def detection_quantile(self, q: float) -> float | None:
        """The ``q`` quantile (0..1, nearest rank) of :attr:`detections`; ``None`` if empty."""
        if not (isinstance(q, (int, float)) and 0 <= q <= 1):
            raise ConfigError(f"q must be in [0, 1], got {q!r}")
        d = self.detections
        if not d:
            return None
        return d[min(len(d) - 1, max(0, math.ceil(q * len(d)) - 1))]

    @staticmethod
    def merge(parts: Sequence[SurveyResult]) -> SurveyResult:
        """One result from surveys of disjoint runs of the same scenario (e.g. run in
        several processes with ``first_run``); ``ConfigError`` when ``parts`` is empty or
        their ``hours`` differ."""
        if not parts or any(p.hours != parts[0].hours for p in parts):
            raise ConfigError("merge needs at least one survey, all of the same hours")
        return SurveyResult(
            runs=sum(p.runs for p in parts),
            hours=parts[0].hours,
            connection_hours=sum(p.connection_hours for p in parts),
            false_positives=sum(p.false_positives for p in parts),
            runs_with_false_positive=sum(p.runs_with_false_positive for p in parts),
            proxy_cuts=sum(p.proxy_cuts for p in parts),
            closes=sum(p.closes for p in parts),
            connections=sum(p.connections for p in parts),
            detections=tuple(sorted(d for p in parts for d in p.detections)),
            detected_by_proxy=sum(p.detected_by_proxy for p in parts),
            undetected=sum(p.undetected for p in parts),
            heartbeats=sum(p.heartbeats for p in parts),
            heartbeat_bytes=sum(p.heartbeat_bytes for p in parts),
            wakeups=sum(p.wakeups for p in parts),
        )


def survey(
    scenario: Scenario,
    *,
    runs: int = 100,
    hours: float = 1.0,
    seed: int | str = 0,
    stalls: StallPlan | None = None,
    vanish: Side | None = Side.CLIENT,
    first_run: int = 0,
) -> SurveyResult:
    """Simulate ``runs`` connections of ``hours`` each; see the module's description.

    ``vanish``: the side that disappears at the end of each run (``None``: nobody;
    then no detection is measured). Run ``r`` uses seed ``f"{seed}:{r}"``, for ``r``
    from ``first_run``: a survey split into parts by ``first_run`` and merged with
    :meth:`SurveyResult.merge` gives what one survey of all the runs gives. Raises
    :class:`~heartbeat_core.ConfigError` for bad arguments.
    """
    if not isinstance(scenario, Scenario):
        raise ConfigError(f"scenario must be a Scenario, got {scenario!r}")
    for name, value in (("runs", runs), ("first_run", first_run)):
        if isinstance(value, bool) or not isinstance(value, int) or value < (name == "runs"):
            raise ConfigError(f"{name} must be an int >= {int(name == 'runs')}, got {value!r}")
    if not (
        isinstance(hours, (int, float))
        and not isinstance(hours, bool)
        and math.isfinite(hours)
        and hours > 0
    ):
        raise ConfigError(f"hours must be a finite number > 0, got {hours!r}")
    if stalls is not None and not isinstance(stalls, StallPlan):
        raise ConfigError(f"stalls must be a StallPlan or None, got {stalls!r}")
    if vanish is not None and not isinstance(vanish, Side):
        raise ConfigError(f"vanish must be a Side or None, got {vanish!r}")
    tally = _Tally.of(
        scenario,
        range(first_run, first_run + runs),
        hours=hours,
        seed=seed,
        plan=stalls,
        vanish=vanish,
    )
    return tally.result(runs, hours)


class _Tally:
    """Running totals of a survey."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.false_positives = 0
        self.fp_runs = 0
        self.proxy_cuts = 0
        self.closes = 0
        self.connections = 0
        self.detections: list[float] = []
        self.by_proxy = 0
        self.undetected = 0
        self.heartbeats = 0
        self.bytes = 0
        self.wakeups = 0

    @classmethod
    def of(
        cls,
        scenario: Scenario,
        runs: range,
        *,
        hours: float,
        seed: int | str,
        plan: StallPlan | None,
        vanish: Side | None,
    ) -> _Tally:
        tally = cls()
        horizon = hours * 3600.0
        configs = [c for c in (scenario.client, scenario.server) if c is not None]
        tail = max((detection_bound(c) for c in configs), default=0.0)
        worst_delay = max(
            p.delay + 4 * p.jitter + 8 * p.rto * (p.loss > 0)
            for p in (scenario.link.up, scenario.link.down)
        )
        # The peer vanishes at a random moment of the heartbeat cycle after the hours.
        cycle = max((c.interval * (1 + c.jitter) for c in configs), default=0.0)
        tail = 2 * tail + worst_delay + (plan.duration if plan is not None else 0.0) + 1.0
        for r in runs:
            rand = default_random(f"{seed}:{r}")
            faults: tuple[Fault, ...] = scenario.faults
            gone = horizon + rand() * cycle
            if plan is not None:
                faults += plan.draw(rand, gone + tail)
            end = horizon
            if vanish is not None:
                faults += (Vanish(side=vanish, at=gone),)
                end = gone + tail
            t = 0.0
            had_fp = False
            while t < end:
                run = replace(scenario, faults=faults, duration=end - t)
                res = simulate(run, start=t, random=rand)
                tally.add(res)
                if res.ending is Ending.HORIZON:
                    if vanish is not None:
                        tally.undetected += 1
                    break
                if res.ending is Ending.PEER_DEAD and not res.false_positive:
                    assert res.detection is not None
                    tally.detections.append(res.detection)
                    break
                if vanish is not None and res.end >= gone:
                    # It ended after the peer vanished, but not by a verdict on it: the
                    # proxy cut it off first (or, rarely, a close came first).
                    cut = res.ending is Ending.PROXY_CUT
                    tally.by_proxy += cut
                    tally.undetected += not cut
                    break
                if res.false_positive:
                    tally.false_positives += 1
                    had_fp = True
                elif res.ending is Ending.PROXY_CUT:
                    tally.proxy_cuts += 1
                else:
                    tally.closes += 1
                t = res.end
            tally.fp_runs += had_fp
        return tally

    def add(self, res: SimResult) -> None:
        self.connections += 1
        self.seconds += res.end - res.start
        for rep in (res.client, res.server):
            self.heartbeats += rep.heartbeats
            self.bytes += rep.heartbeat_bytes
            self.wakeups += rep.wakeups

    def result(self, runs: int, hours: float) -> SurveyResult:
        return SurveyResult(
            runs=runs,
            hours=hours,
            connection_hours=self.seconds / 3600.0,
            false_positives=self.false_positives,
            runs_with_false_positive=self.fp_runs,
            proxy_cuts=self.proxy_cuts,
            closes=self.closes,
            connections=self.connections,
            detections=tuple(sorted(self.detections)),
            detected_by_proxy=self.by_proxy,
            undetected=self.undetected,
            heartbeats=self.heartbeats,
            heartbeat_bytes=self.bytes,
            wakeups=self.wakeups,
        )
