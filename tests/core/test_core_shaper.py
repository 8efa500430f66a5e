"""heartbeat_core.testing.shaper: when a shaped link delivers, and when a proxy's idle
limit is reached (the rules LinkProxy carries out on real sockets)."""

from __future__ import annotations

import pytest

from heartbeat_core import ConfigError
from heartbeat_core.testing import Direction, IdleWatch, LinkShaper


def shaper() -> LinkShaper:
    return LinkShaper(100.0, lambda: 1.0)  # (a source at the top: jitter adds its all)


def test_delay_and_jitter_keep_the_order() -> None:
    s = shaper()
    assert s.release(Direction(delay=0.1), 10, 100.0) == pytest.approx(100.1)
    assert s.release(Direction(delay=0.1, jitter=0.05), 10, 100.0) == pytest.approx(100.15)
    # A chunk whose own delay would overtake the one before waits behind it.
    assert s.release(Direction(), 10, 100.01) == pytest.approx(100.15)


def test_bandwidth_spaces_chunks_by_their_size() -> None:
    s = shaper()
    narrow = Direction(bandwidth=1000.0)
    assert s.release(narrow, 500, 100.0) == pytest.approx(100.5)
    assert s.release(narrow, 500, 100.0) == pytest.approx(101.0)


def test_stalls_hold_until_the_window_ends() -> None:
    s = shaper()
    stalling = Direction(stall_every=4.0, stall=0.6)
    assert s.release(stalling, 1, 104.2) == pytest.approx(104.6)  # in the window at 104
    assert s.release(stalling, 1, 105.0) == pytest.approx(105.0)  # between windows


def test_a_blackhole_swallows() -> None:
    assert shaper().release(Direction(blackhole=True), 1, 100.0) is None


def test_idle_watch() -> None:
    w = IdleWatch(60, 0.0)
    assert w.deadline == 60.0 and not w.expired(59.9) and w.expired(60.0)
    w.activity(30.0)
    w.activity(20.0)  # (late news changes nothing)
    assert w.deadline == 90.0 and not w.expired(60.0)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: Direction(delay=-1), "delay must be a finite number >= 0"),
        (lambda: Direction(bandwidth=0), "bandwidth must be a finite number > 0"),
        (lambda: Direction(stall_every=1.0, stall=1.0), "must be shorter than stall_every"),
        (lambda: IdleWatch(0, 0.0), "idle_limit must be a finite number > 0"),
    ],
)
def test_bad_figures(make: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        make()  # type: ignore[operator]
