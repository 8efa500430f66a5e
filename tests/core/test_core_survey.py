"""heartbeat_core.testing.survey: many runs, reconnections, detection times, totals."""

from __future__ import annotations

import dataclasses
import itertools
import math

import pytest

from heartbeat_core import ConfigError, HeartbeatConfig, default_random
from heartbeat_core.testing import (
    Link,
    Proxy,
    Scenario,
    Side,
    StallKind,
    StallPlan,
    SurveyResult,
    assert_no_false_positive,
    assert_no_proxy_cut,
    detection_bound,
    survey,
)

CFG = HeartbeatConfig(interval=20, timeout=10)
SERVER_ONLY = Scenario(client=None, server=CFG, link=Link.symmetric(rtt=0.1, jitter=0.05))


def test_a_safe_setting_finds_every_vanished_peer_within_the_bound() -> None:
    res = survey(SERVER_ONLY, runs=40, hours=0.5, seed=1)
    assert res.safe and res.false_positives == res.proxy_cuts == res.closes == 0
    assert_no_false_positive(res)
    assert_no_proxy_cut(res)
    assert res.connections == 40 and len(res.detections) == 40 and res.undetected == 0
    bound = detection_bound(CFG, one_way_delay=0.075)
    # At least the timeout, less the ping's way out when the peer vanished behind it.
    assert max(res.detections) <= bound and min(res.detections) >= CFG.timeout - 0.075
    assert list(res.detections) == sorted(res.detections)
    # 40 half-hour connections, then up to a heartbeat cycle until the peer vanishes,
    # then the detection (under the bound).
    assert 20.0 < res.connection_hours < 20.0 + 40 * (20 + bound) / 3600
    # One heartbeat per 20.1 s, each a 3-4 byte server ping and a 7-8 byte client pong.
    assert res.per_hour(res.heartbeats) == pytest.approx(3600 / 20.1, rel=0.01)
    assert 10 * 179 < res.per_hour(res.heartbeat_bytes) < 13 * 180
    # A wake-up per heartbeat, and at the end one for the verdict (plus an early one at
    # most: rule early-timer, wake_at before a deadline).
    assert res.heartbeats < res.wakeups <= res.heartbeats + 2 * 40
    assert res.false_positive_rate == 0.0


def test_quantiles_by_nearest_rank() -> None:
    res = dataclasses.replace(
        survey(SERVER_ONLY, runs=1, hours=0.01), detections=(1.0, 2.0, 3.0, 4.0)
    )
    assert [res.detection_quantile(q) for q in (0, 0.25, 0.5, 0.9, 1)] == [1.0, 1.0, 2.0, 4.0, 4.0]
    assert dataclasses.replace(res, detections=()).detection_quantile(0.5) is None
    with pytest.raises(ConfigError, match=r"q must be in \[0, 1\]"):
        res.detection_quantile(1.5)


def test_false_positives_are_counted_and_the_connection_replaced() -> None:
    # The answering client freezes for 15 s every 2 minutes on average: a 10 s timeout
    # cannot wait for it.
    plan = StallPlan(side=Side.CLIENT, duration=15.0, every=120.0)
    res = survey(SERVER_ONLY, runs=5, hours=1.0, stalls=plan, seed=2)
    assert not res.safe and res.false_positives > 5
    assert res.runs_with_false_positive == 5
    assert res.connections == 5 + res.false_positives
    assert res.false_positive_rate == pytest.approx(res.false_positives / res.connection_hours)
    with pytest.raises(AssertionError, match=r"healthy peers declared dead in 5 of 5 runs"):
        assert_no_false_positive(res)


def test_proxy_cuts_are_counted() -> None:
    sc = dataclasses.replace(
        SERVER_ONLY, server=HeartbeatConfig(interval=70, timeout=10), proxy=Proxy(idle_limit=60)
    )
    res = survey(sc, runs=2, hours=0.5)
    # Every 60 s for half an hour, and on until the peer vanishes (within 70 s of the
    # end): 30 or 31 cuts per run, then one that finds the peer gone.
    assert 2 * 30 <= res.proxy_cuts <= 2 * 31 and not res.safe
    assert res.connections == res.proxy_cuts + 2
    with pytest.raises(AssertionError, match=f"the proxy cut {res.proxy_cuts} of"):
        assert_no_proxy_cut(res)
    # Past the end of the hours the proxy cuts the vanished peer off first: counted apart.
    assert res.detected_by_proxy == 2 and res.detections == ()


def test_nobody_left_to_notice() -> None:
    # The server vanishes, and the client sends no heartbeats: never found.
    assert survey(SERVER_ONLY, runs=3, hours=0.1, vanish=Side.SERVER).undetected == 3
    quiet = survey(SERVER_ONLY, runs=3, hours=0.1, vanish=None)
    assert quiet.undetected == 0 and quiet.detections == ()
    assert quiet.connection_hours == pytest.approx(0.3)


def test_a_close_is_counted_and_ends_at_the_horizon() -> None:
    strict = HeartbeatConfig(
        interval=60, timeout=10, peer_ping_min_interval=5, peer_ping_max_strikes=0
    )
    sc = Scenario(client=HeartbeatConfig(interval=1, timeout=0.5), server=strict)
    res = survey(sc, runs=1, hours=0.01, vanish=None)
    assert res.closes >= 10 and res.connections == res.closes


def test_a_split_survey_adds_up_to_the_whole() -> None:
    plan = StallPlan(side=Side.CLIENT, duration=3.0, every=300.0, kind=StallKind.TIMERS)
    whole = survey(SERVER_ONLY, runs=6, hours=0.2, stalls=plan, seed="s")
    parts = [
        survey(SERVER_ONLY, runs=n, hours=0.2, stalls=plan, seed="s", first_run=first)
        for first, n in ((0, 2), (2, 3), (5, 1))
    ]
    merged = SurveyResult.merge(parts)
    assert math.isclose(merged.connection_hours, whole.connection_hours)
    assert dataclasses.replace(merged, connection_hours=whole.connection_hours) == whole
    with pytest.raises(ConfigError, match="at least one survey"):
        SurveyResult.merge([])
    with pytest.raises(ConfigError, match="same hours"):
        SurveyResult.merge([whole, survey(SERVER_ONLY, runs=1, hours=0.1)])


def test_stall_plans_arrive_as_a_poisson_process() -> None:
    plan = StallPlan(side=Side.SERVER, duration=2.0, every=60.0)
    stalls = plan.draw(default_random(1), 360000.0)
    assert all(s.side is Side.SERVER and s.duration == 2.0 for s in stalls)
    gaps = [b.at - a.until for a, b in itertools.pairwise(stalls)]
    assert min(gaps) > 0
    assert sum(gaps) / len(gaps) == pytest.approx(60.0, rel=0.05)


def test_the_detection_bound_adds_up() -> None:
    cfg = HeartbeatConfig(interval=20, timeout=5, jitter=0.1)
    assert detection_bound(cfg) == pytest.approx(27.0)
    assert detection_bound(cfg, one_way_delay=0.5) == pytest.approx(27.5)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: survey("x"), "scenario must be a Scenario"),  # type: ignore[arg-type]
        (lambda: survey(SERVER_ONLY, runs=0), "runs must be an int >= 1"),
        (lambda: survey(SERVER_ONLY, runs=True), "runs must be an int >= 1"),
        (lambda: survey(SERVER_ONLY, first_run=-1), "first_run must be an int >= 0"),
        (lambda: survey(SERVER_ONLY, hours=0), "hours must be a finite number > 0"),
        (lambda: survey(SERVER_ONLY, stalls=3.0), "stalls must be a StallPlan or None"),  # type: ignore[arg-type]
        (lambda: survey(SERVER_ONLY, vanish="client"), "vanish must be a Side or None"),  # type: ignore[arg-type]
        (lambda: StallPlan(side="client", duration=1, every=1), "side must be a Side"),  # type: ignore[arg-type]
        (lambda: StallPlan(side=Side.CLIENT, duration=0, every=1), "duration must be"),
        (lambda: StallPlan(side=Side.CLIENT, duration=1, every=1, kind="x"), "kind must be"),  # type: ignore[arg-type]
    ],
)
def test_bad_arguments(call: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        call()  # type: ignore[operator]
