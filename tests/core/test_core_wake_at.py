"""``HeartbeatState.wake_at``: the time a driver files its timer at (rule ``early-timer``).

Three properties, over random configurations and event sequences on a synthetic clock:
it is never after the deadline (while idle it is the last multiple of ``timer_slack``
before it, which connections due close together share); a timer delivered at it
either acts or moves it strictly later (a driver never spins); and a sign of life that
leaves the connection open never moves it earlier, unless to a time already due (a
driver does not refile when a pong arrives).
"""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from heartbeat_core import (
    ConnectionOpened,
    HeartbeatConfig,
    HeartbeatPhase,
    HeartbeatState,
    Liveness,
    ReadingPaused,
    ReadingResumed,
    RttSample,
    SendPing,
)
from heartbeat_core.state import send_from
from heartbeat_core.timers import TimerItem, TimerWheel

from .helpers import Pair


@st.composite
def configs(draw: st.DrawFn) -> HeartbeatConfig:
    fixed_rate = draw(st.booleans())
    return HeartbeatConfig(
        interval=draw(st.sampled_from([0.5, 1.0, 20.0])),
        timeout=draw(st.sampled_from([0.3, 1.0, 5.0, 10.0])),
        fixed_rate=fixed_rate,
        liveness=draw(st.sampled_from(list(Liveness))),
        jitter=draw(st.sampled_from([0.0, 0.2])),
        stall_grace=draw(st.sampled_from([0.0, 0.1])),
        # rule probe (not with fixed_rate, which it would add nothing to)
        probe_interval=None if fixed_rate else draw(st.sampled_from([None, 0.2, 0.7, 3.0])),
    )


def plans_of(kinds: list[str], max_size: int = 60) -> st.SearchStrategy[list[tuple[str, float]]]:
    """Plans of (kind, fraction) steps: what happens next, and where in its window."""
    return st.lists(
        st.tuples(st.sampled_from(kinds), st.floats(min_value=0.0, max_value=1.0)),
        max_size=max_size,
    )


steps = plans_of(["timer", "late-timer", "bytes", "pong", "pause", "resume"])


@settings(max_examples=300, deadline=None)
@given(config=configs(), plan=steps, seed=st.integers(0, 2**16))
def test_wake_at_is_early_enough_and_always_moves_on(
    config: HeartbeatConfig, plan: list[tuple[str, float]], seed: int
) -> None:
    hb = HeartbeatState(config, random=random.Random(seed).random)
    hb.handle(ConnectionOpened(now=0.0))
    now, acked = 0.0, 0
    for kind, fraction in plan:
        wake, deadline = hb.wake_at, hb.deadline
        assert (wake is None) == (deadline is None)
        if wake is None or deadline is None:
            if kind == "resume":
                hb.handle(ReadingResumed(now=now))
            continue
        assert wake <= deadline
        if kind in ("timer", "late-timer"):
            now = max(now, wake) + (fraction if kind == "late-timer" else 0.0)
            phase = hb.phase
            actions = hb.timer_fired(now)
            if any(type(a) is SendPing for a in actions):
                assert phase is HeartbeatPhase.IDLE
            after = hb.wake_at
            # No action means the machine only waits: the next wake-up is later. (With
            # no stall grace at all, the grace ends at once and the next timer acts.)
            if not actions and after is not None and after <= now:
                assert hb.phase is HeartbeatPhase.GRACE and config.stall_grace == 0
                assert hb.timer_fired(now), "a zero grace must end in a verdict"
        elif kind in ("bytes", "pong") and hb.is_open:
            now = max(now, now + fraction * (wake - now))  # a sign of life before the wake
            if kind == "bytes":
                hb.bytes_received(now)
            elif hb.seq > acked:  # only a pong that answers: stray ones may close
                actions = hb.pong_received(now, hb.payload_for(hb.seq))
                assert any(type(a) is RttSample for a in actions)
                acked = hb.seq
            after = hb.wake_at
            # (Earlier only when already due: a fixed-rate heartbeat overdue after a stall.)
            assert after is None or after >= wake or after <= now, (kind, wake, after)
        elif kind == "pause" and hb.is_open:
            hb.handle(ReadingPaused(now=now))
        elif kind == "resume":
            hb.handle(ReadingResumed(now=now))
        if not hb.is_open:
            break  # closing: wake_at is the close deadline (covered by the close tests)


def test_wake_at_is_the_next_interval_while_a_heartbeat_is_outstanding() -> None:
    hb = HeartbeatState(HeartbeatConfig(interval=1.0, timeout=5.0))
    hb.handle(ConnectionOpened(now=0.0))
    assert hb.wake_at == hb.deadline == 1.0
    hb.timer_fired(1.0)
    assert hb.deadline == 6.0 and hb.wake_at == 2.0  # a pong can bring it to 2.0 at the soonest
    assert hb.timer_fired(2.0) == ()  # woken early: nothing to do, the next wake-up is later
    assert hb.wake_at == 3.0
    hb.pong_received(2.5, b"1")
    assert hb.wake_at == hb.deadline == 3.5  # never earlier than the filing at 3.0
    fixed = HeartbeatState(HeartbeatConfig(interval=1.0, timeout=5.0, fixed_rate=True))
    fixed.handle(ConnectionOpened(now=0.0))
    fixed.timer_fired(1.0)
    assert fixed.wake_at == 2.0 and fixed.deadline == 6.0
    short = HeartbeatState(HeartbeatConfig(interval=20.0, timeout=10.0))
    short.handle(ConnectionOpened(now=0.0))
    short.timer_fired(20.0)
    assert short.wake_at == short.deadline == 30.0  # the timeout comes first


def test_the_connection_offers_the_same_wake_time() -> None:
    pair = Pair(
        HeartbeatConfig(interval=1.0, timeout=5.0), HeartbeatConfig(interval=1.0, timeout=5.0)
    )
    pair.handshake()
    server = pair.server
    assert server.wake_at == server.deadline == 1.0
    server.timer_fired(1.0)
    assert (server.wake_at, server.deadline) == (2.0, 6.0)
    pair.now = 1.001
    pair.to_client()
    pair.to_server()  # the client's pong
    assert server.deadline == 2.001 and server.wake_at == 2.0  # (its last multiple of 20 ms)


@settings(max_examples=500, deadline=None)
@given(
    due=st.floats(0.0, 1e7, allow_nan=False),
    later=st.floats(0.0, 1e3, allow_nan=False),
    slack=st.sampled_from([0.0, 0.001, 0.002, 0.02, 0.3, 0.5]),
)
def test_a_heartbeat_goes_out_at_most_the_slack_early_from_a_shared_grid(
    due: float, later: float, slack: float
) -> None:
    """send_from (rule early-timer): never after the due time, at most ``slack`` before
    it, never later for a later due time, and on the grid of multiples of ``slack``."""
    start = send_from(due, slack)
    assert due - slack - 1e-9 * max(1.0, due) <= start <= due
    assert send_from(due + later, slack) >= start
    if slack and start < due:
        assert start / slack == pytest.approx(round(start / slack), abs=1e-6)
    if slack == 0:
        assert start == due


@settings(max_examples=300, deadline=None)
@given(k=st.integers(0, 10**8), slack=st.sampled_from([0.001, 0.002, 0.006, 0.02, 0.3]))
def test_a_due_time_on_the_grid_is_its_own_start(k: int, slack: float) -> None:
    """(The quotient of a grid point by the slack may be rounded below k: not a step early.)"""
    point = k * slack
    assert send_from(point, slack) == point


def test_grid_points_whose_quotient_rounds_down() -> None:
    assert 0.58 / 0.02 < 29 and send_from(0.58, 0.02) == 0.58
    assert send_from(1.16, 0.02) == 1.16


@settings(max_examples=100, deadline=None)
@given(
    interval=st.sampled_from([0.3, 1.0, 1.234, 15.01]),
    slack=st.sampled_from([None, 0.0, 0.006, 0.1]),
    lateness=st.lists(st.floats(0.0, 0.0009), min_size=20, max_size=20),
)
def test_a_fixed_rate_schedule_keeps_its_period(
    interval: float, slack: float | None, lateness: list[float]
) -> None:
    """Timers delivered at wake_at (up to 1 ms late, as a wheel's are): heartbeat n never
    goes out more than the slack before n intervals, however early each one went (a late
    one puts the schedule off by its lateness, as before)."""
    if slack is not None and slack >= interval / 2:
        slack = None
    config = HeartbeatConfig(
        interval=interval, timeout=interval / 2, fixed_rate=True, timer_slack=slack
    )
    hb = HeartbeatState(config)
    hb.handle(ConnectionOpened(now=0.0))
    now = 0.0
    for late in lateness:
        wake = hb.wake_at
        assert wake is not None
        now = max(now, wake + late)
        actions = hb.timer_fired(now)
        if any(type(a) is SendPing for a in actions):
            n = hb.seq
            assert n * interval - config.slack - 1e-9 <= now <= n * (interval + 0.001) + 1e-9
            hb.pong_received(now, hb.payload_for(n))


def test_a_thousand_connections_share_fifty_wake_ups_a_second() -> None:
    """Opened at random moments of one second, interval 1 s (slack 20 ms): filed at wake_at
    in a 1 ms timer wheel, their heartbeats fall into 50 wake-ups, not 1,000."""
    wheel: TimerWheel[_Filed] = TimerWheel()
    rng = random.Random(7)
    states = [HeartbeatState(HeartbeatConfig(interval=1.0, timeout=5.0)) for _ in range(1000)]
    for hb in states:
        hb.handle(ConnectionOpened(now=100.0 + rng.random()))
    filed = [_Filed(hb) for hb in states]
    for item in filed:
        wheel.file(item, item.hb.wake_at)
    wake_ups = 0
    while wheel.next_wake is not None and wheel.next_wake < 102.0:
        now = wheel.next_wake
        due = wheel.pop_due(now)
        wake_ups += 1
        for item in due:
            assert [type(a) for a in item.hb.timer_fired(now)] == [SendPing]
    assert wake_ups == 50
    assert all(hb.seq == 1 for hb in states)


class _Filed(TimerItem):
    __slots__ = ("hb",)

    def __init__(self, hb: HeartbeatState) -> None:
        super().__init__()
        self.hb = hb
