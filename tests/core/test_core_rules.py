"""One test class per timing rule of ``heartbeat_core.state``, on a synthetic clock."""

from __future__ import annotations

import itertools
import math
import random

import pytest

from heartbeat_core import (
    HEARTBEAT_TIMEOUT_REASON,
    Abort,
    AppPingReceived,
    AppPongReceived,
    BytesReceived,
    CloseReceived,
    CloseRequested,
    CloseTransport,
    ConfigError,
    ConnectionClosed,
    ConnectionOpened,
    HeartbeatConfig,
    HeartbeatPhase,
    HeartbeatState,
    HeartbeatStyle,
    Liveness,
    LocalProtocolError,
    PeerDead,
    PingReceived,
    PongReceived,
    ReadingPaused,
    ReadingResumed,
    RttSample,
    SendAppPing,
    SendAppPong,
    SendClose,
    SendPing,
    SendPong,
    TimerFired,
)
from heartbeat_core.state import PING_FLOOD_REASON, PONG_FLOOD_REASON, validate_close

from .helpers import Pair, opened, snapshot

# interval 20 s, timeout 10 s, close_timeout 5 s: the defaults, spelled out.
CFG = HeartbeatConfig(interval=20, timeout=10, close_timeout=5)


def ping_at(hb: HeartbeatState, now: float) -> SendPing:
    """Fire the heartbeat timer at ``now`` and return the ping it sends."""
    (action,) = hb.handle(TimerFired(now=now))
    assert isinstance(action, SendPing)
    return action


class TestInterval:
    def test_first_heartbeat_is_due_interval_after_open(self) -> None:
        hb = opened(CFG, now=100.0)
        assert hb.deadline == 120.0
        assert hb.handle(TimerFired(now=120.0)) == (SendPing(payload=b"1", seq=1),)
        assert hb.phase is HeartbeatPhase.AWAITING
        assert hb.seq == 1

    @pytest.mark.parametrize(
        "event",
        [
            BytesReceived(now=5.0),
            PingReceived(now=5.0, payload=b"x"),
            PongReceived(now=5.0, payload=b"junk"),
            AppPingReceived(now=5.0),
            AppPongReceived(now=5.0),
        ],
    )
    def test_any_inbound_traffic_postpones_the_heartbeat(self, event: object) -> None:
        hb = opened(CFG)
        hb.handle(event)  # type: ignore[arg-type]
        assert hb.deadline == 25.0
        assert hb.handle(TimerFired(now=24.9)) == ()

    def test_busy_connection_sends_no_heartbeats(self) -> None:
        hb = opened(CFG)
        for i in range(1, 200):
            hb.handle(BytesReceived(now=i * 1.0))
            assert hb.handle(TimerFired(now=i * 1.0)) == ()
        assert hb.stats.pings_sent == 0

    def test_inbound_while_awaiting_rearms_the_interval(self) -> None:
        hb = opened(CFG)
        ping_at(hb, 20.0)
        hb.handle(BytesReceived(now=21.0))
        assert hb.phase is HeartbeatPhase.IDLE
        assert hb.deadline == 41.0

    def test_pong_only_ignores_other_traffic(self) -> None:
        hb = opened(HeartbeatConfig(interval=20, timeout=10, liveness=Liveness.PONG_ONLY))
        hb.handle(BytesReceived(now=5.0))
        hb.handle(PingReceived(now=6.0, payload=b""))
        hb.handle(AppPingReceived(now=7.0))
        hb.handle(AppPongReceived(now=7.5))
        hb.handle(PongReceived(now=8.0, payload=b"nope"))
        assert hb.deadline == 20.0
        ping_at(hb, 20.0)
        hb.handle(BytesReceived(now=21.0))
        hb.handle(PongReceived(now=21.5, payload=b"2"))  # not ours
        assert hb.phase is HeartbeatPhase.AWAITING
        assert hb.deadline == 30.0
        assert hb.handle(PongReceived(now=22.0, payload=b"1")) == (RttSample(seq=1, rtt=2.0),)
        assert hb.phase is HeartbeatPhase.IDLE
        assert hb.deadline == 42.0

    def test_fixed_rate_pings_every_interval_whatever_arrives(self) -> None:
        hb = opened(HeartbeatConfig(interval=20, timeout=10, fixed_rate=True))
        hb.handle(BytesReceived(now=15.0))
        assert hb.deadline == 20.0
        ping_at(hb, 20.0)
        hb.handle(PongReceived(now=21.0, payload=b"1"))
        hb.handle(BytesReceived(now=30.0))
        assert hb.deadline == 40.0
        assert ping_at(hb, 40.0).seq == 2

    def test_app_style_sends_app_pings_and_app_pongs_answer_them(self) -> None:
        hb = opened(HeartbeatConfig(interval=20, timeout=10, style=HeartbeatStyle.APP))
        assert hb.handle(TimerFired(now=20.0)) == (SendAppPing(seq=1),)
        # A protocol pong is life, but does not answer an application heartbeat.
        assert hb.handle(PongReceived(now=20.5, payload=b"1")) == ()
        assert hb.stats.pongs_received == 0
        assert hb.handle(TimerFired(now=40.5)) == (SendAppPing(seq=2),)
        assert hb.handle(AppPongReceived(now=41.0)) == (RttSample(seq=2, rtt=0.5),)
        assert hb.stats.pongs_received == 1
        # A second app pong answers nothing.
        assert hb.handle(AppPongReceived(now=41.5)) == ()
        assert hb.stats.pongs_received == 1

    def test_app_pong_before_any_heartbeat_is_ignored(self) -> None:
        hb = opened(HeartbeatConfig(style=HeartbeatStyle.APP, liveness=Liveness.PONG_ONLY))
        assert hb.handle(AppPongReceived(now=1.0)) == ()
        assert hb.deadline == 20.0

    def test_app_pong_does_not_answer_protocol_heartbeats(self) -> None:
        hb = opened(HeartbeatConfig(liveness=Liveness.PONG_ONLY))
        ping_at(hb, 20.0)
        assert hb.handle(AppPongReceived(now=21.0)) == ()
        assert hb.phase is HeartbeatPhase.AWAITING


class TestOneOutstanding:
    def test_no_second_ping_while_one_is_outstanding(self) -> None:
        hb = opened(CFG)
        ping_at(hb, 20.0)
        for now in (20.0, 21.0, 29.9):
            assert hb.handle(TimerFired(now=now)) == ()
        assert hb.stats.pings_sent == 1

    def test_payloads_are_a_counter_after_the_prefix(self) -> None:
        hb = opened(HeartbeatConfig(interval=1, timeout=1, payload_prefix=b"r4nd:"))
        payloads = []
        now = 0.0
        for _ in range(12):
            now += 1.0
            payloads.append(ping_at(hb, now).payload)
            (sample,) = hb.handle(PongReceived(now=now, payload=payloads[-1]))
            assert isinstance(sample, RttSample)
        assert payloads == [b"r4nd:%d" % i for i in range(1, 13)]
        assert hb.payload_for(7) == b"r4nd:7"

    def test_a_pong_acknowledges_every_earlier_ping(self) -> None:
        hb = opened(CFG)
        ping_at(hb, 20.0)  # 1
        hb.handle(BytesReceived(now=21.0))  # any inbound: back to IDLE, ping 1 unanswered
        ping_at(hb, 41.0)  # 2
        assert hb.handle(PongReceived(now=42.0, payload=b"2")) == (RttSample(seq=2, rtt=1.0),)
        # The late pong for ping 1 was acknowledged by pong 2: ignored now.
        assert hb.handle(PongReceived(now=43.0, payload=b"1")) == ()
        assert hb.stats.pongs_received == 1

    def test_an_earlier_pong_is_life_but_not_an_answer(self) -> None:
        hb = opened(CFG)
        ping_at(hb, 20.0)
        hb.handle(BytesReceived(now=21.0))
        ping_at(hb, 41.0)
        assert hb.handle(PongReceived(now=42.0, payload=b"1")) == ()
        assert hb.phase is HeartbeatPhase.IDLE  # inbound bytes count
        assert hb.stats.pongs_received == 0 and hb.stats.last_rtt is None
        # ... and pong 2 still yields the sample afterwards.
        ping_at(hb, 62.0)
        assert hb.handle(PongReceived(now=63.0, payload=b"3")) == (RttSample(seq=3, rtt=1.0),)

    @pytest.mark.parametrize(
        "payload",
        [
            b"",
            b"0",
            b"01",
            b"2",
            b"99",
            b"-1",
            b"+1",
            b" 1",
            b"1 ",
            b"x1",
            b"\xff",
            b"1" * 30,
            b"\xd9\xa1",
            b"u1",
        ],
    )
    def test_unsolicited_or_garbage_pongs_are_ignored(self, payload: bytes) -> None:
        hb = opened(HeartbeatConfig(interval=20, timeout=10, liveness=Liveness.PONG_ONLY))
        ping_at(hb, 20.0)
        before = snapshot(hb)
        assert hb.handle(PongReceived(now=20.0, payload=payload)) == ()
        assert snapshot(hb) == before

    def test_pong_without_the_prefix_is_ignored(self) -> None:
        hb = opened(HeartbeatConfig(liveness=Liveness.PONG_ONLY, payload_prefix=b"abc"))
        ping_at(hb, 20.0)
        assert hb.handle(PongReceived(now=21.0, payload=b"1")) == ()
        assert hb.handle(PongReceived(now=21.0, payload=b"abd1")) == ()
        assert hb.handle(PongReceived(now=21.0, payload=b"abc1")) == (RttSample(seq=1, rtt=1.0),)

    def test_replayed_pong_is_ignored(self) -> None:
        hb = opened(HeartbeatConfig(liveness=Liveness.PONG_ONLY))
        ping_at(hb, 20.0)
        hb.handle(PongReceived(now=21.0, payload=b"1"))
        before = snapshot(hb)
        assert hb.handle(PongReceived(now=21.0, payload=b"1")) == ()
        assert snapshot(hb) == before


class TestDeadPeer:
    def test_silence_for_the_timeout_closes_1011_and_drops(self) -> None:
        hb = opened(CFG)
        ping_at(hb, 20.0)
        assert hb.deadline == 30.0
        assert hb.handle(TimerFired(now=30.0)) == (
            PeerDead(seq=1, waited=10.0),
            SendClose(code=1011, reason=HEARTBEAT_TIMEOUT_REASON),
            CloseTransport(),
        )
        assert hb.phase is HeartbeatPhase.DRAINING
        assert hb.stats.misses == 1
        # Not waiting for the dead peer's close frame: only the flush is bounded.
        assert hb.deadline == 35.0
        assert hb.handle(TimerFired(now=34.0)) == ()
        assert hb.handle(TimerFired(now=35.0)) == (Abort(),)
        assert hb.deadline is None
        # Nothing more, whatever happens, until the end.
        for event in (
            TimerFired(now=99.0),
            BytesReceived(now=99.0),
            PongReceived(now=99.0, payload=b"1"),
            PingReceived(now=99.0),
            AppPingReceived(now=99.0),
            AppPongReceived(now=99.0),
            CloseRequested(now=99.0),
            CloseReceived(now=99.0, code=1000),
        ):
            assert hb.handle(event) == ()
        assert hb.handle(ConnectionClosed(now=100.0)) == ()
        assert hb.phase is HeartbeatPhase.CLOSED
        assert hb.deadline is None
        assert hb.stats.misses == 1

    def test_an_answer_just_before_the_deadline_saves_the_peer(self) -> None:
        hb = opened(HeartbeatConfig(interval=20, timeout=10, liveness=Liveness.PONG_ONLY))
        ping_at(hb, 20.0)
        hb.handle(PongReceived(now=29.999, payload=b"1"))
        assert hb.handle(TimerFired(now=30.0)) == ()
        assert hb.phase is HeartbeatPhase.IDLE

    def test_pong_only_other_traffic_does_not_save_the_peer(self) -> None:
        hb = opened(HeartbeatConfig(interval=20, timeout=10, liveness=Liveness.PONG_ONLY))
        ping_at(hb, 20.0)
        hb.handle(BytesReceived(now=29.0))
        hb.handle(PingReceived(now=29.5))
        (dead, *_) = hb.handle(TimerFired(now=30.0))
        assert dead == PeerDead(seq=1, waited=10.0)

    def test_dead_peer_with_zero_close_timeout_aborts_at_once(self) -> None:
        hb = opened(HeartbeatConfig(interval=1, timeout=1, close_timeout=0))
        ping_at(hb, 1.0)
        hb.handle(TimerFired(now=2.0))
        assert hb.deadline == 2.0
        assert hb.handle(TimerFired(now=2.0)) == (Abort(),)

    def test_closing_after_death_sends_nothing(self) -> None:
        hb = opened(CFG)
        ping_at(hb, 20.0)
        hb.handle(TimerFired(now=30.0))
        assert hb.handle(CloseRequested(now=31.0, code=1000)) == ()
        assert hb.handle(CloseReceived(now=31.0, code=1000)) == ()


class TestRtt:
    def test_each_matched_pong_is_a_sample_with_rfc6298_smoothing(self) -> None:
        hb = opened(CFG)
        assert hb.stats.last_rtt is None and hb.stats.srtt is None
        ping_at(hb, 20.0)
        assert hb.handle(PongReceived(now=20.5, payload=b"1")) == (RttSample(seq=1, rtt=0.5),)
        s = hb.stats
        assert (s.last_rtt, s.min_rtt, s.max_rtt, s.srtt, s.rttvar) == (0.5, 0.5, 0.5, 0.5, 0.25)
        ping_at(hb, 40.5)
        assert hb.handle(PongReceived(now=42.0, payload=b"2")) == (RttSample(seq=2, rtt=1.5),)
        s = hb.stats
        assert s.last_rtt == 1.5 and s.min_rtt == 0.5 and s.max_rtt == 1.5
        assert s.rttvar == pytest.approx(0.75 * 0.25 + 0.25 * 1.0)
        assert s.srtt == pytest.approx(0.875 * 0.5 + 0.125 * 1.5)
        ping_at(hb, 62.0)
        hb.handle(PongReceived(now=62.1, payload=b"3"))
        s = hb.stats
        assert s.min_rtt == pytest.approx(0.1) and s.max_rtt == 1.5
        assert (s.pings_sent, s.pongs_received, s.misses) == (3, 3, 0)

    def test_rtt_is_measured_from_the_ping_not_from_the_deadline(self) -> None:
        hb = opened(CFG)
        ping_at(hb, 23.0)  # the timer came 3 s late
        assert hb.handle(PongReceived(now=23.25, payload=b"1")) == (RttSample(seq=1, rtt=0.25),)


class TestJitter:
    def test_jitter_works_without_a_random_source(self) -> None:
        # Regression (d061d09): jitter > 0 without random= raised ConfigError, so no
        # driver could use it. Each state now draws from a default source of its own.
        draws = set()
        for _ in range(5):
            hb = opened(HeartbeatConfig(interval=20, jitter=0.1))
            assert 18.0 <= (hb.deadline or 0) <= 22.0
            draws.add(hb.deadline)
        assert len(draws) > 1  # not one shared sequence: connections spread out

    def test_the_random_source_must_be_callable(self) -> None:
        with pytest.raises(ConfigError, match="random must be a callable"):
            HeartbeatState(HeartbeatConfig(jitter=0.1), random=0.5)  # type: ignore[arg-type]

    @pytest.mark.parametrize(("draw", "deadline"), [(0.0, 18.0), (0.5, 20.0), (0.75, 21.0)])
    def test_each_wait_is_spread_by_the_draw(self, draw: float, deadline: float) -> None:
        hb = opened(HeartbeatConfig(interval=20, jitter=0.1), random=lambda: draw)
        assert hb.deadline == pytest.approx(deadline)
        ping_at(hb, hb.deadline or 0)
        hb.handle(BytesReceived(now=30.0))
        assert hb.deadline == pytest.approx(30.0 + deadline)

    def test_seeded_runs_repeat_and_stay_within_bounds(self) -> None:
        def run(seed: int) -> list[float]:
            hb = opened(HeartbeatConfig(interval=10, jitter=0.5), random=random.Random(seed).random)
            deadlines = []
            for _ in range(50):
                deadline = hb.deadline
                assert deadline is not None
                base = hb.last_now if hb.last_now > 0 else 0.0
                assert 5.0 - 1e-9 <= deadline - base <= 15.0 + 1e-9
                deadlines.append(deadline)
                ping_at(hb, deadline)
                hb.handle(PongReceived(now=deadline, payload=hb.payload_for(hb.seq)))
            return deadlines

        first = run(7)
        assert first == run(7)
        assert first != run(8)
        gaps = {round(b - a, 6) for a, b in itertools.pairwise(first)}
        assert len(gaps) > 10  # spread, not lockstep

    def test_no_jitter_never_calls_the_random_source(self) -> None:
        def boom() -> float:
            raise AssertionError("random source called with jitter 0")

        hb = opened(CFG, random=boom)
        ping_at(hb, 20.0)
        hb.handle(PongReceived(now=21.0, payload=b"1"))
        assert hb.deadline == 41.0


class TestLateTimer:
    CFG = HeartbeatConfig(interval=20, timeout=10, stall_threshold=0.25, stall_grace=0.1)

    def test_a_late_timer_gives_a_grace_instead_of_killing(self) -> None:
        hb = opened(self.CFG)
        ping_at(hb, 20.0)
        # We were suspended for a minute: the timer arrives 60 s late.
        assert hb.handle(TimerFired(now=90.0)) == ()
        assert hb.phase is HeartbeatPhase.GRACE
        assert hb.deadline == pytest.approx(90.1)
        assert hb.handle(TimerFired(now=90.05)) == ()  # early: nothing
        # The pong that waited in the socket buffer is read: the peer lives.
        assert hb.handle(PongReceived(now=90.05, payload=b"1")) == (
            RttSample(seq=1, rtt=pytest.approx(70.05)),  # type: ignore[arg-type]
        )
        assert hb.phase is HeartbeatPhase.IDLE
        assert hb.stats.misses == 0

    def test_any_inbound_in_the_grace_saves_the_peer(self) -> None:
        hb = opened(self.CFG)
        ping_at(hb, 20.0)
        hb.handle(TimerFired(now=31.0))
        hb.handle(BytesReceived(now=31.01))
        assert hb.phase is HeartbeatPhase.IDLE
        assert hb.deadline == pytest.approx(51.01)

    def test_nothing_in_the_grace_means_dead(self) -> None:
        hb = opened(self.CFG)
        ping_at(hb, 20.0)
        hb.handle(TimerFired(now=31.0))
        actions = hb.handle(TimerFired(now=31.1))
        assert actions[0] == PeerDead(seq=1, waited=pytest.approx(11.1))  # type: ignore[arg-type]
        assert actions[1:] == (SendClose(code=1011, reason="heartbeat-timeout"), CloseTransport())

    def test_late_by_exactly_the_threshold_is_not_a_stall(self) -> None:
        hb = opened(self.CFG)
        ping_at(hb, 20.0)
        (dead, *_) = hb.handle(TimerFired(now=30.25))
        assert isinstance(dead, PeerDead)

    def test_a_stall_during_the_grace_gives_another_grace(self) -> None:
        hb = opened(self.CFG)
        ping_at(hb, 20.0)
        hb.handle(TimerFired(now=40.0))
        assert hb.handle(TimerFired(now=50.0)) == ()
        assert hb.phase is HeartbeatPhase.GRACE
        assert hb.deadline == pytest.approx(50.1)

    def test_a_late_heartbeat_timer_just_sends_the_ping(self) -> None:
        hb = opened(self.CFG)
        assert ping_at(hb, 500.0).seq == 1
        assert hb.deadline == 510.0


class TestPausedReading:
    """Rule paused-reading: while we do not read, the peer cannot be heard, so nobody
    is declared dead; resuming gives an outstanding heartbeat a fresh timeout."""

    CFG = HeartbeatConfig(interval=20, timeout=10, close_timeout=5, stall_threshold=0.25)

    def test_a_pause_suspends_the_outstanding_heartbeat_deadline(self) -> None:
        hb = opened(self.CFG)
        ping_at(hb, 20.0)
        assert hb.handle(ReadingPaused(now=21.0)) == ()
        assert hb.phase is HeartbeatPhase.AWAITING
        assert hb.reading_paused
        assert hb.deadline is None
        # Timers delivered long after the old deadline change nothing.
        for now in (30.0, 30.1, 500.0, 10_000.0):
            assert hb.handle(TimerFired(now=now)) == ()
            assert hb.phase is HeartbeatPhase.AWAITING
        assert hb.stats.misses == 0

    def test_resuming_gives_a_fresh_timeout_in_grace(self) -> None:
        hb = opened(self.CFG)
        ping_at(hb, 20.0)
        hb.handle(ReadingPaused(now=25.0))
        assert hb.handle(ReadingResumed(now=100.0)) == ()
        assert not hb.reading_paused
        assert hb.phase is HeartbeatPhase.GRACE
        assert hb.deadline == 110.0  # now + timeout, not the old 30.0
        assert hb.handle(TimerFired(now=109.9)) == ()

    def test_the_answer_read_after_resuming_saves_the_peer(self) -> None:
        hb = opened(self.CFG)
        ping_at(hb, 20.0)
        hb.handle(ReadingPaused(now=20.5))
        hb.handle(ReadingResumed(now=60.0))
        # The pong waited in the kernel all along: it is read now.
        assert hb.handle(PongReceived(now=60.001, payload=b"1")) == (
            RttSample(seq=1, rtt=pytest.approx(40.001)),  # type: ignore[arg-type]
        )
        assert hb.phase is HeartbeatPhase.IDLE
        assert hb.deadline == pytest.approx(80.001)

    def test_any_inbound_byte_after_resuming_counts_as_usual(self) -> None:
        hb = opened(self.CFG)
        ping_at(hb, 20.0)
        hb.handle(ReadingPaused(now=21.0))
        hb.handle(ReadingResumed(now=50.0))
        hb.bytes_received(50.5)
        assert hb.phase is HeartbeatPhase.IDLE
        assert hb.deadline == 70.5

    def test_silence_after_resuming_is_still_a_dead_peer(self) -> None:
        hb = opened(self.CFG)
        ping_at(hb, 20.0)
        hb.handle(ReadingPaused(now=21.0))
        hb.handle(ReadingResumed(now=50.0))
        actions = hb.handle(TimerFired(now=60.0))
        assert actions[0] == PeerDead(seq=1, waited=40.0)
        assert actions[1:] == (SendClose(code=1011, reason="heartbeat-timeout"), CloseTransport())
        assert hb.phase is HeartbeatPhase.DRAINING

    def test_resuming_uses_the_adaptive_timeout(self) -> None:
        cfg = HeartbeatConfig(interval=20, timeout=10, adaptive_timeout=True, min_timeout=1)
        hb = opened(cfg)
        ping_at(hb, 20.0)
        hb.handle(PongReceived(now=20.1, payload=b"1"))  # SRTT 0.1, RTTVAR 0.05
        ping_at(hb, 40.1)
        hb.handle(ReadingPaused(now=41.0))
        hb.handle(ReadingResumed(now=45.0))
        assert hb.effective_timeout == pytest.approx(1.0)
        assert hb.deadline == pytest.approx(46.0)

    def test_idle_still_sends_the_heartbeat_when_due(self) -> None:
        hb = opened(self.CFG)
        hb.handle(ReadingPaused(now=1.0))
        assert hb.phase is HeartbeatPhase.IDLE
        assert hb.deadline == 20.0  # unchanged: proxies still see our ping
        assert ping_at(hb, 20.0) == SendPing(payload=b"1", seq=1)
        assert hb.phase is HeartbeatPhase.AWAITING and hb.deadline is None
        assert hb.handle(TimerFired(now=1000.0)) == ()  # one outstanding; nobody is dead

    def test_resuming_while_idle_changes_nothing(self) -> None:
        hb = opened(self.CFG)
        hb.handle(ReadingPaused(now=1.0))
        hb.handle(BytesReceived(now=2.0))  # bytes already read still count
        assert hb.handle(ReadingResumed(now=3.0)) == ()
        assert hb.phase is HeartbeatPhase.IDLE and hb.deadline == 22.0

    def test_a_pause_suspends_a_late_timer_grace_too(self) -> None:
        hb = opened(self.CFG)
        ping_at(hb, 20.0)
        hb.handle(TimerFired(now=40.0))  # we stalled: GRACE
        assert hb.phase is HeartbeatPhase.GRACE
        hb.handle(ReadingPaused(now=40.01))
        assert hb.deadline is None
        assert hb.handle(TimerFired(now=41.0)) == ()
        hb.handle(ReadingResumed(now=90.0))
        assert hb.phase is HeartbeatPhase.GRACE and hb.deadline == 100.0

    def test_pausing_twice_and_resuming_when_not_paused_are_no_ops(self) -> None:
        hb = opened(self.CFG)
        ping_at(hb, 20.0)
        before = snapshot(hb)
        assert hb.handle(ReadingResumed(now=21.0)) == ()  # not paused: nothing
        assert snapshot(hb)[:3] == before[:3]
        assert hb.deadline == 30.0
        hb.handle(ReadingPaused(now=22.0))
        assert hb.handle(ReadingPaused(now=23.0)) == ()
        assert hb.reading_paused and hb.deadline is None
        hb.handle(ReadingResumed(now=24.0))
        assert hb.deadline == 34.0
        assert hb.handle(ReadingResumed(now=25.0)) == ()  # a second resume: no new window
        assert hb.deadline == 34.0

    def test_closing_deadlines_still_apply_while_paused(self) -> None:
        hb = opened(self.CFG)
        hb.handle(ReadingPaused(now=1.0))
        assert hb.handle(CloseRequested(now=2.0)) == (SendClose(code=1000, reason=""),)
        assert hb.phase is HeartbeatPhase.CLOSING and hb.deadline == 7.0
        assert hb.handle(TimerFired(now=7.0)) == (Abort(),)
        hb.handle(ReadingResumed(now=8.0))
        assert hb.phase is HeartbeatPhase.DRAINING and hb.deadline is None

    def test_pause_and_resume_are_accepted_while_closing(self) -> None:
        hb = opened(self.CFG)
        hb.handle(CloseReceived(now=1.0, code=1000))
        assert hb.phase is HeartbeatPhase.DRAINING and hb.deadline == 6.0
        assert hb.handle(ReadingPaused(now=2.0)) == ()
        assert hb.deadline == 6.0
        assert hb.handle(ReadingResumed(now=3.0)) == ()
        assert hb.phase is HeartbeatPhase.DRAINING and hb.deadline == 6.0

    @pytest.mark.parametrize("event", [ReadingPaused(now=1.0), ReadingResumed(now=1.0)])
    def test_before_open_and_after_close_they_raise_and_change_nothing(
        self, event: ReadingPaused | ReadingResumed
    ) -> None:
        fresh = HeartbeatState(self.CFG)
        with pytest.raises(LocalProtocolError, match="before ConnectionOpened"):
            fresh.handle(event)
        assert fresh.phase is HeartbeatPhase.NEW and not fresh.reading_paused
        ended = opened(self.CFG)
        ended.handle(ConnectionClosed(now=0.5))
        before = snapshot(ended)
        with pytest.raises(LocalProtocolError, match="after ConnectionClosed"):
            ended.handle(event)
        assert snapshot(ended) == before and not ended.reading_paused

    def test_time_running_backwards_raises(self) -> None:
        hb = opened(self.CFG, now=10.0)
        with pytest.raises(LocalProtocolError, match="time ran backwards"):
            hb.handle(ReadingPaused(now=9.0))
        assert not hb.reading_paused

    def test_connection_methods_feed_the_rule(self) -> None:
        pair = Pair(self.CFG, self.CFG)
        pair.handshake()
        server = pair.server
        pair.now = 20.0
        server.timer_fired(pair.now)  # heartbeat 1 goes out
        assert server.phase is HeartbeatPhase.AWAITING
        assert server.pause_reading(21.0) == []
        assert server.reading_paused and server.deadline is None
        assert server.timer_fired(100.0) == []  # long past 30.0: no verdict
        pair.now = 100.0
        pair.to_client()  # the client answers; the pong waits in our "kernel"
        assert server.resume_reading(150.0) == []
        assert server.phase is HeartbeatPhase.GRACE and server.deadline == 160.0
        pair.now = 150.0
        events = pair.to_server()
        assert [type(e) for e in events] == [RttSample]
        assert server.phase is HeartbeatPhase.IDLE and server.stats.misses == 0
        server.connection_lost(151.0)
        with pytest.raises(LocalProtocolError):
            server.pause_reading(152.0)
        with pytest.raises(LocalProtocolError):
            server.resume_reading(152.0)


class TestPeerPing:
    CFG = HeartbeatConfig(peer_ping_min_interval=0.05, peer_ping_max_strikes=2)

    def test_pings_are_answered_with_their_payload(self) -> None:
        hb = opened(CFG)
        assert hb.handle(PingReceived(now=1.0, payload=b"abc")) == (SendPong(payload=b"abc"),)
        assert hb.handle(AppPingReceived(now=2.0)) == (SendAppPong(),)
        assert hb.stats.peer_pings == 2

    def test_app_pings_unanswered_when_configured(self) -> None:
        hb = opened(HeartbeatConfig(answer_app_pings=False))
        assert hb.handle(AppPingReceived(now=2.0)) == ()
        assert hb.stats.peer_pings == 1

    def test_a_flood_collects_strikes_then_closes_1008(self) -> None:
        hb = opened(self.CFG)
        assert hb.handle(PingReceived(now=1.00, payload=b"a")) == (SendPong(payload=b"a"),)
        assert hb.handle(PingReceived(now=1.01, payload=b"b")) == (SendPong(payload=b"b"),)
        assert hb.handle(AppPingReceived(now=1.02)) == (SendAppPong(),)
        assert hb.stats.peer_ping_strikes == 2
        # The flood fails the connection (rule fail): close frame, then release.
        assert hb.handle(PingReceived(now=1.03, payload=b"c")) == (
            SendClose(code=1008, reason=PING_FLOOD_REASON),
            CloseTransport(),
        )
        assert hb.phase is HeartbeatPhase.DRAINING
        assert hb.deadline == pytest.approx(6.03)
        # Failed: no more answers.
        assert hb.handle(PingReceived(now=1.04, payload=b"d")) == ()
        assert hb.handle(AppPingReceived(now=1.05)) == ()

    def test_app_pings_flood_too(self) -> None:
        hb = opened(self.CFG)
        for i in range(3):
            assert hb.handle(AppPingReceived(now=1.0 + i * 0.01)) == (SendAppPong(),)
        assert hb.handle(AppPingReceived(now=1.03)) == (
            SendClose(code=1008, reason=PING_FLOOD_REASON),
            CloseTransport(),
        )

    def test_a_spaced_ping_forgives_the_strikes(self) -> None:
        hb = opened(self.CFG)
        now = 1.0
        for _ in range(20):
            hb.handle(PingReceived(now=now))
            hb.handle(PingReceived(now=now + 0.01))
            hb.handle(PingReceived(now=now + 0.02))
            assert hb.stats.peer_ping_strikes == 2
            now += 0.1
        assert hb.is_open

    def test_zero_strikes_allowed(self) -> None:
        hb = opened(HeartbeatConfig(peer_ping_max_strikes=0))
        hb.handle(PingReceived(now=1.0))
        assert hb.handle(PingReceived(now=1.0)) == (
            SendClose(code=1008, reason="too many pings"),
            CloseTransport(),
        )

    def test_pong_only_peer_pings_are_not_life(self) -> None:
        hb = opened(HeartbeatConfig(liveness=Liveness.PONG_ONLY, interval=20))
        assert hb.handle(PingReceived(now=5.0, payload=b"p")) == (SendPong(payload=b"p"),)
        assert hb.deadline == 20.0


def stray(hb: HeartbeatState, now: float, via: str = "handle") -> tuple[object, ...]:
    """A pong that answers nothing, through ``handle()`` or the direct entry point."""
    if via == "handle":
        return hb.handle(PongReceived(now=now, payload=b"stray"))
    return hb.pong_received(now, b"stray")


class TestStrayPongs:
    """Rule ``peer-ping``, for pongs that acknowledge no outstanding heartbeat and are
    not marked ``solicited``: counted like peer pings, with strikes of their own."""

    CFG = HeartbeatConfig(peer_ping_min_interval=0.05, peer_ping_max_strikes=2)
    TOO_MANY = (SendClose(code=1008, reason=PONG_FLOOD_REASON), CloseTransport())

    def test_the_close_reason(self) -> None:
        assert PONG_FLOOD_REASON == "too many pongs"

    @pytest.mark.parametrize("via", ["handle", "pong_received"])
    def test_spaced_stray_pongs_never_strike(self, via: str) -> None:
        # Exactly min_interval apart (binary-exact times): not a strike, even when
        # no strike at all is allowed. A unidirectional heartbeat (RFC 6455 5.5.3).
        hb = opened(HeartbeatConfig(peer_ping_min_interval=0.25, peer_ping_max_strikes=0))
        for i in range(200):
            assert stray(hb, 1.0 + i * 0.25, via) == ()
        assert hb.phase is HeartbeatPhase.IDLE

    @pytest.mark.parametrize("via", ["handle", "pong_received"])
    def test_a_burst_closes_1008_exactly_once(self, via: str) -> None:
        hb = opened(self.CFG)
        assert stray(hb, 1.00, via) == ()  # the first one is free
        assert stray(hb, 1.01, via) == ()  # strike 1
        assert stray(hb, 1.02, via) == ()  # strike 2: the most allowed
        assert hb.is_open
        assert stray(hb, 1.03, via) == self.TOO_MANY  # strike 3: one too many
        assert hb.phase is HeartbeatPhase.DRAINING  # failed (rule fail)
        assert hb.deadline == pytest.approx(1.03 + self.CFG.close_timeout)
        for i in range(10):
            assert stray(hb, 1.04 + i * 0.001, via) == ()
        assert hb.phase is HeartbeatPhase.DRAINING

    def test_zero_strikes_allowed(self) -> None:
        hb = opened(HeartbeatConfig(peer_ping_max_strikes=0))
        assert stray(hb, 1.0) == ()
        assert stray(hb, 1.0) == self.TOO_MANY

    def test_a_zero_min_interval_never_strikes(self) -> None:
        hb = opened(HeartbeatConfig(peer_ping_min_interval=0.0, peer_ping_max_strikes=0))
        for _ in range(50):
            assert stray(hb, 1.0) == ()
        assert hb.is_open

    @pytest.mark.parametrize("via", ["handle", "pong_received"])
    def test_strikes_reset_after_a_spaced_pong(self, via: str) -> None:
        hb = opened(self.CFG)
        now = 1.0
        for _ in range(20):
            # Three close together (two strikes), then one min_interval after the last.
            for dt in (0.0, 0.01, 0.02):
                assert stray(hb, now + dt, via) == ()
            now += 0.02 + 0.0625
        assert hb.is_open
        for dt in (0.0, 0.01, 0.02):
            assert stray(hb, now + dt, via) == ()
        assert stray(hb, now + 0.03, via) == self.TOO_MANY

    def test_pongs_that_acknowledge_a_heartbeat_never_count(self) -> None:
        hb = opened(HeartbeatConfig(interval=20, timeout=10, peer_ping_max_strikes=0))
        ping_at(hb, 20.0)  # 1
        hb.handle(BytesReceived(now=21.0))  # other traffic: 1 is left unanswered
        ping_at(hb, 41.0)  # 2
        assert stray(hb, 41.0) == ()  # the first stray pong
        # The late answer to heartbeat 1 acknowledges it: no sample, and no strike.
        assert hb.handle(PongReceived(now=41.0, payload=b"1")) == ()
        assert hb.pong_received(41.0, b"2") == (RttSample(seq=2, rtt=0.0),)
        ping_at(hb, 61.0)  # 3
        assert hb.handle(PongReceived(now=61.0, payload=b"3")) == (RttSample(seq=3, rtt=0.0),)
        assert hb.is_open
        # ... but answering the same heartbeat twice is answering nothing.
        assert stray(hb, 61.0) == ()
        assert hb.pong_received(61.0, b"3") == self.TOO_MANY

    def test_pongs_marked_solicited_never_count(self) -> None:
        hb = opened(HeartbeatConfig(interval=20, peer_ping_max_strikes=0))
        assert stray(hb, 1.0) == ()
        for payload in (b"u1", b"", b"1", b"stray"):  # whatever they carry
            assert hb.handle(PongReceived(now=1.0, payload=payload, solicited=True)) == ()
        assert hb.is_open
        # They leave the stray count alone: the next stray pong is still a strike.
        assert stray(hb, 1.0) == self.TOO_MANY

    def test_a_solicited_pong_still_acknowledges_its_heartbeat(self) -> None:
        hb = opened(HeartbeatConfig(interval=20, peer_ping_max_strikes=0))
        ping_at(hb, 20.0)
        answer = PongReceived(now=20.5, payload=b"1", solicited=True)
        assert hb.handle(answer) == (RttSample(seq=1, rtt=0.5),)

    def test_app_style_protocol_pongs_answer_nothing(self) -> None:
        hb = opened(HeartbeatConfig(style=HeartbeatStyle.APP, peer_ping_max_strikes=0))
        hb.handle(TimerFired(now=20.0))  # an app heartbeat, number 1
        assert hb.handle(PongReceived(now=20.1, payload=b"1", solicited=True)) == ()
        assert hb.handle(PongReceived(now=20.1, payload=b"1")) == ()
        assert hb.handle(PongReceived(now=20.1, payload=b"1")) == self.TOO_MANY

    def test_pong_floods_and_ping_floods_count_apart(self) -> None:
        hb = opened(self.CFG)
        now = 1.0
        for _ in range(3):  # each kind: the first, then two strikes
            assert hb.handle(PingReceived(now=now, payload=b"p")) == (SendPong(payload=b"p"),)
            assert stray(hb, now) == ()
            now += 0.01
        assert hb.is_open and hb.stats.peer_ping_strikes == 2
        assert stray(hb, now) == self.TOO_MANY
        assert hb.stats.peer_ping_strikes == 2  # pongs are not peer pings

    def test_nothing_after_the_close(self) -> None:
        hb = opened(HeartbeatConfig(interval=20, timeout=10, peer_ping_max_strikes=0))
        ping_at(hb, 20.0)
        assert stray(hb, 20.0) == ()
        assert stray(hb, 20.0) == self.TOO_MANY
        before = snapshot(hb)
        assert stray(hb, 20.0) == ()
        assert hb.pong_received(20.0, b"1") == ()  # not even the heartbeat's answer
        assert hb.handle(PongReceived(now=20.0, payload=b"1")) == ()
        assert snapshot(hb) == before
        # The connection was failed: the peer's close frame changes nothing.
        assert hb.handle(CloseReceived(now=20.1, code=1008)) == ()
        assert stray(hb, 20.1) == ()
        assert hb.handle(ConnectionClosed(now=20.2)) == ()
        with pytest.raises(LocalProtocolError):
            stray(hb, 20.3)


class TestMonotonicTime:
    @pytest.mark.parametrize(
        "make",
        [
            lambda t: BytesReceived(now=t),
            lambda t: PingReceived(now=t),
            lambda t: PongReceived(now=t, payload=b"1"),
            lambda t: AppPingReceived(now=t),
            lambda t: AppPongReceived(now=t),
            lambda t: TimerFired(now=t),
            lambda t: CloseRequested(now=t),
            lambda t: CloseReceived(now=t, code=1000),
            lambda t: ConnectionClosed(now=t),
        ],
    )
    def test_time_running_backwards_raises_and_changes_nothing(self, make: object) -> None:
        hb = opened(CFG)
        ping_at(hb, 20.0)
        before = snapshot(hb)
        for bad in (19.999, -math.inf, math.nan):
            with pytest.raises(LocalProtocolError, match="time ran backwards"):
                hb.handle(make(bad))  # type: ignore[operator]
            assert snapshot(hb) == before
        hb.handle(make(20.0))  # type: ignore[operator]  # the same instant is fine

    def test_events_after_the_end_raise(self) -> None:
        hb = opened(CFG)
        hb.handle(ConnectionClosed(now=1.0))
        before = snapshot(hb)
        for event in (TimerFired(now=2.0), BytesReceived(now=2.0), ConnectionClosed(now=2.0)):
            with pytest.raises(LocalProtocolError, match="after ConnectionClosed"):
                hb.handle(event)
        assert snapshot(hb) == before

    def test_only_open_timer_and_closed_before_opening(self) -> None:
        hb = HeartbeatState(CFG)
        assert hb.deadline is None and not hb.is_open and hb.phase is HeartbeatPhase.NEW
        for event in (
            BytesReceived(now=1.0),
            PingReceived(now=1.0),
            PongReceived(now=1.0),
            AppPingReceived(now=1.0),
            AppPongReceived(now=1.0),
            CloseRequested(now=1.0),
            CloseReceived(now=1.0),
        ):
            with pytest.raises(LocalProtocolError, match="before ConnectionOpened"):
                hb.handle(event)
        assert hb.last_now == -math.inf
        assert hb.handle(TimerFired(now=1.0)) == ()
        assert hb.handle(ConnectionClosed(now=2.0)) == ()
        assert hb.phase is HeartbeatPhase.CLOSED

    def test_opening_twice_raises(self) -> None:
        hb = opened(CFG)
        before = snapshot(hb)
        with pytest.raises(LocalProtocolError, match="already open"):
            hb.handle(ConnectionOpened(now=1.0))
        assert snapshot(hb) == before

    def test_not_an_event_raises(self) -> None:
        hb = opened(CFG)
        with pytest.raises(LocalProtocolError, match="not a heartbeat event"):
            hb.handle(SendPing(payload=b"", seq=1))  # type: ignore[arg-type]

    @pytest.mark.parametrize(
        ("code", "reason"),
        [
            (1005, ""),
            (1006, ""),
            (999, ""),
            (1004, ""),
            (1015, ""),
            (2999, ""),
            (5000, ""),
            (True, ""),
            ("1000", ""),
            (1000, "é" * 62),
            (1000, b"x"),
        ],
    )
    def test_bad_close_requests_raise_and_change_nothing(
        self, code: object, reason: object
    ) -> None:
        hb = opened(CFG)
        before = snapshot(hb)
        with pytest.raises(LocalProtocolError, match="close"):
            hb.handle(CloseRequested(now=1.0, code=code, reason=reason))  # type: ignore[arg-type]
        assert snapshot(hb) == before

    @pytest.mark.parametrize("code", [1000, 1001, 1003, 1007, 1014, 3000, 4999])
    def test_good_close_codes(self, code: int) -> None:
        validate_close(code, "x" * 123)


class TestEarlyTimer:
    def test_an_early_timer_changes_nothing_in_any_phase(self) -> None:
        hb = HeartbeatState(CFG)
        assert hb.handle(TimerFired(now=-5.0)) == ()  # NEW: no deadline at all
        hb.handle(ConnectionOpened(now=0.0))

        def early() -> None:
            deadline = hb.deadline
            assert deadline is not None
            before = snapshot(hb)
            assert hb.handle(TimerFired(now=deadline - 0.01)) == ()
            assert snapshot(hb)[:4] == before[:4]

        early()  # IDLE
        ping_at(hb, 20.0)
        early()  # AWAITING
        hb.handle(TimerFired(now=40.0))  # late: GRACE
        assert hb.phase is HeartbeatPhase.GRACE
        early()
        hb.handle(CloseRequested(now=40.1))
        early()  # CLOSING
        hb.handle(CloseReceived(now=45.1, code=1000))
        assert hb.phase is HeartbeatPhase.DRAINING
        early()
        hb.handle(TimerFired(now=50.1))
        assert hb.handle(TimerFired(now=1e9)) == ()  # no deadline left


class TestTimerSlackBounds:
    """What the slack must not do: shorten a close, or act when it is zero."""

    def test_the_slack_never_shortens_a_close(self) -> None:
        hb = opened(HeartbeatConfig(interval=20, timeout=10, timer_slack=0.5))
        hb.handle(CloseRequested(now=1.0))
        assert hb.handle(TimerFired(now=5.9)) == ()  # close_timeout runs in full
        assert hb.phase is HeartbeatPhase.CLOSING

    def test_zero_slack_is_strict(self) -> None:
        hb = opened(HeartbeatConfig(interval=20, timer_slack=0))
        assert hb.wake_at == hb.deadline == 20.0
        assert hb.handle(TimerFired(now=19.9999999)) == ()
        assert hb.ping_due(19.9999999) is None and hb.timer_fired(19.9999999) == ()
        assert ping_at(hb, 20.0).seq == 1
        quick = opened(HeartbeatConfig(interval=20, timer_slack=0))
        assert quick.ping_due(20.0) == b"1" and quick.seq == 1


class TestAdaptiveTimeout:
    def cfg(self, **kw: object) -> HeartbeatConfig:
        return HeartbeatConfig(interval=20, timeout=10, adaptive_timeout=True, **kw)  # type: ignore[arg-type]

    def sample(self, hb: HeartbeatState, rtt: float) -> None:
        now = hb.deadline or 0.0
        ping_at(hb, now)
        hb.handle(PongReceived(now=now + rtt, payload=hb.payload_for(hb.seq)))

    def test_configured_timeout_until_the_first_sample(self) -> None:
        hb = opened(self.cfg(min_timeout=1))
        assert hb.effective_timeout == 10.0
        ping_at(hb, 20.0)
        assert hb.deadline == 30.0

    def test_follows_srtt_plus_four_rttvar(self) -> None:
        hb = opened(self.cfg(min_timeout=0.5))
        self.sample(hb, 1.0)  # srtt 1, rttvar 0.5: 3 s
        assert hb.effective_timeout == pytest.approx(3.0)
        ping_at(hb, hb.deadline or 0.0)
        assert hb.deadline == pytest.approx(hb.last_now + 3.0)

    def test_clamped_to_the_floor(self) -> None:
        hb = opened(self.cfg(min_timeout=2))
        self.sample(hb, 0.01)
        assert hb.effective_timeout == 2.0

    def test_clamped_to_the_timeout(self) -> None:
        hb = opened(self.cfg(min_timeout=1))
        self.sample(hb, 5.0)
        assert hb.effective_timeout == 10.0

    def test_off_means_the_configured_timeout(self) -> None:
        hb = opened(HeartbeatConfig(interval=20, timeout=10))
        self.sample(hb, 0.01)
        assert hb.effective_timeout == 10.0

    def test_adaptive_dead_peer(self) -> None:
        hb = opened(self.cfg(min_timeout=1))
        self.sample(hb, 0.1)
        ping_at(hb, hb.deadline or 0.0)
        (dead, *_) = hb.handle(TimerFired(now=hb.deadline or 0.0))
        assert dead == PeerDead(seq=2, waited=pytest.approx(1.0))  # type: ignore[arg-type]


class TestCloseHandshake:
    def test_local_close_waits_for_the_peer_bounded(self) -> None:
        hb = opened(CFG)
        assert hb.handle(CloseRequested(now=1.0, code=1001, reason="bye")) == (
            SendClose(code=1001, reason="bye"),
        )
        assert hb.phase is HeartbeatPhase.CLOSING and not hb.is_open
        assert hb.deadline == 6.0
        assert hb.handle(CloseRequested(now=2.0)) == ()  # twice is harmless
        assert hb.handle(TimerFired(now=20.0)) == (Abort(),)  # no heartbeat while closing
        assert hb.phase is HeartbeatPhase.DRAINING and hb.deadline is None

    def test_peer_answers_our_close(self) -> None:
        hb = opened(CFG)
        hb.handle(CloseRequested(now=1.0))
        assert hb.handle(CloseReceived(now=2.0, code=1000)) == (CloseTransport(),)
        assert hb.phase is HeartbeatPhase.DRAINING
        assert hb.deadline == 7.0
        assert hb.handle(CloseReceived(now=2.5, code=1000)) == ()
        assert hb.handle(TimerFired(now=7.0)) == (Abort(),)
        assert hb.handle(ConnectionClosed(now=8.0)) == ()

    @pytest.mark.parametrize(
        ("received", "echoed"),
        [
            (1000, 1000),
            (1001, 1001),
            (1011, 1011),
            (3000, 3000),
            (4999, 4999),
            (1005, 1000),
            (1006, 1000),
            (1015, 1000),
            (2999, 1000),
            (5000, 1000),
        ],
    )
    def test_peer_close_is_echoed(self, received: int, echoed: int) -> None:
        hb = opened(CFG)
        ping_at(hb, 20.0)
        assert hb.handle(CloseReceived(now=21.0, code=received, reason="why")) == (
            SendClose(code=echoed, reason=""),
            CloseTransport(),
        )
        assert hb.phase is HeartbeatPhase.DRAINING and hb.deadline == 26.0

    def test_protocol_error_closes_with_its_code(self) -> None:
        hb = opened(CFG)
        actions = hb.handle(CloseReceived(now=1.0, code=1002, reason="x" * 100, error=True))
        assert actions == (SendClose(code=1002, reason="x" * 100), CloseTransport())

    def test_protocol_error_reason_fits_in_a_close_frame(self) -> None:
        hb = opened(CFG)
        (close, _) = hb.handle(CloseReceived(now=1.0, code=1007, reason="é" * 100, error=True))
        assert isinstance(close, SendClose)
        validate_close(close.code, close.reason)

    @pytest.mark.parametrize(
        "phase_maker", ["new", "idle", "awaiting", "grace", "closing", "draining"]
    )
    def test_connection_closed_ends_every_phase(self, phase_maker: str) -> None:
        hb = HeartbeatState(CFG)
        if phase_maker != "new":
            hb.handle(ConnectionOpened(now=0.0))
        if phase_maker in ("awaiting", "grace"):
            ping_at(hb, 20.0)
        if phase_maker == "grace":
            hb.handle(TimerFired(now=50.0))
        if phase_maker == "closing":
            hb.handle(CloseRequested(now=50.0))
        if phase_maker == "draining":
            hb.handle(CloseReceived(now=50.0))
        assert hb.phase.value == phase_maker
        assert hb.handle(ConnectionClosed(now=60.0)) == ()
        assert hb.phase is HeartbeatPhase.CLOSED and hb.deadline is None and not hb.is_open


class TestConstruction:
    def test_defaults(self) -> None:
        hb = HeartbeatState()
        assert hb.config == HeartbeatConfig()
        assert hb.phase is HeartbeatPhase.NEW and hb.deadline is None
        assert hb.seq == 0

    def test_config_must_be_a_config(self) -> None:
        with pytest.raises(ConfigError, match="HeartbeatConfig"):
            HeartbeatState({"interval": 1})  # type: ignore[arg-type]


class TestRegressions:
    @pytest.mark.parametrize(
        ("code", "sent"), [(1005, 1002), (1006, 1002), (2000, 1002), (1009, 1009)]
    )
    def test_error_close_never_sends_an_unsendable_code(self, code: int, sent: int) -> None:
        # Found by the state machine: CloseReceived(error=True, code=1005) echoed 1005.
        hb = opened(CFG)
        (close, _) = hb.handle(CloseReceived(now=1.0, code=code, reason="bad", error=True))
        assert close == SendClose(code=sent, reason="bad")


class TestTimerSlack:
    """early-timer: a heartbeat may go out from the last multiple of timer_slack before
    it is due, and connections due close together share that wake-up."""

    def test_a_heartbeat_goes_out_from_its_grid_point_and_is_timed_from_now(self) -> None:
        hb = HeartbeatState(HeartbeatConfig(interval=1.0, timeout=1.0, timer_slack=0.002))
        hb.handle(ConnectionOpened(now=0.0005))
        assert hb.deadline == 1.0005 and hb.wake_at == 1.0  # (500 x 2 ms)
        assert hb.handle(TimerFired(now=0.9995)) == ()  # within 2 ms, before its grid point
        (ping,) = hb.handle(TimerFired(now=1.0))  # 0.5 ms early
        assert isinstance(ping, SendPing) and ping.seq == 1
        assert hb.deadline == 1.0 + 1.0  # the timeout counts from the real send time
        (sample,) = hb.handle(PongReceived(now=1.0015, payload=ping.payload))
        assert isinstance(sample, RttSample) and abs(sample.rtt - 0.0015) < 1e-12

    def test_connections_due_within_one_slack_share_a_wake_up(self) -> None:
        config = HeartbeatConfig(interval=1.0, timeout=5.0)  # slack: 2 % of 1 s, 20 ms
        opened_at = [0.0, 0.003, 0.0199, 0.02, 0.031]
        states = [HeartbeatState(config) for _ in opened_at]
        for hb, now in zip(states, opened_at, strict=True):
            hb.handle(ConnectionOpened(now=now))
        assert [hb.wake_at for hb in states] == [1.0, 1.0, 1.0, 1.02, 1.02]
        for hb, now in zip(states, opened_at, strict=True):
            assert hb.deadline == 1.0 + now  # the deadlines themselves do not move
            assert [type(a) for a in hb.timer_fired(hb.wake_at or 0.0)] == [SendPing]

    def test_the_slack_never_declares_a_peer_dead_early(self) -> None:
        hb = HeartbeatState(HeartbeatConfig(interval=2.0, timeout=1.0, timer_slack=0.5))
        hb.handle(ConnectionOpened(now=0.0))
        hb.handle(TimerFired(now=2.0))
        assert hb.handle(TimerFired(now=2.9)) == ()  # within the slack, but not a heartbeat
        assert hb.phase is HeartbeatPhase.AWAITING

    def test_the_slack_must_not_be_negative(self) -> None:
        with pytest.raises(ConfigError, match="timer_slack"):
            HeartbeatConfig(timer_slack=-0.001)
