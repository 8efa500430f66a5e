"""``HeartbeatState.ping_due``: ``timer_fired``'s common case for drivers that frame pings
themselves. It must change the state exactly as ``timer_fired`` does, or change nothing."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from heartbeat_core import (
    ConnectionOpened,
    HeartbeatConfig,
    HeartbeatConnection,
    HeartbeatState,
    HeartbeatStyle,
    LocalProtocolError,
    Role,
    SendPing,
)

from .helpers import drive_twins, seen
from .test_core_lifecycle import masked, open_server
from .test_core_timer_fired import plans
from .test_core_wake_at import configs, plans_of


@settings(max_examples=300, deadline=None)
@given(config=configs(), plan=plans, seed=st.integers(0, 2**16))
def test_ping_due_is_timer_fired_without_the_action(
    config: HeartbeatConfig, plan: list[tuple[str, float]], seed: int
) -> None:
    """Twins fed the same events, one through timer_fired, one through ping_due (and
    timer_fired when it says None), stay alike, and send the same pings."""

    def timer(plain: HeartbeatState, quick: HeartbeatState, now: float) -> None:
        expected = plain.timer_fired(now)
        before = seen(quick)
        payload = quick.ping_due(now)
        if payload is None:
            assert seen(quick) == before  # nothing changed
            assert quick.timer_fired(now) == expected
        else:
            assert expected == (SendPing(payload=payload, seq=quick.seq),)

    drive_twins(config, plan, seed, timer)


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


# ------------------------------------------------- HeartbeatConnection.ping_due

connection_steps = plans_of(
    ["timer", "early-timer", "late-timer", "pong", "message", "send"], max_size=40
)


@settings(max_examples=200, deadline=None)
@given(plan=connection_steps, app=st.booleans(), probe=st.sampled_from([None, 0.4]))
def test_a_connections_ping_due_is_timer_fired_and_data_to_send(
    plan: list[tuple[str, float]], app: bool, probe: float | None
) -> None:
    """Twin open servers: one's timers go through timer_fired() then data_to_send(), the
    other's through ping_due() (and the same two when it says None). They write the same
    bytes, report the same events and stay alike."""
    config = HeartbeatConfig(
        interval=1.0,
        timeout=0.7,
        probe_interval=probe,
        style=HeartbeatStyle.APP if app else HeartbeatStyle.PROTOCOL,
    )
    plain, quick = open_server(config), open_server(config)
    now = 0.0
    for kind, fraction in plan:
        wake = plain.wake_at
        if wake is None:
            break
        if kind.endswith("timer"):
            if kind == "early-timer":
                now += fraction * max(0.0, wake - now)
            else:
                now = max(now, wake) + (fraction if kind == "late-timer" else 0.0)
            events = plain.timer_fired(now)
            wrote = plain.data_to_send()
            frame = quick.ping_due(now)
            if frame is None:
                assert quick.timer_fired(now) == events
                assert quick.data_to_send() == wrote
            else:
                assert (events, wrote) == ([], frame)
                assert not app  # (app heartbeats are text messages: never a ping frame)
        else:
            now += fraction * 0.01
            if kind == "pong":
                pong = masked(0xA, plain.heartbeat.payload_for(plain.heartbeat.seq) or b"")
                assert quick.receive_data(pong, now) == plain.receive_data(pong, now)
            elif kind == "message":
                text = masked(0x1, b"hi")
                assert quick.receive_data(text, now) == plain.receive_data(text, now)
            elif plain.is_open:  # send: bytes queued, not yet taken by the driver
                plain.send("queued")
                quick.send("queued")
                continue  # (taken at the next timer: the ping must come after them)
            assert quick.data_to_send() == plain.data_to_send()
        assert seen(quick.heartbeat) == seen(plain.heartbeat)


def test_a_connections_ping_due_says_none_where_a_frame_cannot_be_returned_alone() -> None:
    server = open_server(HeartbeatConfig(interval=1.0, timeout=1.0))
    server.send("first")  # queued: the ping must not overtake it
    before = seen(server.heartbeat)
    assert server.ping_due(1.0) is None and seen(server.heartbeat) == before
    assert server.timer_fired(1.0) == []
    assert server.data_to_send().endswith(b"\x89\x011")  # the message, then ping "1"
    assert server.ping_due(2.5) is None  # heartbeat 1 is still out
    client = HeartbeatConnection(Role.CLIENT, HeartbeatConfig(interval=1.0))
    client.initiate("localhost", "/")
    assert client.ping_due(1.0) is None  # not open, and a client's frames are masked
