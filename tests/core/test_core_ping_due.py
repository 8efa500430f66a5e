"""``HeartbeatState.ping_due``: ``timer_fired``'s common case for drivers that frame pings
themselves. It must change the state exactly as ``timer_fired`` does, or change nothing."""

from __future__ import annotations

import random
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from heartbeat_core import (
    ConnectionOpened,
    HeartbeatConfig,
    HeartbeatState,
    HeartbeatStyle,
    LocalProtocolError,
    ReadingPaused,
    ReadingResumed,
    SendPing,
)

from .test_core_wake_at import configs, steps


def seen(hb: HeartbeatState) -> tuple[Any, ...]:
    """What a driver and the tests can observe of a state."""
    return (
        hb.phase,
        hb.seq,
        hb.deadline,
        hb.wake_at,
        hb.last_now,
        hb.reading_paused,
        hb.stats,
        hb.payload_for(hb.seq),
    )


@settings(max_examples=300, deadline=None)
@given(config=configs(), plan=steps, seed=st.integers(0, 2**16))
def test_ping_due_is_timer_fired_without_the_action(
    config: HeartbeatConfig, plan: list[tuple[str, float]], seed: int
) -> None:
    """Twins fed the same events, one through timer_fired, one through ping_due (and
    timer_fired when it says None), stay alike, and send the same pings."""
    plain = HeartbeatState(config, random=random.Random(seed).random)
    quick = HeartbeatState(config, random=random.Random(seed).random)
    for hb in (plain, quick):
        hb.handle(ConnectionOpened(now=0.0))
    now = 0.0
    for kind, fraction in plan:
        wake = plain.wake_at
        if wake is None:
            if kind == "resume":
                for hb in (plain, quick):
                    hb.handle(ReadingResumed(now=now))
            continue
        if kind in ("timer", "late-timer"):
            now = max(now, wake) + (fraction if kind == "late-timer" else 0.0)
            expected = plain.timer_fired(now)
            before = seen(quick)
            payload = quick.ping_due(now)
            if payload is None:
                assert seen(quick) == before  # nothing changed
                assert quick.timer_fired(now) == expected
            else:
                assert expected == (SendPing(payload=payload, seq=quick.seq),)
        elif kind in ("bytes", "pong") and plain.is_open:
            now = max(now, now + fraction * (wake - now))  # a sign of life before the wake
            for hb in (plain, quick):
                if kind == "bytes":
                    hb.bytes_received(now)
                else:
                    hb.pong_received(now, hb.payload_for(hb.seq))
        elif kind == "pause" and plain.is_open:
            for hb in (plain, quick):
                hb.handle(ReadingPaused(now=now))
        elif kind == "resume":
            for hb in (plain, quick):
                hb.handle(ReadingResumed(now=now))
        assert seen(quick) == seen(plain)
        if not plain.is_open:
            break


def test_ping_due_says_none_and_changes_nothing_where_timer_fired_does_something_else() -> None:
    app = HeartbeatState(HeartbeatConfig(interval=1.0, style=HeartbeatStyle.APP))
    app.handle(ConnectionOpened(now=0.0))
    before = seen(app)
    assert app.ping_due(1.0) is None and seen(app) == before  # app style: no ping frame
    hb = HeartbeatState(HeartbeatConfig(interval=1.0))
    hb.handle(ConnectionOpened(now=5.0))
    before = seen(hb)
    assert hb.ping_due(4.0) is None and seen(hb) == before  # time ran backwards...
    with pytest.raises(LocalProtocolError, match="time ran backwards"):
        hb.timer_fired(4.0)  # ...which timer_fired reports
    assert hb.ping_due(5.5) is None and seen(hb) == before  # not due yet
    assert hb.ping_due(6.0) == b"1" and hb.seq == 1
    assert hb.ping_due(6.5) is None  # awaiting its pong
