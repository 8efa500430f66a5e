"""Rule ``probe`` (``HeartbeatConfig.probe_interval``) and ``ping_on_open``, on a synthetic clock.

A probe is a heartbeat sent for its RTT sample only: at least every ``probe_interval``
while traffic flows, never a reason to declare the peer dead. The properties run a
simulated peer against two states, probe off and probe on, and compare their verdicts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from heartbeat_core import (
    AppPingReceived,
    AppPongReceived,
    CloseRequested,
    ConfigError,
    ConnectionOpened,
    HeartbeatConfig,
    HeartbeatPhase,
    HeartbeatState,
    HeartbeatStyle,
    Liveness,
    PeerDead,
    PingReceived,
    PongReceived,
    ReadingPaused,
    ReadingResumed,
    RttSample,
    SendAppPing,
    SendPing,
    TimerFired,
)

from .helpers import opened

PROBE = HeartbeatConfig(interval=20, timeout=10, probe_interval=5)


def _sends(actions: tuple[object, ...]) -> list[SendPing | SendAppPing]:
    return [a for a in actions if isinstance(a, (SendPing, SendAppPing))]


class TestConfig:
    @pytest.mark.parametrize("value", [0, -1.0, math.inf, math.nan, True, "5"])
    def test_probe_interval_must_be_positive_seconds(self, value: object) -> None:
        with pytest.raises(ConfigError, match="probe_interval"):
            HeartbeatConfig(probe_interval=value)  # type: ignore[arg-type]

    def test_probe_interval_and_fixed_rate_exclude_each_other(self) -> None:
        with pytest.raises(ConfigError, match="fixed_rate"):
            HeartbeatConfig(probe_interval=5, fixed_rate=True)

    def test_ping_on_open_must_be_a_bool(self) -> None:
        with pytest.raises(ConfigError, match="ping_on_open"):
            HeartbeatConfig(ping_on_open=1)  # type: ignore[arg-type]

    def test_defaults_are_off(self) -> None:
        cfg = HeartbeatConfig()
        assert cfg.probe_interval is None and cfg.ping_on_open is False


class TestProbe:
    def test_busy_connection_gets_a_probe_every_k_seconds(self) -> None:
        hb = opened(PROBE)
        sent: list[float] = []
        rtts: list[float] = []
        now = 0.0
        while now < 30.0:
            now = round(now + 0.5, 6)
            hb.bytes_received(now)  # traffic: the interval rule never fires
            wake = hb.wake_at
            assert wake is not None
            if wake <= now:
                (ping,) = _sends(hb.timer_fired(now))
                assert isinstance(ping, SendPing)
                assert hb.phase is HeartbeatPhase.IDLE  # a probe sets no deadline
                sent.append(now)
                actions = hb.pong_received(now + 0.01, ping.payload)
                now += 0.01
                rtts += [a.rtt for a in actions if isinstance(a, RttSample)]
        assert sent == [5.0, 10.01, 15.02, 20.03, 25.04, 30.05]
        assert rtts == pytest.approx([0.01] * 6)
        stats = hb.stats
        assert stats.pings_sent == stats.probes_sent == stats.pongs_received == 6
        assert stats.misses == 0

    def test_off_a_busy_connection_has_no_heartbeat_at_all(self) -> None:
        hb = opened(HeartbeatConfig(interval=20, timeout=10))
        for i in range(1, 61):
            hb.bytes_received(i * 0.5)
            assert hb.deadline == i * 0.5 + 20
        assert hb.stats.pings_sent == 0

    def test_an_unanswered_probe_is_no_verdict(self) -> None:
        hb = opened(PROBE)
        assert hb.deadline == 5.0
        (probe,) = _sends(hb.timer_fired(5.0))
        # Nothing arrives at all: the next probe, then the interval rule's heartbeat at 20,
        # and the verdict at 30, as without probes.
        assert hb.phase is HeartbeatPhase.IDLE and hb.deadline == 10.0
        assert _sends(hb.timer_fired(10.0)) and _sends(hb.timer_fired(15.0))
        assert hb.deadline == 20.0
        (beat,) = _sends(hb.timer_fired(20.0))
        assert hb.phase is HeartbeatPhase.AWAITING and hb.deadline == 30.0
        assert hb.timer_fired(29.99) == ()
        dead = hb.timer_fired(30.0)
        assert isinstance(dead[0], PeerDead) and dead[0].waited == 10.0
        assert hb.stats.probes_sent == 3 and hb.stats.pings_sent == 4
        assert probe != beat

    def test_the_pong_of_a_probe_is_a_sample_and_a_sign_of_life(self) -> None:
        hb = opened(
            HeartbeatConfig(interval=20, timeout=10, probe_interval=5, liveness=Liveness.PONG_ONLY)
        )
        (probe,) = _sends(hb.timer_fired(5.0))
        assert isinstance(probe, SendPing)
        (sample,) = hb.handle(PongReceived(now=5.2, payload=probe.payload))
        assert isinstance(sample, RttSample) and sample.rtt == pytest.approx(0.2)
        assert hb.deadline == 10.0  # the next probe; the heartbeat is due at 25.2
        hb.timer_fired(10.0)
        hb.timer_fired(15.0)
        hb.timer_fired(20.0)
        assert hb.deadline == 25.0  # (probes unanswered: 25.2 > 20 + 5)
        hb.timer_fired(25.0)
        assert hb.deadline == 25.2
        hb.timer_fired(25.2)
        assert hb.phase is HeartbeatPhase.AWAITING

    def test_app_style_probes_with_app_pings(self) -> None:
        hb = opened(
            HeartbeatConfig(interval=20, timeout=10, probe_interval=5, style=HeartbeatStyle.APP)
        )
        hb.bytes_received(4.0)
        (probe,) = _sends(hb.handle(TimerFired(now=5.0)))
        assert isinstance(probe, SendAppPing) and probe.seq == 1
        (sample,) = hb.handle(AppPongReceived(now=5.5))
        assert isinstance(sample, RttSample) and sample.rtt == 0.5

    def test_a_probe_goes_out_from_the_last_multiple_of_the_slack_before_it(self) -> None:
        hb = opened(HeartbeatConfig(interval=20, timeout=10, probe_interval=5, timer_slack=0.3))
        hb.bytes_received(4.0)
        assert hb.deadline == 5.0 and hb.wake_at == 4.8  # (16 x 0.3)
        assert hb.timer_fired(4.79) == ()
        assert _sends(hb.timer_fired(4.85))
        assert hb.stats.probes_sent == 1
        hb.pong_received(4.9, b"1")
        assert hb.deadline == 9.85 and hb.wake_at == 9.6  # (32 x 0.3)
        assert hb.timer_fired(9.59) == ()  # within the slack, but before its grid point
        assert _sends(hb.timer_fired(9.6)) and hb.stats.probes_sent == 2

    def test_no_probe_while_reading_is_paused(self) -> None:
        hb = opened(PROBE)
        hb.handle(ReadingPaused(now=1.0))
        assert hb.deadline == 20.0 and hb.wake_at == 20.0
        assert hb.timer_fired(5.0) == ()
        hb.handle(ReadingResumed(now=6.0))
        assert hb.deadline == 5.0  # overdue since 5: at the next timer
        assert _sends(hb.timer_fired(6.0)) and hb.phase is HeartbeatPhase.IDLE

    @pytest.mark.parametrize("how", ["timer_fired", "handle"])
    def test_the_interval_rule_wins_when_it_is_due_first(self, how: str) -> None:
        hb = opened(HeartbeatConfig(interval=3, timeout=2, probe_interval=5))
        assert hb.deadline == 3.0
        if how == "handle":
            hb.handle(TimerFired(now=3.0))  # (the general path)
        else:
            hb.timer_fired(3.0)
        assert hb.phase is HeartbeatPhase.AWAITING and hb.stats.probes_sent == 0

    def test_wake_at_while_awaiting_allows_for_the_next_probe(self) -> None:
        hb = opened(HeartbeatConfig(interval=20, timeout=10, probe_interval=2))
        hb.bytes_received(1.0)
        hb.timer_fired(2.0)  # a probe at 2
        hb.timer_fired(4.0)  # and at 4
        hb.timer_fired(6.0)
        hb.timer_fired(8.0)
        hb.timer_fired(10.0)
        hb.timer_fired(12.0)
        hb.timer_fired(14.0)
        hb.timer_fired(16.0)
        hb.timer_fired(18.0)
        hb.timer_fired(20.0)  # the last probe...
        hb.timer_fired(21.0)  # ...then the interval rule's heartbeat, at 21
        assert hb.phase is HeartbeatPhase.AWAITING and hb.deadline == 31.0
        # A sign of life now would make the next probe due at 23: wake then.
        assert hb.wake_at == 23.0
        hb.handle(ReadingPaused(now=21.5))
        assert hb.wake_at is None  # paused: no deadline, no probe
        hb.handle(ReadingResumed(now=22.0))
        assert hb.wake_at == 23.0
        hb.bytes_received(22.5)
        assert hb.deadline == 23.0

    def test_closing_deadlines_are_the_usual_ones(self) -> None:
        hb = opened(HeartbeatConfig(interval=20, timeout=10, probe_interval=2, close_timeout=3))
        hb.handle(ReadingPaused(now=1.0))
        hb.handle(CloseRequested(now=1.5))
        assert hb.phase is HeartbeatPhase.CLOSING
        assert hb.deadline == hb.wake_at == 4.5  # (paused: no probe either way)
        hb.handle(ReadingResumed(now=1.6))
        assert hb.deadline == hb.wake_at == 4.5  # the probe (due at 2) is no wake-up now
        (abort,) = hb.handle(TimerFired(now=4.5))
        assert type(abort).__name__ == "Abort"

    def test_a_probe_state_is_a_heartbeat_state(self) -> None:
        hb = HeartbeatState(PROBE)
        assert isinstance(hb, HeartbeatState) and hb.config is PROBE

    def test_peer_app_pings_are_counted_apart(self) -> None:
        hb = opened(HeartbeatConfig(probe_interval=5))
        hb.handle(AppPingReceived(now=1.0))
        hb.handle(PingReceived(now=2.0, payload=b"x"))
        stats = hb.stats
        assert stats.peer_pings == 2 and stats.peer_app_pings == 1


class TestPingOnOpen:
    def test_the_first_heartbeat_is_due_at_open(self) -> None:
        hb = HeartbeatState(HeartbeatConfig(interval=3, timeout=1, ping_on_open=True))
        hb.handle(ConnectionOpened(now=7.0))
        assert hb.deadline == 7.0 and hb.wake_at == 7.0
        (ping,) = _sends(hb.timer_fired(7.0))
        assert isinstance(ping, SendPing) and ping.seq == 1
        (sample,) = hb.pong_received(7.25, ping.payload)
        assert isinstance(sample, RttSample) and sample.rtt == 0.25
        assert hb.deadline == 10.25  # then every interval, as usual

    def test_with_jitter_and_fixed_rate_too(self) -> None:
        cfg = HeartbeatConfig(interval=3, timeout=1, ping_on_open=True, fixed_rate=True, jitter=0.5)
        hb = HeartbeatState(cfg, random=lambda: 0.9)
        hb.handle(ConnectionOpened(now=1.0))
        assert hb.deadline == pytest.approx(1.0)
        assert _sends(hb.timer_fired(1.0))


# --------------------------------------------------------------------------- properties


@dataclass
class _Run:
    """One simulated life: when the peer was declared dead (or None), heartbeat times,
    probe times."""

    dead_at: float | None = None
    last_life: float = 0.0  # the last sign of life the liveness setting counts
    beats: list[float] = field(default_factory=list)
    probes: list[float] = field(default_factory=list)
    samples: int = 0


def _simulate(
    config: HeartbeatConfig, traffic: list[float], stop_at: float, rtt: float, horizon: float
) -> _Run:
    """A peer that sends bytes at ``traffic`` times and answers every heartbeat after
    ``rtt``, until ``stop_at`` (then silence); our timer fires exactly at ``wake_at``."""
    hb = opened(config)
    run = _Run()
    inbound = sorted((t, "bytes", b"") for t in traffic if t < stop_at)
    now = 0.0
    while hb.is_open:
        wake = hb.wake_at
        assert wake is not None
        nxt = inbound[0][0] if inbound else math.inf
        if min(wake, nxt) > horizon:
            break
        if nxt < wake:
            now, kind, payload = inbound.pop(0)
            if kind == "bytes":
                hb.bytes_received(now)
                if config.liveness is Liveness.ANY_INBOUND:
                    run.last_life = now
            else:
                actions = hb.pong_received(now, payload)
                answered = any(isinstance(a, RttSample) for a in actions)
                run.samples += answered
                if answered or config.liveness is Liveness.ANY_INBOUND:
                    run.last_life = now
            continue
        now = max(now, wake)
        probes_before = hb.stats.probes_sent
        for action in hb.timer_fired(now):
            if isinstance(action, PeerDead):
                run.dead_at = now
            elif isinstance(action, SendPing):
                if hb.stats.probes_sent > probes_before:
                    run.probes.append(now)
                else:
                    run.beats.append(now)
                if now < stop_at:
                    inbound.append((now + rtt, "pong", action.payload))
                    inbound.sort()
    return run


lives = st.fixed_dictionaries(
    {
        "interval": st.sampled_from([1.0, 3.0, 20.0]),
        "timeout": st.sampled_from([0.5, 2.0, 10.0]),
        "probe": st.sampled_from([0.5, 1.0, 2.5, 5.0, 30.0]),
        "liveness": st.sampled_from(list(Liveness)),
        "traffic": st.lists(st.floats(0.0, 60.0), max_size=40),
        "stop_at": st.floats(0.0, 60.0),
        "rtt": st.sampled_from([0.001, 0.05, 0.4, 3.0]),
    }
)


@settings(max_examples=400, deadline=None)
@given(life=lives, probe_on=st.booleans())
def test_a_probe_never_declares_anyone_dead_sooner(life: dict[str, object], probe_on: bool) -> None:
    """Today's rule, with or without probes: the verdict comes exactly when the heartbeat
    sent ``interval`` after the last sign of life went unanswered for ``timeout``; never
    sooner (up to ``timer_slack``: the early-timer rule lets a heartbeat go out that early),
    whatever probes were sent meanwhile, answered or not."""
    config = HeartbeatConfig(
        interval=life["interval"],  # type: ignore[arg-type]
        timeout=life["timeout"],  # type: ignore[arg-type]
        liveness=life["liveness"],  # type: ignore[arg-type]
        probe_interval=life["probe"] if probe_on else None,  # type: ignore[arg-type]
    )
    run = _simulate(config, life["traffic"], life["stop_at"], life["rtt"], 120.0)  # type: ignore[arg-type]
    # The peer goes silent by 60 s at the latest: it is found dead within 120 s...
    assert run.dead_at is not None
    # ...exactly when today's rule says, probes or not.
    earliest = run.last_life + config.interval + config.timeout
    assert run.dead_at >= earliest - config.slack - 1e-9
    assert run.dead_at <= earliest + 1e-9  # and not later: no verdict is postponed


@settings(max_examples=200, deadline=None)
@given(life=lives)
def test_an_answering_peer_is_never_declared_dead_by_probes(life: dict[str, object]) -> None:
    config = HeartbeatConfig(
        interval=life["interval"],  # type: ignore[arg-type]
        timeout=life["timeout"],  # type: ignore[arg-type]
        liveness=life["liveness"],  # type: ignore[arg-type]
        probe_interval=life["probe"],  # type: ignore[arg-type]
    )
    rtt = min(float(life["rtt"]), float(life["timeout"]) / 2)  # type: ignore[arg-type]
    run = _simulate(config, life["traffic"], math.inf, rtt, 120.0)  # type: ignore[arg-type]
    assert run.dead_at is None


@settings(max_examples=300, deadline=None)
@given(life=lives)
def test_at_most_one_probe_per_probe_interval(life: dict[str, object]) -> None:
    probe = float(life["probe"])  # type: ignore[arg-type]
    config = HeartbeatConfig(
        interval=life["interval"],  # type: ignore[arg-type]
        timeout=life["timeout"],  # type: ignore[arg-type]
        liveness=life["liveness"],  # type: ignore[arg-type]
        probe_interval=probe,
    )
    run = _simulate(config, life["traffic"], life["stop_at"], life["rtt"], 120.0)  # type: ignore[arg-type]
    beats = sorted(run.beats + run.probes)
    for at in run.probes:
        earlier = [b for b in beats if b < at]
        # Each probe comes at least probe_interval (less the timer slack) after the
        # heartbeat before it, whichever kind that was.
        assert not earlier or at - earlier[-1] >= probe - config.slack - 1e-9
    assert len(run.probes) <= 120.0 / probe + 1


@settings(max_examples=200, deadline=None)
@given(
    traffic_every=st.sampled_from([0.1, 0.3, 0.9]),
    probe=st.sampled_from([0.5, 1.0, 2.0]),
    rtt=st.sampled_from([0.001, 0.05, 0.2]),
)
def test_a_busy_answering_peer_gets_a_sample_every_probe_interval(
    traffic_every: float, probe: float, rtt: float
) -> None:
    traffic = [i * traffic_every for i in range(1, int(30 / traffic_every))]
    config = HeartbeatConfig(interval=20, timeout=10, probe_interval=probe)
    run = _simulate(config, traffic, math.inf, rtt, 30.0)
    assert run.dead_at is None and run.beats == []  # busy: the interval rule never fires
    assert run.samples >= int(30 / (probe + rtt)) - 1
