"""The actions and events made on every heartbeat and every opening handshake are
built without the dataclass ``__init__`` (heartbeat_core.fastinit): they must be the
same objects."""

from __future__ import annotations

import dataclasses

import pytest

from heartbeat_core import (
    Accepted,
    ConnectionOpened,
    HandshakeStarted,
    HeartbeatConfig,
    HeartbeatState,
    Request,
)
from heartbeat_core.actions import RttSample, SendClose, SendPing, rtt_sample, send_ping
from heartbeat_core.events import connection_opened, handshake_started
from heartbeat_core.fastinit import fast_init
from heartbeat_core.wsevents import accepted, request


@pytest.mark.parametrize(
    ("fast", "usual"),
    [
        (send_ping(b"\x00\x01", 7), SendPing(payload=b"\x00\x01", seq=7)),
        (rtt_sample(3, 0.25), RttSample(seq=3, rtt=0.25)),
        (handshake_started(1.5), HandshakeStarted(now=1.5)),
        (connection_opened(2.5), ConnectionOpened(now=2.5)),
        (
            accepted("chat", [(b"x", b"y")]),
            Accepted(subprotocol="chat", extra_headers=[(b"x", b"y")]),
        ),
        (
            request("example.com", "/feed", ["chat"], [(b"origin", b"null")]),
            Request(
                host="example.com",
                target="/feed",
                subprotocols=["chat"],
                extra_headers=[(b"origin", b"null")],
            ),
        ),
    ],
)
def test_the_fast_builders_make_the_usual_objects(fast: object, usual: object) -> None:
    assert type(fast) is type(usual)
    assert fast == usual
    if usual.__hash__ is not None and not any(  # (not with a list among its fields)
        isinstance(getattr(usual, field.name), list)
        for field in dataclasses.fields(usual)  # type: ignore[arg-type]
    ):
        assert hash(fast) == hash(usual)
    assert repr(fast) == repr(usual)
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(fast, dataclasses.fields(fast)[0].name, None)  # type: ignore[arg-type]
    assert not hasattr(fast, "__dict__")


def test_a_builder_is_made_only_for_the_fields_the_class_has() -> None:
    with pytest.raises(TypeError, match=r"SendPing has the fields \('payload', 'seq'\)"):
        fast_init(SendPing, "seq", "payload")
    with pytest.raises(TypeError, match="1, 2 or 4 fields, not 3"):
        fast_init(_Three, "a", "b", "c")
    assert fast_init(SendClose, "code", "reason")(1000, "") == SendClose(code=1000, reason="")


@dataclasses.dataclass(frozen=True, slots=True)
class _Three:
    a: int
    b: int
    c: int


def test_the_heartbeat_actions_come_from_the_builders() -> None:
    state = HeartbeatState(HeartbeatConfig(interval=1.0, timeout=1.0))
    state.handle(ConnectionOpened(now=0.0))
    (ping,) = state.timer_fired(1.0)
    assert ping == SendPing(payload=state.payload_for(1), seq=1)
    (sample,) = state.pong_received(1.5, ping.payload)  # type: ignore[union-attr]
    assert sample == RttSample(seq=1, rtt=0.5)
