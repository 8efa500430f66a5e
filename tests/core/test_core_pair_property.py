"""Two healthy ``HeartbeatConnection`` peers never declare each other dead.

Random configurations on both sides, random sequences of messages, ``ping()``
calls and timers, with every byte delivered before the clock moves on: nothing
may close, every message arrives intact and in order, every ``ping()`` is
answered. (This is how a peer that coalesces pongs got a healthy peer killed.)
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from heartbeat_core import (
    JSON_CODEC,
    Abort,
    CloseTransport,
    Closing,
    HeartbeatConfig,
    HeartbeatConnection,
    HeartbeatStyle,
    Liveness,
    Message,
    PeerDead,
    PingAnswered,
)

from .helpers import Pair


@st.composite
def configs(draw: st.DrawFn) -> HeartbeatConfig:
    interval = draw(st.sampled_from([0.5, 1.0, 20.0]))
    return HeartbeatConfig(
        interval=interval,
        timeout=draw(st.sampled_from([0.1, 1.0, 10.0])),
        style=draw(st.sampled_from(HeartbeatStyle)),
        liveness=draw(st.sampled_from(Liveness)),
        fixed_rate=draw(st.booleans()),
        jitter=draw(st.sampled_from([0.0, 0.5])),
        adaptive_timeout=draw(st.booleans()),
        min_timeout=0.05,
        payload_prefix=draw(st.sampled_from([b"", b"x"])),
    )


# Application messages, never one the codec takes for an app-level heartbeat (those
# are consumed, not delivered; hypothesis finds the codec's own texts in its source).
texts = st.text(max_size=20).filter(lambda t: JSON_CODEC.classify(t) is None)

steps = st.lists(
    st.one_of(
        st.tuples(st.just("send"), st.booleans(), texts | st.binary(max_size=20)),
        st.tuples(st.just("ping"), st.booleans(), st.none()),
        st.tuples(st.just("timer"), st.booleans(), st.none()),
        st.tuples(st.just("timer+ping"), st.booleans(), st.none()),
        st.tuples(st.just("advance"), st.booleans(), st.floats(0.0, 30.0)),
        st.tuples(st.just("pump"), st.booleans(), st.none()),
    ),
    max_size=40,
)


@settings(max_examples=150, deadline=None)
@given(client_cfg=configs(), server_cfg=configs(), seed=st.integers(0, 1000), script=steps)
def test_healthy_peers_stay_connected(
    client_cfg: HeartbeatConfig,
    server_cfg: HeartbeatConfig,
    seed: int,
    script: list[tuple[str, bool, object]],
) -> None:
    draws = iter(((seed + i) * 0.618) % 1.0 for i in range(10**6))
    p = Pair(client_cfg, server_cfg, random=lambda: next(draws))
    p.handshake()
    sides = {True: p.client, False: p.server}
    sent: dict[bool, list[object]] = {True: [], False: []}
    received: dict[bool, list[object]] = {True: [], False: []}
    pings: dict[bool, list[bytes]] = {True: [], False: []}
    answered: dict[bool, list[bytes]] = {True: [], False: []}

    def record(side: bool, events: list[object]) -> None:
        for event in events:
            assert not isinstance(event, PeerDead | Closing | CloseTransport | Abort), event
            if isinstance(event, Message):
                received[side].append(event.data)
            if isinstance(event, PingAnswered):
                answered[side].append(event.payload)

    def pump() -> None:
        client_events, server_events = p.pump()
        record(True, list(client_events))
        record(False, list(server_events))

    for action, side, arg in script:
        conn: HeartbeatConnection = sides[side]
        if action == "send":
            assert isinstance(arg, str | bytes)
            conn.send(arg)
            sent[side].append(arg)
        elif action == "ping":
            pings[side].append(conn.ping(p.now))
        elif action in ("timer", "timer+ping"):
            pump()  # time moves: deliver first
            deadline = conn.deadline
            assert deadline is not None
            p.now = max(p.now, deadline)
            record(side, list(conn.timer_fired(p.now)))
            if action == "timer+ping":  # the application pings as a heartbeat leaves
                pings[side].append(conn.ping(p.now))
        elif action == "advance":
            pump()
            assert isinstance(arg, float)
            # Move on, but fire every timer that comes due on the way, on time.
            end = p.now + arg
            while True:
                due = min((c.deadline or end, s) for s, c in sides.items())
                if due[0] >= end:
                    break
                p.now = max(p.now, due[0])
                record(due[1], list(sides[due[1]].timer_fired(p.now)))
                pump()
            p.now = end
        else:
            pump()
    pump()
    for side in (True, False):
        assert received[not side] == sent[side]
        assert answered[side] == pings[side]
        assert sides[side].is_open
