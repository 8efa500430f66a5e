"""``HeartbeatState.timer_fired``: its short paths (a heartbeat due, or nothing due yet)
must answer and change the state exactly as ``handle(TimerFired(...))`` does."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from heartbeat_core import (
    ConnectionOpened,
    HeartbeatConfig,
    HeartbeatState,
    TimerFired,
)

from .helpers import drive_twins
from .test_core_wake_at import configs, plans_of

plans = plans_of(["timer", "early-timer", "late-timer", "bytes", "pong", "pause", "resume"])


@settings(max_examples=300, deadline=None)
@given(config=configs(), plan=plans, seed=st.integers(0, 2**16))
def test_timer_fired_is_handle_timer_fired(
    config: HeartbeatConfig, plan: list[tuple[str, float]], seed: int
) -> None:
    """Twins fed the same events, timers through handle() in one and timer_fired() in
    the other, answer alike and stay alike: at wake_at, after it, and before it (a
    timer woken early, as a driver's is when a pong put the next heartbeat off)."""

    def timer(plain: HeartbeatState, quick: HeartbeatState, now: float) -> None:
        assert quick.timer_fired(now) == plain.handle(TimerFired(now=now))

    drive_twins(config, plan, seed, timer)


def test_a_timer_woken_before_the_heartbeat_is_due_does_nothing_but_note_the_time() -> None:
    hb = HeartbeatState(HeartbeatConfig(interval=1.0, timeout=5.0))
    hb.handle(ConnectionOpened(now=0.0))
    (ping,) = hb.timer_fired(1.0)
    wake = hb.wake_at  # what a driver files the connection at, as the heartbeat goes out
    assert wake == 2.0
    hb.pong_received(1.03, ping.payload)  # type: ignore[union-attr]
    # The pong put the next heartbeat off (due at 2.03, may go out from 2.02: the last
    # multiple of timer_slack, 20 ms, before); the filing stays.
    assert hb.deadline == 1.03 + 1.0 and hb.wake_at == 2.02
    assert hb.timer_fired(wake) == ()  # before 2.02: nothing
    assert hb.last_now == 2.0 and hb.seq == 1 and hb.wake_at == 2.02
    assert [type(a).__name__ for a in hb.timer_fired(2.02)] == ["SendPing"]
