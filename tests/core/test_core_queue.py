"""ReceiveQueue: the paused-reading rule, by example and as a state machine against a model."""

from __future__ import annotations

from collections import deque

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from heartbeat_core.config import DEFAULT_MAX_QUEUE, DEFAULT_MAX_QUEUE_BYTES
from heartbeat_core.errors import ConfigError, LocalProtocolError
from heartbeat_core.queue import ReceiveQueue


class TestBounds:
    def test_defaults(self) -> None:
        queue = ReceiveQueue()
        for _ in range(DEFAULT_MAX_QUEUE - 1):
            assert queue.push("x") is False
        assert queue.push("x") is True

    def test_default_bytes(self) -> None:
        queue = ReceiveQueue(max_queue=1000)
        assert queue.push(b"x" * DEFAULT_MAX_QUEUE_BYTES) is False
        assert queue.push(b"x") is True

    @pytest.mark.parametrize("value", [0, -1, 1.5, "32", None, True, False])
    def test_max_queue_must_be_a_positive_int(self, value: object) -> None:
        with pytest.raises(ConfigError, match="max_queue must be a positive int"):
            ReceiveQueue(max_queue=value)  # type: ignore[arg-type]

    @pytest.mark.parametrize("value", [0, -1, 1.5, "1", None, True])
    def test_max_queue_bytes_must_be_a_positive_int(self, value: object) -> None:
        with pytest.raises(ConfigError, match="max_queue_bytes must be a positive int"):
            ReceiveQueue(max_queue_bytes=value)  # type: ignore[arg-type]


class TestRule:
    def test_pauses_at_max_queue_messages_and_resumes_at_half(self) -> None:
        queue = ReceiveQueue(max_queue=4, max_queue_bytes=1000)
        assert [queue.push(b"m") for _ in range(4)] == [False, False, False, True]
        assert queue.paused
        assert queue.push(b"m") is False  # already paused: no second signal
        assert (len(queue), queue.size) == (5, 5)
        assert queue.pop() == (b"m", False)  # 4 left
        assert queue.pop() == (b"m", False)  # 3 left
        assert queue.pop() == (b"m", True)  # 2 left = 4 // 2: resume
        assert not queue.paused
        assert queue.pop() == (b"m", False)

    def test_pauses_above_max_queue_bytes_and_resumes_at_half(self) -> None:
        queue = ReceiveQueue(max_queue=100, max_queue_bytes=10)
        assert queue.push("0123456789") is False  # exactly the bound: not above it
        assert queue.push("x") is True  # 11 > 10
        assert queue.size == 11
        assert queue.pop() == ("0123456789", True)  # 1 message, 1 byte: both at or below half
        assert queue.size == 1

    def test_resume_needs_both_halves(self) -> None:
        queue = ReceiveQueue(max_queue=4, max_queue_bytes=10)
        queue.push("a")
        queue.push("b")
        assert queue.push("0123456789") is True  # bytes: 12 > 10
        assert queue.pop() == ("a", False)  # 2 messages (ok), 11 bytes (not)
        assert queue.pop() == ("b", False)  # 10 bytes > 5
        assert queue.pop() == ("0123456789", True)

    def test_a_single_large_message_pauses_alone(self) -> None:
        queue = ReceiveQueue(max_queue=32, max_queue_bytes=4)
        assert queue.push(b"12345") is True
        assert queue.pop() == (b"12345", True)

    def test_max_queue_one(self) -> None:
        queue = ReceiveQueue(max_queue=1, max_queue_bytes=1)
        assert queue.push("") is True
        assert queue.pop() == ("", True)
        assert queue.push("") is True

    def test_sizes_are_len_of_each_message(self) -> None:
        queue = ReceiveQueue()
        queue.push("héllo")  # 5 characters
        queue.push(b"\x00\x01")
        assert queue.size == 7
        assert len(queue) == 2
        assert queue

    def test_empty(self) -> None:
        queue = ReceiveQueue()
        assert not queue
        assert len(queue) == 0
        assert queue.size == 0
        assert not queue.paused


class TestMisuse:
    def test_pop_from_empty_raises_and_changes_nothing(self) -> None:
        queue = ReceiveQueue(max_queue=1)
        assert queue.push("x")
        queue.pop()
        queue.push("y")  # paused again
        queue.pop()
        with pytest.raises(LocalProtocolError, match="empty ReceiveQueue"):
            queue.pop()
        assert (len(queue), queue.size, queue.paused) == (0, 0, False)

    def test_push_without_len_raises_and_changes_nothing(self) -> None:
        queue = ReceiveQueue()
        queue.push("a")
        with pytest.raises(TypeError):
            queue.push(3)  # type: ignore[arg-type]
        assert (len(queue), queue.size) == (1, 1)

    def test_slots(self) -> None:
        with pytest.raises(AttributeError):
            ReceiveQueue().extra = 1  # type: ignore[attr-defined]


class TestStopPausing:
    def test_when_paused_it_says_resume(self) -> None:
        queue = ReceiveQueue(max_queue=2)
        queue.push("a")
        assert queue.push("b")
        assert queue.stop_pausing() is True
        assert not queue.paused
        # Never pauses again, and never signals a resume.
        assert [queue.push("c") for _ in range(10)] == [False] * 10
        assert [queue.pop()[1] for _ in range(12)] == [False] * 12

    def test_when_not_paused_it_says_nothing_and_still_stops_pausing(self) -> None:
        queue = ReceiveQueue(max_queue=2)
        assert queue.stop_pausing() is False
        assert queue.push("a") is False
        assert queue.push("b") is False
        assert not queue.paused
        assert queue.stop_pausing() is False

    def test_messages_stay(self) -> None:
        queue = ReceiveQueue(max_queue=1)
        queue.push("a")
        queue.stop_pausing()
        assert queue.pop() == ("a", False)


# ------------------------------------------------------------------ model


class QueueMachine(RuleBasedStateMachine):
    """Any sequence of push, pop and stop_pausing, checked against a plain model."""

    @initialize(max_queue=st.integers(1, 8), max_queue_bytes=st.integers(1, 40))
    def start(self, max_queue: int, max_queue_bytes: int) -> None:
        self.queue = ReceiveQueue(max_queue, max_queue_bytes)
        self.max_queue, self.max_bytes = max_queue, max_queue_bytes
        self.model: deque[str | bytes] = deque()
        self.paused = False  # between a pause signal and the next resume signal
        self.stopped = False
        self.last_signal = "resume"  # signals alternate, the first being a pause

    def _signal(self, kind: str) -> None:
        assert self.last_signal != kind, f"two {kind} signals in a row"
        self.last_signal = kind
        self.paused = kind == "pause"

    @rule(
        message=st.one_of(
            st.text(max_size=12), st.binary(max_size=12), st.sampled_from(["", b"", "x" * 30])
        )
    )
    def push(self, message: str | bytes) -> None:
        was_paused = self.paused
        self.model.append(message)
        size = sum(map(len, self.model))
        full = len(self.model) >= self.max_queue or size > self.max_bytes
        pause = self.queue.push(message)
        assert pause == (full and not was_paused and not self.stopped)
        if pause:
            self._signal("pause")

    @precondition(lambda self: self.model)
    @rule()
    def pop(self) -> None:
        expected = self.model.popleft()
        size = sum(map(len, self.model))
        message, resume = self.queue.pop()
        assert message == expected
        assert type(message) is type(expected)
        low = len(self.model) <= self.max_queue // 2 and size <= self.max_bytes // 2
        assert resume == (self.paused and low)
        if resume:
            self._signal("resume")

    @precondition(lambda self: not self.model)
    @rule()
    def pop_empty(self) -> None:
        with pytest.raises(LocalProtocolError):
            self.queue.pop()

    @rule()
    def stop_pausing(self) -> None:
        resume = self.queue.stop_pausing()
        assert resume == self.paused
        if resume:
            self._signal("resume")
        self.stopped = True

    @invariant()
    def agrees(self) -> None:
        queue = self.queue
        assert queue.paused == self.paused
        assert len(queue) == len(self.model)
        assert bool(queue) == bool(self.model)
        assert queue.size == sum(map(len, self.model))

    @invariant()
    def bounded_while_reading(self) -> None:
        # While reading, the queue holds less than max_queue messages and at most
        # max_queue_bytes bytes (unless stop_pausing() lifted the bound).
        if not self.paused and not self.stopped:
            assert len(self.queue) < self.max_queue
            assert self.queue.size <= self.max_bytes


QueueMachine.TestCase.settings = settings(max_examples=200, stateful_step_count=50, deadline=None)
TestQueueMachine = QueueMachine.TestCase
