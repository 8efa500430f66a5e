"""The actions made on every heartbeat are built without the dataclass ``__init__``
(heartbeat_core.actions.send_ping / rtt_sample): they must be the same objects."""

from __future__ import annotations

import dataclasses

import pytest

from heartbeat_core import ConnectionOpened, HeartbeatConfig, HeartbeatState
from heartbeat_core.actions import RttSample, SendPing, rtt_sample, send_ping


@pytest.mark.parametrize(
    ("fast", "usual"),
    [
        (send_ping(b"\x00\x01", 7), SendPing(payload=b"\x00\x01", seq=7)),
        (rtt_sample(3, 0.25), RttSample(seq=3, rtt=0.25)),
    ],
)
def test_the_fast_builders_make_the_usual_objects(fast: object, usual: object) -> None:
    assert type(fast) is type(usual)
    assert fast == usual
    assert hash(fast) == hash(usual)
    assert repr(fast) == repr(usual)
    with pytest.raises(dataclasses.FrozenInstanceError):
        fast.seq = 0  # type: ignore[attr-defined]
    assert not hasattr(fast, "__dict__")


def test_the_heartbeat_actions_come_from_the_builders() -> None:
    state = HeartbeatState(HeartbeatConfig(interval=1.0, timeout=1.0))
    state.handle(ConnectionOpened(now=0.0))
    (ping,) = state.timer_fired(1.0)
    assert ping == SendPing(payload=state.payload_for(1), seq=1)
    (sample,) = state.pong_received(1.5, ping.payload)  # type: ignore[union-attr]
    assert sample == RttSample(seq=1, rtt=0.5)
