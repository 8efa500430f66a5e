"""Random sequences of every event type, random time steps, and the rules as invariants.

A ``RuleBasedStateMachine`` drives one :class:`HeartbeatState` with a random
configuration. Next to it runs a small model of what the rules allow (when the
last ping went out, whether anything qualifying came since, which actions were
already emitted); every step checks the actions against it.
"""

from __future__ import annotations

import math
import os
import random

from hypothesis import HealthCheck, settings
from hypothesis import event as note_event
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from heartbeat_core import (
    TRANSITIONS,
    Abort,
    Action,
    AppPingReceived,
    AppPongReceived,
    BytesReceived,
    CloseReceived,
    CloseRequested,
    CloseTransport,
    ConnectionClosed,
    ConnectionOpened,
    Event,
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
from heartbeat_core.state import send_from, validate_close

from .helpers import snapshot

_EDGES = {(t.source, t.target) for t in TRANSITIONS}
_OPEN = {HeartbeatPhase.IDLE, HeartbeatPhase.AWAITING, HeartbeatPhase.GRACE}
_INBOUND = (BytesReceived, PingReceived, PongReceived, AppPingReceived, AppPongReceived)
_EPS = 1e-9


def _close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)


@st.composite
def configs(draw: st.DrawFn) -> HeartbeatConfig:
    timeout = draw(st.floats(0.05, 40))
    adaptive = draw(st.booleans())
    interval = draw(st.floats(0.05, 30))
    slack = draw(st.sampled_from([None, 0.0, 0.002, 0.5]))
    return HeartbeatConfig(
        interval=interval,
        timeout=timeout,
        close_timeout=draw(st.sampled_from([0.0, 0.5, 5.0])),
        style=draw(st.sampled_from(HeartbeatStyle)),
        liveness=draw(st.sampled_from(Liveness)),
        fixed_rate=draw(st.booleans()),
        jitter=draw(st.sampled_from([0.0, 0.0, 0.1, 0.5])),
        stall_threshold=draw(st.sampled_from([0.0, 0.25, 2.0])),
        stall_grace=draw(st.sampled_from([0.0, 0.1, 1.0])),
        timer_slack=interval / 4 if slack is not None and slack >= interval / 2 else slack,
        adaptive_timeout=adaptive,
        min_timeout=draw(st.floats(0.01, timeout)) if adaptive else 1.0,
        peer_ping_min_interval=draw(st.sampled_from([0.0, 0.0, 0.05, 1.0])),
        peer_ping_max_strikes=draw(st.sampled_from([0, 2, 20])),
        answer_app_pings=draw(st.booleans()),
        payload_prefix=draw(st.sampled_from([b"", b"p-", b"\x00\xff"])),
    )


steps = st.one_of(
    st.just(0.0),
    st.floats(0.0, 0.1),
    st.floats(0.0, 5.0),
    st.floats(0.0, 100.0),
)


class HeartbeatMachine(RuleBasedStateMachine):
    hb: HeartbeatState

    @initialize(config=configs(), seed=st.integers(0, 2**32 - 1), start_open=st.integers(0, 9))
    def setup(self, config: HeartbeatConfig, seed: int, start_open: int) -> None:
        self.config = config
        self.seed = seed
        self.hb = HeartbeatState(config, random=random.Random(seed).random)
        self.now = 0.0
        self.log: list[tuple[Event, tuple[Action, ...]]] = []
        # The model.
        self.ended = False  # ConnectionClosed accepted
        self.last_ping_at: float | None = None
        self.ping_time: dict[int, float] = {}
        self.acked_seqs: set[int] = set()
        self.acked_high = 0  # the latest heartbeat acknowledged, with or without a sample
        self.last_stray: float | None = None  # peer-ping, for pongs that answer nothing
        self.stray_strikes = 0
        self.pong_floods = 0
        self.payloads: set[bytes] = set()
        self.qualified_since_ping = False  # anything qualifying since the last ping
        self.last_alive = 0.0  # what the interval counts from
        self.emitted: list[type] = []
        self.peer_dead = 0
        self.samples = 0
        self.paused = False  # paused-reading: between ReadingPaused and ReadingResumed
        self.phases_seen = [self.hb.phase]
        self.turn = 0
        if start_open:  # most runs start open, so the heartbeat rules get the steps
            self.feed(ConnectionOpened(now=0.0))

    # ------------------------------------------------------------ feeding

    def feed(self, event: Event) -> tuple[Action, ...] | None:
        hb = self.hb
        before = snapshot(hb)
        phase = hb.phase
        deadline = hb.deadline
        eff_timeout = hb.effective_timeout
        strikes = hb.stats.peer_ping_strikes
        must_raise = (
            not event.now >= hb.last_now
            or self.ended
            or (
                phase is HeartbeatPhase.NEW
                and not isinstance(event, (ConnectionOpened, TimerFired, ConnectionClosed))
            )
            or (isinstance(event, ConnectionOpened) and phase is not HeartbeatPhase.NEW)
        )
        try:
            actions = self.dispatch(event)
        except LocalProtocolError:
            # monotonic-time: misuse raises and changes nothing.
            if not must_raise:  # the only other misuse: a close code or reason that cannot be sent
                assert isinstance(event, CloseRequested), event
                try:
                    validate_close(event.code, event.reason)
                except LocalProtocolError:
                    pass
                else:
                    raise AssertionError(f"{event} raised") from None
            assert snapshot(hb) == before
            return None
        assert not must_raise, f"{event} should have raised"
        self.log.append((event, actions))
        self.check(event, actions, phase, deadline, eff_timeout, strikes)
        return actions

    def dispatch(self, event: Event) -> tuple[Action, ...]:
        """Every other hot event goes through its direct entry point instead of handle();
        the replay in teardown() (all through handle()) proves both agree."""
        hb = self.hb
        self.turn += 1
        if self.turn % 2:
            if isinstance(event, BytesReceived):
                hb.bytes_received(event.now)
                return ()
            if isinstance(event, PongReceived) and not event.solicited:
                return hb.pong_received(event.now, event.payload)
            if isinstance(event, TimerFired):
                return hb.timer_fired(event.now)
        return hb.handle(event)

    def check(
        self,
        event: Event,
        actions: tuple[Action, ...],
        phase: HeartbeatPhase,
        deadline: float | None,
        eff_timeout: float,
        strikes: int,
    ) -> None:
        hb = self.hb
        cfg = self.config
        now = event.now
        after = hb.phase
        if after is not phase:
            assert (phase, after) in _EDGES, f"{phase} -> {after} on {event}"
            self.phases_seen.append(after)

        # Nothing is emitted after the end: Abort is final, CloseTransport only
        # leaves room for an Abort, SendClose / CloseTransport / Abort come once.
        if Abort in self.emitted:
            assert actions == (), actions
        if CloseTransport in self.emitted:
            assert all(type(a) is Abort for a in actions), actions
        kinds = [type(a) for a in actions]
        for once in (SendClose, CloseTransport, Abort, PeerDead):
            assert kinds.count(once) + self.emitted.count(once) <= 1, (once, actions)
        if isinstance(event, ConnectionOpened):
            self.last_alive = now
        # paused-reading: pausing changes no phase and suspends an outstanding
        # heartbeat's deadline; resuming gives it a fresh window from now.
        if isinstance(event, ReadingPaused):
            assert actions == () and after is phase
            if phase in (HeartbeatPhase.AWAITING, HeartbeatPhase.GRACE):
                assert hb.deadline is None
            else:
                assert hb.deadline == deadline
            self.paused = True
        if isinstance(event, ReadingResumed):
            assert actions == ()
            if self.paused and phase in (HeartbeatPhase.AWAITING, HeartbeatPhase.GRACE):
                assert after is HeartbeatPhase.GRACE
                assert hb.deadline == now + eff_timeout
            else:
                assert after is phase and hb.deadline == deadline
            self.paused = False
        if isinstance(event, ConnectionClosed):
            self.ended = True
            assert actions == ()
            assert after is HeartbeatPhase.CLOSED and hb.deadline is None

        # early-timer: a timer before the deadline (or with none) changes nothing,
        # except that a heartbeat goes out from the last multiple of the slack before it.
        if isinstance(event, TimerFired) and (deadline is None or now < deadline):
            if (
                phase is HeartbeatPhase.IDLE
                and deadline is not None
                and now >= send_from(deadline, cfg.slack)
            ):
                assert [type(a) for a in actions] in ([SendPing], [SendAppPing])
            else:
                assert actions == ()
                assert after is phase and hb.deadline == deadline

        qualifying = phase in _OPEN and (
            (isinstance(event, _INBOUND) and cfg.liveness is Liveness.ANY_INBOUND)
            or any(type(a) is RttSample for a in actions)
        )
        if qualifying:
            self.qualified_since_ping = True
            if not cfg.fixed_rate:
                self.last_alive = now

        # peer-ping, for pongs: while open, a pong that acknowledges no outstanding
        # heartbeat and is not marked solicited is stray; one closer than
        # peer_ping_min_interval to the previous stray pong is a strike; one strike
        # past peer_ping_max_strikes closes 1008 "too many pongs". Nothing else is.
        pong_flood = False
        if isinstance(event, PongReceived) and phase in _OPEN:
            acknowledges = [
                n
                for n in range(self.acked_high + 1, hb.seq + 1)
                if cfg.style is HeartbeatStyle.PROTOCOL and event.payload == hb.payload_for(n)
            ]
            if acknowledges:
                self.acked_high = acknowledges[0]
                if acknowledges[0] != hb.seq:  # an earlier heartbeat: no sample, no strike
                    assert actions == (), actions
            elif event.solicited:
                assert actions == (), actions
            else:
                last, self.last_stray = self.last_stray, now
                if last is not None and now - last < cfg.peer_ping_min_interval:
                    self.stray_strikes += 1
                else:
                    self.stray_strikes = 0
                pong_flood = self.stray_strikes > cfg.peer_ping_max_strikes
                if pong_flood:
                    assert actions == (
                        SendClose(code=1008, reason="too many pongs"),
                        CloseTransport(),
                    ), actions
                    self.pong_floods += 1
                else:
                    assert actions == (), actions

        for action in actions:
            if isinstance(action, SendPing | SendAppPing):
                # interval + one-outstanding: only from an IDLE timer at/after the deadline.
                assert isinstance(event, TimerFired) and phase is HeartbeatPhase.IDLE
                assert deadline is not None and now >= send_from(deadline, cfg.slack)
                assert now >= deadline - cfg.slack - _EPS  # (at most the slack early)
                assert action.seq == hb.seq == len(self.ping_time) + 1
                if isinstance(action, SendPing):
                    assert cfg.style is HeartbeatStyle.PROTOCOL
                    assert action.payload == cfg.payload_prefix + str(action.seq).encode()
                    assert action.payload not in self.payloads
                    self.payloads.add(action.payload)
                else:
                    assert cfg.style is HeartbeatStyle.APP
                self.ping_time[action.seq] = now
                self.last_ping_at = now
                self.qualified_since_ping = False
                if cfg.fixed_rate:  # the next is due wait after this one was (or went, late)
                    self.last_alive = deadline if deadline is not None and now < deadline else now
                assert after is HeartbeatPhase.AWAITING
            elif isinstance(action, RttSample):
                assert action.seq == hb.seq and action.seq not in self.acked_seqs
                self.acked_seqs.add(action.seq)
                self.acked_high = action.seq
                assert _close(action.rtt, now - self.ping_time[action.seq]) and action.rtt >= 0
                if isinstance(event, PongReceived):
                    assert cfg.style is HeartbeatStyle.PROTOCOL
                    assert event.payload == hb.payload_for(action.seq)
                else:
                    assert isinstance(event, AppPongReceived)
                    assert cfg.style is HeartbeatStyle.APP
                self.samples += 1
                assert after is HeartbeatPhase.IDLE
            elif isinstance(action, PeerDead):
                # dead-peer: from a timer delivered within stall_threshold of the
                # deadline, >= timeout after the last ping, nothing qualifying since.
                assert isinstance(event, TimerFired) and phase in _OPEN - {HeartbeatPhase.IDLE}
                assert not self.paused, "a peer declared dead while we were not reading"
                assert deadline is not None
                assert deadline <= now and now - deadline <= cfg.stall_threshold
                assert self.last_ping_at is not None
                assert now - self.last_ping_at >= eff_timeout - _EPS
                assert not self.qualified_since_ping
                assert action.seq == hb.seq and action.seq not in self.acked_seqs
                assert _close(action.waited, now - self.last_ping_at)
                assert actions[1:] == (
                    SendClose(code=1011, reason="heartbeat-timeout"),
                    CloseTransport(),
                )
                self.peer_dead += 1
            elif isinstance(action, SendPong):
                assert isinstance(event, PingReceived) and action.payload == event.payload
            elif isinstance(action, SendAppPong):
                assert isinstance(event, AppPingReceived) and cfg.answer_app_pings
            elif isinstance(action, SendClose):
                validate_close(action.code, action.reason)
                if action.code == 1008:
                    # Only from a flood: of peer pings, or of stray pongs.
                    if isinstance(event, PongReceived):
                        assert pong_flood and action.reason == "too many pongs"
                    else:
                        assert isinstance(event, PingReceived | AppPingReceived)
                        assert strikes == cfg.peer_ping_max_strikes
                        assert action.reason == "too many pings"
                    # A flood fails the connection (rule fail): released at once.
                    assert after is HeartbeatPhase.DRAINING
                    assert actions[-1] == CloseTransport()
        self.emitted += kinds

        # peer-ping: while open, every peer ping is answered, unless it is one too many.
        if phase in _OPEN and 1008 not in [getattr(a, "code", None) for a in actions]:
            if isinstance(event, PingReceived):
                assert actions == (SendPong(payload=event.payload),)
            if isinstance(event, AppPingReceived):
                assert actions == ((SendAppPong(),) if cfg.answer_app_pings else ())
        # close-handshake: a close we start, or the transport's release, is bounded.
        if after is not phase and after in (HeartbeatPhase.CLOSING, HeartbeatPhase.DRAINING):
            if Abort in kinds:
                assert hb.deadline is None
            else:
                assert hb.deadline == now + cfg.close_timeout
        # rtt: the stats show the last sample.
        for action in actions:
            if isinstance(action, RttSample):
                assert hb.stats.last_rtt == action.rtt

        # dead-peer, the other way round: a timely timer on an unanswered ping kills.
        if (
            isinstance(event, TimerFired)
            and phase in (HeartbeatPhase.AWAITING, HeartbeatPhase.GRACE)
            and deadline is not None
            and deadline <= now
            and now - deadline <= cfg.stall_threshold
        ):
            assert kinds and kinds[0] is PeerDead, actions
        # late-timer: a late timer on an unanswered ping grants a grace instead.
        if (
            isinstance(event, TimerFired)
            and phase in (HeartbeatPhase.AWAITING, HeartbeatPhase.GRACE)
            and deadline is not None
            and now - deadline > cfg.stall_threshold
        ):
            assert actions == () and after is HeartbeatPhase.GRACE
            assert hb.deadline == now + cfg.stall_grace

    # ------------------------------------------------------------ invariants

    @invariant()
    def deadline_matches_the_phase(self) -> None:
        hb = self.hb
        phase = hb.phase
        deadline = hb.deadline
        cfg = self.config
        if phase in (HeartbeatPhase.NEW, HeartbeatPhase.CLOSED):
            assert deadline is None
        outstanding = phase in (HeartbeatPhase.AWAITING, HeartbeatPhase.GRACE)
        assert hb.reading_paused is self.paused
        if self.paused and outstanding:
            assert deadline is None  # paused-reading: nobody can be declared dead
        elif phase in _OPEN:
            assert deadline is not None
        if phase is HeartbeatPhase.IDLE:
            assert deadline is not None
            wait = deadline - self.last_alive
            low = cfg.interval * (1 - cfg.jitter)
            high = cfg.interval * (1 + cfg.jitter)
            assert low - 1e-6 <= wait <= high + 1e-6, (wait, low, high)
        if phase is HeartbeatPhase.AWAITING and not self.paused:
            assert self.last_ping_at is not None and deadline is not None
            assert _close(deadline, self.last_ping_at + hb.effective_timeout)
            if cfg.adaptive_timeout and self.samples:
                assert cfg.min_timeout <= hb.effective_timeout <= cfg.timeout
            else:
                assert hb.effective_timeout == cfg.timeout

    @invariant()
    def stats_agree(self) -> None:
        s = self.hb.stats
        assert s.pings_sent == self.hb.seq == len(self.ping_time)
        assert s.pongs_received == self.samples
        assert s.misses == self.peer_dead <= 1
        if s.min_rtt is not None:
            assert s.max_rtt is not None and s.srtt is not None and s.rttvar is not None
            assert 0 <= s.min_rtt <= s.max_rtt
            assert s.min_rtt - _EPS <= s.srtt <= s.max_rtt + _EPS
            assert s.rttvar >= 0

    # ------------------------------------------------------------ rules

    @rule(dt=steps)
    def advance(self, dt: float) -> None:
        self.now += dt

    @rule()
    def open(self) -> None:
        self.feed(ConnectionOpened(now=self.now))

    @rule()
    def bytes_received(self) -> None:
        self.feed(BytesReceived(now=self.now))

    @rule(payload=st.binary(max_size=8))
    def ping_received(self, payload: bytes) -> None:
        self.feed(PingReceived(now=self.now, payload=payload))

    @rule(
        kind=st.sampled_from(["match", "stale", "oldest", "future", "zero", "garbage"]),
        junk=st.binary(),
        solicited=st.sampled_from([False, False, True]),
    )
    def pong_received(self, kind: str, junk: bytes, solicited: bool) -> None:
        seq = self.hb.seq
        payload = {
            "match": self.hb.payload_for(seq),
            "stale": self.hb.payload_for(max(seq - 1, 0)),
            # The oldest heartbeat not acknowledged yet: an earlier one when the
            # peer fell behind (still an acknowledgement, never a stray pong).
            "oldest": self.hb.payload_for(self.acked_high + 1),
            "future": self.hb.payload_for(seq + 1),
            "zero": self.config.payload_prefix + b"0" + str(seq).encode(),
            "garbage": junk,
        }[kind]
        self.feed(PongReceived(now=self.now, payload=payload, solicited=solicited))

    @rule(dt=st.floats(0.0, 0.1))
    def answered_late(self, dt: float) -> None:
        """The peer's other traffic holds off the verdict, the next heartbeat goes out,
        then the answer to the earlier one arrives: an acknowledgement, not a stray pong."""
        hb = self.hb
        if self.config.liveness is Liveness.PONG_ONLY:
            return  # only a matching pong ends the wait: no heartbeat is left behind
        if hb.phase is HeartbeatPhase.IDLE:
            self.fire_on_time()  # the earlier heartbeat
        if hb.phase is not HeartbeatPhase.AWAITING:
            return
        earlier = hb.payload_for(hb.seq)
        self.feed(BytesReceived(now=self.now))
        self.fire_on_time()  # the next heartbeat
        self.now += dt
        self.feed(PongReceived(now=self.now, payload=earlier))

    @rule(
        count=st.integers(1, 25),
        gap=st.sampled_from([0.0, 0.01, 0.04, 0.06, 1.0]),
        solicited=st.sampled_from([False, False, False, True]),
    )
    def stray_pongs(self, count: int, gap: float, solicited: bool) -> None:
        """A burst of pongs that answer nothing: a flood when they come too fast."""
        for i in range(count):
            if self.hb.phase not in _OPEN:
                break
            self.now += gap if i else 0.0
            self.feed(PongReceived(now=self.now, payload=b"stray", solicited=solicited))

    @rule()
    def app_ping(self) -> None:
        self.feed(AppPingReceived(now=self.now))

    @rule()
    def app_pong(self) -> None:
        self.feed(AppPongReceived(now=self.now))

    @rule(
        where=st.sampled_from(["at", "before", "slack", "after", "stalled", "very late"]),
        dt=st.floats(0.0, 1.0),
    )
    def timer(self, where: str, dt: float) -> None:
        deadline = self.hb.deadline
        if deadline is not None:
            if where == "at":
                self.now = max(self.now, deadline)
            elif where == "before":
                self.now = max(self.now, deadline - dt)
            elif where == "slack":
                self.now = max(self.now, deadline - dt * self.config.slack)
            elif where == "after":
                self.now = max(self.now, deadline + dt * self.config.stall_threshold)
            elif where == "stalled":
                self.now = max(self.now, deadline + self.config.stall_threshold + dt + _EPS)
            else:
                self.now = max(self.now, deadline + 3600.0 * (1 + dt))
        self.feed(TimerFired(now=self.now))

    @rule()
    def timer_on_time(self) -> None:
        """The common case, weighted up: the timer goes off at the deadline."""
        self.fire_on_time()

    def fire_on_time(self) -> None:
        deadline = self.hb.deadline
        if deadline is not None:
            self.now = max(self.now, deadline)
        self.feed(TimerFired(now=self.now))

    @rule(dt=st.floats(0.0, 2.0))
    def answered(self, dt: float) -> None:
        """The peer answers the outstanding heartbeat after ``dt``."""
        self.now += dt
        if self.config.style is HeartbeatStyle.APP:
            self.feed(AppPongReceived(now=self.now))
        else:
            self.feed(PongReceived(now=self.now, payload=self.hb.payload_for(self.hb.seq)))

    @rule(twice=st.booleans())
    def pause_reading(self, twice: bool) -> None:
        self.feed(ReadingPaused(now=self.now))
        if twice:  # pausing twice is harmless
            self.feed(ReadingPaused(now=self.now))

    @rule(dt=st.floats(0.0, 2.0))
    def resume_reading(self, dt: float) -> None:
        self.now += dt
        self.feed(ReadingResumed(now=self.now))

    @rule(
        code=st.sampled_from([1000, 1001, 1011, 3000, 4999, 1005, 999]),
        reason=st.sampled_from(["", "bye", "é" * 70]),
        really=st.integers(0, 2),
    )
    def close_requested(self, code: int, reason: str, really: int) -> None:
        if really == 0:  # closes end the heartbeat: rarer than other events
            self.feed(CloseRequested(now=self.now, code=code, reason=reason))

    @rule(
        code=st.sampled_from([1000, 1001, 1002, 1005, 1006, 1015, 3001, 4000, 2000]),
        error=st.booleans(),
        really=st.integers(0, 2),
    )
    def close_received(self, code: int, error: bool, really: int) -> None:
        if really == 0:
            self.feed(CloseReceived(now=self.now, code=code, reason="r", error=error))

    @rule(really=st.integers(0, 5))
    def connection_closed(self, really: int) -> None:
        if really == 0:  # the end ends everything: make it rarer than other events
            self.feed(ConnectionClosed(now=self.now))

    @precondition(lambda self: math.isfinite(self.hb.last_now))
    @rule(
        back=st.floats(1e-6, 50.0),
        kind=st.sampled_from(
            [
                BytesReceived,
                TimerFired,
                PongReceived,
                ReadingPaused,
                ReadingResumed,
                ConnectionClosed,
            ]
        ),
    )
    def backwards(self, back: float, kind: type) -> None:
        self.feed(kind(now=self.hb.last_now - back))

    def teardown(self) -> None:
        if not hasattr(self, "hb"):
            return
        for phase in set(self.phases_seen):
            note_event(f"phase {phase.value}")
        for kind in set(self.emitted):
            note_event(f"emitted {kind.__name__}")
        if self.pong_floods:
            note_event("stray-pong flood closed 1008")
        # jitter: the same random source replays to the same actions; without jitter
        # the machine needs no random source at all.
        source = random.Random(self.seed).random if self.config.jitter else None
        replay = HeartbeatState(self.config, random=source)
        for event, actions in self.log:
            assert replay.handle(event) == actions


HeartbeatMachine.TestCase.settings = settings(
    # HEARTBEAT_MACHINE_EXAMPLES=5000 for a long bug hunt; the suite stays fast by default.
    max_examples=int(os.environ.get("HEARTBEAT_MACHINE_EXAMPLES", "150")),
    stateful_step_count=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
TestHeartbeatMachine = HeartbeatMachine.TestCase
