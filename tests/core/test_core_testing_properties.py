"""HeartbeatConfig.findings() and the simulator agree; the kit's hypothesis strategies
draw what they promise.

findings() flags a proxy limit when twice the longest wait before a heartbeat
(interval · (1 + jitter)) reaches it: no room for one heartbeat that is late by a
whole wait. The matching simulation is that very case: the server heartbeats (the
client only answers, as a browser does), its jitter draws the longest wait (a
random source pinned to the top of its range), and it freezes from the moment its
first heartbeat may go out (its ``wake_at``) for the longest wait, behind a proxy
with that limit, on a link whose round trip is well inside the timeout. Then:

* a configuration findings() calls safe survives: no proxy cut, no false positive;
* for every limit, a cut happens exactly when findings() flags that limit.

(The limit itself is not a well-defined case: a float rounding decides there, so
examples within a billionth of it are left out.)
"""

from __future__ import annotations

import math

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from heartbeat_core import PROXY_IDLE_LIMITS, ConnectionOpened, HeartbeatConfig, HeartbeatState
from heartbeat_core.testing import (
    Ending,
    Link,
    Proxy,
    Scenario,
    Side,
    Stall,
    Vanish,
    assert_detected_within,
    assert_no_false_positive,
    assert_no_proxy_cut,
    detection_bound,
    simulate,
)
from heartbeat_core.testing.strategies import (
    fault_schedules,
    heartbeat_configs,
    links,
    paths,
    proxies,
    scenarios,
    stalls,
)

TOP = math.nextafter(1.0, 0.0)  # the largest float a random source may return


def pinned() -> float:
    return TOP


def matching_run(config: HeartbeatConfig, limit: float) -> Scenario:
    probe = HeartbeatState(config, random=pinned)
    probe.handle(ConnectionOpened(now=0.0))
    due = probe.wake_at  # (rule early-timer: up to timer_slack before its deadline)
    assert due is not None
    longest = config.interval * (1 + config.jitter)
    rtt = min(config.timeout / 4, 0.1)
    return Scenario(
        client=None,
        server=config,
        link=Link.symmetric(rtt=rtt),
        proxy=Proxy(idle_limit=limit),
        faults=(Stall(side=Side.SERVER, at=due, duration=longest),),
        duration=3 * longest + config.timeout,
    )


def _flags(config: HeartbeatConfig, name: str) -> bool:
    return any(name in finding for finding in config.findings())


@settings(max_examples=300, deadline=None)
@given(heartbeat_configs(min_interval=1.0, max_interval=200.0, max_timeout=200.0))
def test_findings_and_the_simulation_agree_on_every_proxy_limit(config: HeartbeatConfig) -> None:
    longest = config.interval * (1 + config.jitter)
    for _, limit in PROXY_IDLE_LIMITS:
        assume(abs(2 * longest - limit) > 1e-9 * limit)
    safe = config.findings() == []
    for name, limit in PROXY_IDLE_LIMITS:
        res = simulate(matching_run(config, limit), random=pinned)
        if _flags(config, name):
            assert res.ending is Ending.PROXY_CUT, (name, limit, res)
        else:
            assert_no_proxy_cut(res)
        if safe:
            assert_no_false_positive(res)


@settings(max_examples=100, deadline=None)
@given(heartbeat_configs(max_interval=60.0), links(max_rtt=0.4, max_loss=0.0, symmetric=True))
def test_a_vanished_peer_is_found_within_the_bound_whatever_the_settings(
    config: HeartbeatConfig, link: Link
) -> None:
    sc = Scenario(
        client=None,
        server=config,
        link=link,
        faults=(Vanish(side=Side.CLIENT, at=3 * config.interval),),
        duration=10 * (config.interval + config.timeout),
    )
    res = simulate(sc)
    assume(not res.false_positive)  # (a timeout below the round trip: its own property)
    one_way = link.up.delay + 2 * link.up.jitter
    assert_detected_within(res, detection_bound(config, one_way_delay=one_way))


@settings(max_examples=60, deadline=None)
@given(
    scenarios(duration=300.0, proxy=True),
    scenarios(
        duration=100.0,
        configs=heartbeat_configs(max_interval=30),
        link=links(symmetric=False),
        faults=fault_schedules(horizon=100.0, vanish=True, cuts=True, stall_side=Side.CLIENT),
    ),
    st.integers(0, 2**32),
)
def test_any_scenario_runs_deterministically_to_a_sound_end(
    a: Scenario, b: Scenario, seed: int
) -> None:
    for sc in (a, b):
        first, again = simulate(sc, seed=seed), simulate(sc, seed=seed)
        assert first == again
        assert sc.duration >= first.end - first.start >= 0
        if first.ending is Ending.PEER_DEAD:
            assert first.verdict is not None
            assert first.false_positive == (first.detection is None)
        if first.ending is Ending.PROXY_CUT:
            assert first.proxy_cut_at == first.end


@given(
    paths(bandwidth=True),
    proxies(min_idle=10, max_idle=20),
    stalls(horizon=50.0, side=None),
    st.data(),
)
def test_strategies_draw_within_their_bounds(path, proxy, stall, data) -> None:  # type: ignore[no-untyped-def]
    assert path.bandwidth is not None and 1e3 <= path.bandwidth <= 1e7
    assert 0 <= path.delay <= 0.5 and 0 <= path.loss <= 0.05
    assert 10 <= proxy.idle_limit <= 20
    assert 0 <= stall.at <= 50.0 and 0 < stall.duration <= 5.0
    link = data.draw(links(max_rtt=0.2, symmetric=True))
    assert link.up is link.down and link.up.delay <= 0.1
    faults = data.draw(fault_schedules(horizon=10.0, max_stalls=0))
    assert faults == ()
