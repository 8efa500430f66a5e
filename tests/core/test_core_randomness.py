"""default_random: the seedable random source for jitter."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from heartbeat_core.backoff import Backoff
from heartbeat_core.errors import ConfigError
from heartbeat_core.randomness import default_random

SEEDS = st.one_of(st.none(), st.integers(), st.floats(allow_nan=False), st.text(), st.binary())


@given(SEEDS)
def test_floats_in_unit_interval(seed: int | float | str | bytes | None) -> None:
    draw = default_random(seed)
    for _ in range(20):
        value = draw()
        assert isinstance(value, float)
        assert 0.0 <= value < 1.0


@given(st.one_of(st.integers(), st.text(), st.binary()))
def test_same_seed_same_sequence(seed: int | str | bytes) -> None:
    first, second = default_random(seed), default_random(seed)
    assert [first() for _ in range(5)] == [second() for _ in range(5)]


def test_sources_are_independent() -> None:
    first, second = default_random(7), default_random(7)
    first()
    first()
    assert second() == default_random(7)()


def test_unseeded_sources_differ() -> None:
    assert [default_random()() for _ in range(3)] != [default_random()() for _ in range(3)]


@pytest.mark.parametrize("seed", [[1], {"a": 1}, object(), bytearray(b"x"), 1j])
def test_bad_seed(seed: object) -> None:
    with pytest.raises(ConfigError, match="seed must be an int, float, str, bytes or None"):
        default_random(seed)  # type: ignore[arg-type]


def test_feeds_backoff_jitter() -> None:
    delays = Backoff(random=default_random(1))
    again = Backoff(random=default_random(1))
    assert [delays.next_delay(0.0) for _ in range(4)] == [again.next_delay(0.0) for _ in range(4)]
