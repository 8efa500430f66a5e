"""Connected, Disconnected, Retrying: the reconnecting client's reports, shared by every driver."""

from __future__ import annotations

import dataclasses

import pytest

from heartbeat_core.backoff import Backoff, Connected, Disconnected, ReconnectEvent, Retrying
from heartbeat_core.config import BackoffPolicy


def test_fields_and_defaults() -> None:
    assert Connected(uri="ws://h/").uri == "ws://h/"
    error = OSError("refused")
    failed = Disconnected(code=None, reason="refused", error=error)
    assert (failed.code, failed.reason, failed.error) == (None, "refused", error)
    assert Disconnected(code=1000, reason="bye").error is None
    assert Retrying(delay=0.5, attempt=1) == Retrying(delay=0.5, attempt=1)


@pytest.mark.parametrize(
    "event",
    [Connected(uri="ws://h/"), Disconnected(code=1006, reason=""), Retrying(delay=1.0, attempt=2)],
)
def test_frozen_slotted_keyword_only(event: ReconnectEvent) -> None:
    names = [f.name for f in dataclasses.fields(event)]
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(event, names[0], None)
    assert not hasattr(event, "__dict__")
    values = [getattr(event, name) for name in names]
    with pytest.raises(TypeError):
        type(event)(*values)  # type: ignore[call-arg]


def test_union_covers_the_three() -> None:
    assert set(ReconnectEvent.__args__) == {Connected, Disconnected, Retrying}


def test_a_reconnect_sequence_reported_from_backoff() -> None:
    # What a driver reports, with the delays the core computes (no jitter, no clock).
    delays = Backoff(BackoffPolicy(initial=1, multiplier=2, full_jitter=False))
    reports: list[ReconnectEvent] = []
    for now in (0.0, 1.0, 3.0):
        reports.append(Disconnected(code=None, reason="refused", error=ConnectionRefusedError()))
        reports.append(Retrying(delay=delays.next_delay(now), attempt=delays.attempt))
    assert [r for r in reports if isinstance(r, Retrying)] == [
        Retrying(delay=1, attempt=1),
        Retrying(delay=2, attempt=2),
        Retrying(delay=4, attempt=3),
    ]
