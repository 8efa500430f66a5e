"""TimerWheel: buckets by example, and any file/unfile/pop_due sequence against a model.

The model knows only what each item was asked for (the ``when`` of every filing
since it was last returned or unfiled), and checks the wheel's promises: an item
is never returned before one of its deadlines, always returned once one of them
is ``resolution`` old, ``file`` returns True exactly when ``next_wake`` moved
earlier, and ``next_wake`` is the end of a bucket holding the earliest deadline.
"""

from __future__ import annotations

import math

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from heartbeat_core import timers
from heartbeat_core.errors import ConfigError, LocalProtocolError
from heartbeat_core.timers import TimerItem, TimerWheel

# 0.25 is exact in binary: bucket ends below are exact too.
R = 0.25


class Item(TimerItem):
    """A connection, as far as the wheel is concerned: named, for readable asserts."""

    __slots__ = ("name",)

    def __init__(self, name: object) -> None:
        super().__init__()
        self.name = name

    def __repr__(self) -> str:
        return f"Item({self.name!r})"


_items: dict[object, Item] = {}


@pytest.fixture(autouse=True)
def _fresh_items() -> None:
    _items.clear()


def it(name: object) -> Item:
    """The test's item called ``name`` (the same object on every call within a test)."""
    item = _items.get(name)
    if item is None:
        item = _items[name] = Item(name)
    return item


def names(items: list[Item]) -> list[object]:
    return [item.name for item in items]


class TestBuckets:
    def test_a_deadline_goes_into_the_first_bucket_that_ends_after_it(self) -> None:
        wheel: TimerWheel[Item] = TimerWheel(R)
        assert wheel.file(it("a"), 1.0) is True  # bucket (1.0, 1.25]
        assert wheel.next_wake == 1.25
        assert wheel.file(it("b"), 1.1) is False  # the same bucket
        assert wheel.file(it("c"), 0.9) is True  # (0.75, 1.0]: earlier
        assert wheel.next_wake == 1.0
        assert names(wheel.pop_due(0.99)) == []
        assert names(wheel.pop_due(1.0)) == ["c"]
        assert names(wheel.pop_due(1.24)) == []
        assert names(wheel.pop_due(1.25)) == ["a", "b"]  # filing order within a bucket
        assert wheel.next_wake is None
        assert len(wheel) == 0

    def test_default_resolution_is_one_millisecond(self) -> None:
        wheel: TimerWheel[Item] = TimerWheel()
        assert wheel.resolution == 0.001
        wheel.file(it(1), 10.0)
        assert wheel.next_wake is not None
        assert 10.0 <= wheel.next_wake <= 10.001 + 1e-12
        assert names(wheel.pop_due(10.0 - 1e-6)) == []
        assert names(wheel.pop_due(10.001)) == [1]

    def test_earliest_bucket_first(self) -> None:
        wheel: TimerWheel[Item] = TimerWheel(R)
        for item, when in [("d", 4.0), ("b", 2.0), ("c", 3.0), ("a", 1.0), ("b2", 2.1)]:
            wheel.file(it(item), when)
        assert names(wheel.pop_due(100.0)) == ["a", "b", "b2", "c", "d"]

    def test_none_needs_no_timer(self) -> None:
        wheel: TimerWheel[Item] = TimerWheel(R)
        assert wheel.file(it("a"), None) is False
        assert it("a") not in wheel
        wheel.file(it("a"), 1.0)
        assert wheel.file(it("a"), None) is False  # leaves the filing alone
        assert it("a") in wheel

    def test_negative_times(self) -> None:
        wheel: TimerWheel[Item] = TimerWheel(R)
        wheel.file(it("a"), -0.3)  # bucket (-0.5, -0.25]
        assert wheel.next_wake == -0.25
        assert names(wheel.pop_due(-0.3)) == []
        assert names(wheel.pop_due(-0.25)) == ["a"]


class TestFilingOnce:
    def test_a_later_deadline_keeps_the_earlier_filing(self) -> None:
        wheel: TimerWheel[Item] = TimerWheel(R)
        assert wheel.file(it("a"), 1.0) is True
        assert wheel.file(it("a"), 5.0) is False
        assert len(wheel) == 1
        assert wheel.next_wake == 1.25
        assert names(wheel.pop_due(1.25)) == ["a"]  # early: the core ignores it
        assert names(wheel.pop_due(100.0)) == []  # filed once only

    def test_an_earlier_deadline_moves_the_filing(self) -> None:
        wheel: TimerWheel[Item] = TimerWheel(R)
        wheel.file(it("first"), 2.0)
        assert wheel.file(it("a"), 5.0) is False
        assert wheel.file(it("a"), 1.0) is True
        assert len(wheel) == 2
        assert names(wheel.pop_due(1.25)) == ["a"]
        assert names(wheel.pop_due(100.0)) == ["first"]

    def test_moving_out_of_the_earliest_bucket_is_a_wake_up(self) -> None:
        wheel: TimerWheel[Item] = TimerWheel(R)
        wheel.file(it("a"), 1.0)
        assert wheel.file(it("a"), 0.5) is True
        assert wheel.next_wake == 0.75

    def test_moving_into_a_live_earlier_bucket(self) -> None:
        wheel: TimerWheel[Item] = TimerWheel(R)
        wheel.file(it("a"), 1.0)
        wheel.file(it("b"), 3.0)
        assert wheel.file(it("b"), 1.1) is False  # into a's bucket: next_wake unchanged
        assert names(wheel.pop_due(1.25)) == ["a", "b"]

    def test_same_bucket_is_kept(self) -> None:
        wheel: TimerWheel[Item] = TimerWheel(R)
        wheel.file(it("a"), 1.2)
        assert wheel.file(it("a"), 1.0) is False
        assert wheel.next_wake == 1.25


class TestUnfile:
    def test_unfile(self) -> None:
        wheel: TimerWheel[Item] = TimerWheel(R)
        wheel.file(it("a"), 1.0)
        wheel.file(it("b"), 1.0)
        wheel.unfile(it("a"))
        assert it("a") not in wheel
        assert names(wheel.pop_due(2.0)) == ["b"]

    def test_unfile_unknown_is_harmless(self) -> None:
        wheel: TimerWheel[Item] = TimerWheel(R)
        wheel.unfile(it("nobody"))
        wheel.file(it("a"), 1.0)
        wheel.unfile(it("nobody"))
        wheel.unfile(it("a"))
        wheel.unfile(it("a"))
        assert len(wheel) == 0

    def test_an_emptied_bucket_never_wakes(self) -> None:
        wheel: TimerWheel[Item] = TimerWheel(R)
        wheel.file(it("a"), 1.0)
        wheel.file(it("b"), 2.0)
        wheel.file(it("c"), 3.0)
        wheel.unfile(it("b"))  # not the earliest: its key waits in the heap
        wheel.unfile(it("a"))  # the earliest: next_wake skips b's empty bucket too
        assert wheel.next_wake == 3.25
        assert wheel.timeout(0.0) == 3.25
        assert names(wheel.pop_due(2.5)) == []

    def test_an_emptied_bucket_filed_again(self) -> None:
        wheel: TimerWheel[Item] = TimerWheel(R)
        wheel.file(it("a"), 1.0)
        wheel.file(it("b"), 2.0)
        wheel.unfile(it("b"))
        assert wheel.file(it("b"), 2.0) is False  # the same key twice in the heap
        assert names(wheel.pop_due(2.25)) == ["a", "b"]
        assert wheel.next_wake is None

    def test_stale_keys_do_not_pile_up(self) -> None:
        wheel: TimerWheel[Item] = TimerWheel(R)
        wheel.file(it(-1), 0.0)  # keeps every later key below the heap's top
        for item in range(5 * timers._STALE_SLACK):
            wheel.file(it(item), 1.0 + item)
            wheel.unfile(it(item))
        assert len(wheel._keys) <= 2 * len(wheel._buckets) + timers._STALE_SLACK + 1
        assert wheel.next_wake == 0.25
        assert names(wheel.pop_due(math.inf)) == [-1]


class TestTimeout:
    def test_timeout(self) -> None:
        wheel: TimerWheel[Item] = TimerWheel(R)
        assert wheel.timeout(0.0) is None
        wheel.file(it("a"), 1.0)
        assert wheel.timeout(0.5) == 0.75
        assert wheel.timeout(1.25) == 0.0
        assert wheel.timeout(7.0) == 0.0  # never negative


class TestMisuse:
    def test_an_item_is_filed_in_one_wheel_at_a_time(self) -> None:
        first: TimerWheel[Item] = TimerWheel(R)
        second: TimerWheel[Item] = TimerWheel(R)
        first.file(it("a"), 1.0)
        assert it("a") in first
        assert it("a") not in second
        with pytest.raises(LocalProtocolError, match="another TimerWheel: unfile it there"):
            second.file(it("a"), 0.5)
        second.unfile(it("a"))  # not filed there: nothing happens, in either wheel
        assert (len(first), len(second)) == (1, 0)
        assert second.next_wake is None
        assert first.next_wake == 1.25
        first.unfile(it("a"))
        assert second.file(it("a"), 0.5) is True  # free again
        assert names(second.pop_due(1.0)) == ["a"]
        assert first.file(it("a"), 0.5) is True  # and again, once returned

    def test_anything_else_is_never_in_a_wheel(self) -> None:
        wheel: TimerWheel[Item] = TimerWheel(R)
        wheel.file(it("a"), 1.0)
        assert "a" not in wheel
        assert None not in wheel

    @pytest.mark.parametrize("resolution", [0, -0.001, math.nan, math.inf, "0.001", None, True])
    def test_resolution(self, resolution: object) -> None:
        with pytest.raises(ConfigError, match="resolution must be a finite number"):
            TimerWheel(resolution)  # type: ignore[arg-type]

    def test_int_resolution(self) -> None:
        wheel: TimerWheel[Item] = TimerWheel(1)
        assert wheel.resolution == 1.0
        wheel.file(it("a"), 2)
        assert wheel.next_wake == 3.0

    @pytest.mark.parametrize("when", [math.nan, math.inf, -math.inf, 1e308])
    def test_file_at_a_non_time_changes_nothing(self, when: float) -> None:
        wheel: TimerWheel[Item] = TimerWheel(R)
        wheel.file(it("a"), 1.0)
        with pytest.raises(LocalProtocolError, match="finite time"):
            wheel.file(it("a"), when)
        with pytest.raises(LocalProtocolError):
            wheel.file(it("b"), when)
        assert len(wheel) == 1
        assert wheel.next_wake == 1.25

    def test_pop_due_at_nan(self) -> None:
        wheel: TimerWheel[Item] = TimerWheel(R)
        with pytest.raises(LocalProtocolError, match="nan"):
            wheel.pop_due(math.nan)
        wheel.file(it("a"), 1.0)
        with pytest.raises(LocalProtocolError, match="nan"):
            wheel.pop_due(math.nan)
        assert it("a") in wheel

    def test_slots(self) -> None:
        with pytest.raises(AttributeError):
            TimerWheel().extra = 1  # type: ignore[attr-defined]


def test_items_filed_while_handling_land_later() -> None:
    wheel: TimerWheel[Item] = TimerWheel(R)
    wheel.file(it("a"), 1.0)
    wheel.file(it("b"), 1.0)
    now = 1.25
    due = wheel.pop_due(now)
    for item in due:  # the driver hands each core a TimerFired; each asks again
        wheel.file(item, now + 1.0)
    assert names(due) == ["a", "b"]
    assert names(wheel.pop_due(now)) == []
    assert names(wheel.pop_due(2.5)) == ["a", "b"]


# ------------------------------------------------------------------ model

ITEMS = st.integers(0, 9)
# Times in buckets (multiplied by the resolution): quarter buckets, so that deadlines
# share buckets, fall on their ends and fill neighbouring ones; arbitrary values too.
UNITS = st.one_of(
    st.integers(-8, 160).map(lambda n: n / 4),
    st.floats(-2.0, 50.0, allow_nan=False),
)
# Far below the bucket width: the float rounding of when / resolution and key * resolution.
EPS = 1e-9


class WheelMachine(RuleBasedStateMachine):
    @initialize(resolution=st.sampled_from([0.001, 0.01, 0.125, 0.1, 0.25, 1.0]))
    def start(self, resolution: float) -> None:
        self.r = resolution
        self.wheel: TimerWheel[Item] = TimerWheel(resolution)
        self.items = [Item(n) for n in range(10)]
        self.asked: dict[int, list[float]] = {}  # item -> whens since it last left the wheel

    @rule(item=ITEMS, units=st.one_of(st.none(), UNITS))
    def file(self, item: int, units: float | None) -> None:
        when = None if units is None else units * self.r
        before = self.wheel.next_wake
        earlier = self.wheel.file(self.items[item], when)
        after = self.wheel.next_wake
        assert earlier == (after is not None and (before is None or after < before))
        if when is not None:
            self.asked.setdefault(item, []).append(when)
        else:
            assert after == before

    @rule(item=ITEMS)
    def unfile(self, item: int) -> None:
        self.wheel.unfile(self.items[item])
        self.asked.pop(item, None)

    @rule(units=UNITS)
    def pop_due(self, units: float) -> None:
        now = units * self.r
        due = [item.name for item in self.wheel.pop_due(now)]
        assert len(set(due)) == len(due)
        for item in due:
            assert item in self.asked
            assert min(self.asked[item]) <= now  # never before one of its deadlines
            assert self.items[item] not in self.wheel
        keys = [math.floor(min(self.asked[item]) / self.r) for item in due]
        assert keys == sorted(keys)  # earliest bucket first
        for item in due:
            del self.asked[item]
        for item, whens in self.asked.items():
            assert min(whens) > now - self.r - EPS, (item, whens, now)  # none left behind

    @invariant()
    def agrees(self) -> None:
        wheel = self.wheel
        assert len(wheel) == len(self.asked)
        for item in range(10):
            assert (self.items[item] in wheel) == (item in self.asked)
        wake = wheel.next_wake
        assert (wake is None) == (not self.asked)
        if wake is not None:
            earliest = min(min(whens) for whens in self.asked.values())
            assert earliest <= wake <= earliest + self.r + EPS
            for now in (earliest, wake, wake + 1):
                assert wheel.timeout(now) == max(0.0, wake - now)
        else:
            assert wheel.timeout(0.0) is None


WheelMachine.TestCase.settings = settings(max_examples=200, stateful_step_count=40, deadline=None)
TestWheelMachine = WheelMachine.TestCase
