"""heartbeat_core.testing.simulate: the real rules on a simulated link, with faults.

Every expectation here is worked out from the rules (rule names as in
heartbeat_core.state) and the link's figures, not read off a run.
"""

from __future__ import annotations

import itertools
import math

import pytest

from heartbeat_core import ConfigError, HeartbeatConfig, HeartbeatStyle, Liveness
from heartbeat_core.testing import (
    Cut,
    Distribution,
    Ending,
    Link,
    Path,
    Proxy,
    Scenario,
    Side,
    Stall,
    StallKind,
    Vanish,
    assert_detected_within,
    assert_no_false_positive,
    assert_no_proxy_cut,
    detection_bound,
    simulate,
)

CFG = HeartbeatConfig(interval=20, timeout=10)
STYLES = [HeartbeatStyle.PROTOCOL, HeartbeatStyle.APP]


def only(side: Side, config: HeartbeatConfig = CFG, **kw: object) -> Scenario:
    """``side`` sends heartbeats; the other end only answers."""
    if side is Side.SERVER:
        return Scenario(client=None, server=config, **kw)  # type: ignore[arg-type]
    return Scenario(client=config, server=None, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize("style", STYLES)
@pytest.mark.parametrize("side", list(Side))
def test_a_healthy_link_pings_every_interval_plus_rtt(style: HeartbeatStyle, side: Side) -> None:
    """Rule interval: the next heartbeat is due interval after the pong (the last sign of
    life), so with a fixed 100 ms RTT each round takes 20.1 s."""
    cfg = HeartbeatConfig(interval=20, timeout=10, style=style)
    res = simulate(only(side, cfg, link=Link.symmetric(rtt=0.1), duration=2010.0 + 1e-6))
    assert res.ending is Ending.HORIZON and res.verdict is None
    me = res.server if side is Side.SERVER else res.client
    peer = res.client if side is Side.SERVER else res.server
    assert me.heartbeats == 100 == peer.answers  # at 20, 40.1, ..., 1989.9 + ...: 100 rounds
    assert me.stats is not None and me.stats.pongs_received == 100
    assert me.stats.min_rtt == pytest.approx(0.1) and me.stats.max_rtt == pytest.approx(0.1)
    assert peer.stats is None and peer.heartbeats == 0 and peer.wakeups == 0
    assert me.wakeups == 100  # one wake-up per heartbeat: nothing else is due
    # Bytes: a client masks (6-byte headers), a server does not (2 bytes).
    if style is HeartbeatStyle.PROTOCOL:
        ping = sum(len(b"%d" % n) for n in range(1, 101))
        mine, theirs = (2, 6) if side is Side.SERVER else (6, 2)
        assert me.heartbeat_bytes == 100 * mine + ping
        assert peer.heartbeat_bytes == 100 * theirs + ping
    else:
        assert me.heartbeat_bytes == 100 * ((2 if side is Side.SERVER else 6) + 15)


def test_same_seed_same_run_and_seeds_differ() -> None:
    sc = Scenario(link=Link.symmetric(rtt=0.08, jitter=0.04, loss=0.05), duration=3600.0)
    a, b, c = simulate(sc, seed=7), simulate(sc, seed=7), simulate(sc, seed=8)
    assert a == b
    assert a.client.stats != c.client.stats


def test_both_ends_heartbeating_each_count_the_others_pings() -> None:
    """Any inbound byte is a sign of life (Liveness.ANY_INBOUND): the peer's ping restarts
    our interval, so two ends at the same interval share the work."""
    res = simulate(Scenario(link=Link.symmetric(rtt=0.1), duration=3600.0))
    total = res.client.heartbeats + res.server.heartbeats
    assert res.verdict is None
    assert 3600 / 20.2 <= total <= 2 * 3600 / 20
    assert res.client.answers == res.server.heartbeats


@pytest.mark.parametrize("style", STYLES)
@pytest.mark.parametrize("detector", list(Side))
def test_a_vanished_peer_is_found_within_the_bound(style: HeartbeatStyle, detector: Side) -> None:
    cfg = HeartbeatConfig(interval=20, timeout=10, style=style, jitter=0.1)
    for seed in range(20):
        sc = Scenario(
            client=cfg,
            server=cfg,
            link=Link.symmetric(rtt=0.2, jitter=0.1),
            faults=(Vanish(side=detector.other, at=500.0 + 7 * seed),),
            duration=1000.0,
        )
        res = simulate(sc, seed=seed)
        assert res.ending is Ending.PEER_DEAD and not res.false_positive
        assert res.verdict is not None and res.verdict.side is detector
        assert res.verdict.waited == pytest.approx(10.0)  # rule dead-peer: exactly the timeout
        assert_detected_within(res, detection_bound(cfg, one_way_delay=0.15))
        assert res.detection is not None and res.detection >= cfg.timeout


def test_a_stall_shorter_than_the_timeout_is_survived_and_a_longer_one_is_not() -> None:
    link = Link.symmetric(rtt=0.1)
    # The answering client freezes just as a ping leaves (at 20 s) for 9.8 s: the pong
    # goes at 29.85 s, arrives at 29.9 s, before the 30 s deadline.
    short = simulate(
        only(
            Side.SERVER,
            link=link,
            faults=(Stall(side=Side.CLIENT, at=19.0, duration=10.85),),
            duration=100.0,
        )
    )
    assert_no_false_positive(short)
    assert short.server.stats is not None
    assert short.server.stats.max_rtt == pytest.approx(9.9)
    long = simulate(
        only(
            Side.SERVER,
            link=link,
            faults=(Stall(side=Side.CLIENT, at=19.0, duration=11.0),),
            duration=100.0,
        )
    )
    assert long.false_positive and long.verdict is not None
    assert long.verdict.at == pytest.approx(30.0) and long.detection is None
    with pytest.raises(AssertionError, match="healthy peer was declared dead"):
        assert_no_false_positive(long)
    with pytest.raises(AssertionError, match="no gone peer was detected"):
        assert_detected_within(long, 100.0)


def test_our_own_stall_gets_the_late_timer_grace() -> None:
    """Rule late-timer: a server frozen past its own deadline reads the pong that
    arrived meanwhile before it judges (the pong counts, nobody is declared dead)."""
    sc = only(
        Side.SERVER,
        link=Link.symmetric(rtt=0.1),
        faults=(Stall(side=Side.SERVER, at=20.05, duration=30.0),),
        duration=200.0,
    )
    res = simulate(sc, record=True)
    assert res.verdict is None
    reads = [e for e in res.events if e.side is Side.SERVER and e.what == "received"]
    assert reads[0].at == pytest.approx(50.05)  # read at the end of the stall
    timers = [e.at for e in res.events if e.side is Side.SERVER and e.what == "timer"]
    assert 50.05 not in timers[:1] or timers[0] == pytest.approx(20.0)
    assert [e.at for e in res.events].count(50.05) >= 1
    assert res.events == tuple(sorted(res.events, key=lambda e: e.at))


def test_a_throttled_tab_still_answers_but_its_timers_wait() -> None:
    """StallKind.TIMERS: the client's own heartbeat waits for the end of the window,
    and the server's pings are still answered in time."""
    stall = Stall(side=Side.CLIENT, at=10.0, duration=100.0, kind=StallKind.TIMERS)
    res = simulate(
        Scenario(
            client=HeartbeatConfig(interval=15, timeout=10),
            server=HeartbeatConfig(interval=20, timeout=10),
            link=Link.symmetric(rtt=0.1),
            faults=(stall,),
            duration=109.0,
        ),
        record=True,
    )
    assert res.verdict is None
    client_timers = [e for e in res.events if e.side is Side.CLIENT and e.what == "timer"]
    assert client_timers == []  # (the client's 15 s timer fell in the window)
    assert res.server.heartbeats >= 4 and res.client.answers == res.server.heartbeats


def test_a_throttled_tab_reads_messages_that_queued_behind_each_other() -> None:
    """StallKind.TIMERS on a slow link: a one-way delay of 2 s keeps two of the server's
    frames in flight to the client at once (say, a pong sent at 9.5 s and a ping at
    11 s), and the client reads each when it arrives, stall or not; none of its own
    heartbeats leaves meanwhile."""
    stall = Stall(side=Side.CLIENT, at=10.0, duration=30.0, kind=StallKind.TIMERS)
    res = simulate(
        Scenario(
            client=HeartbeatConfig(interval=1.5, timeout=10),
            server=HeartbeatConfig(interval=1, timeout=10),
            link=Link.symmetric(rtt=4.0),
            faults=(stall,),
            duration=40.0,
        ),
        record=True,
    )
    assert res.verdict is None
    sent = [e.at for e in res.events if e.side is Side.SERVER and e.what == "sent"]
    overlapping = [(a, b) for a, b in itertools.pairwise(sent) if b < a + 2.0 and a + 2.0 >= 10.0]
    assert overlapping  # (the case this test is about)
    received = [e.at for e in res.events if e.side is Side.CLIENT and e.what == "received"]
    during = [t for t in received if 10.0 <= t < 40.0]
    assert len(during) >= 10
    # Read when they arrive: each exactly one one-way delay after its send.
    arrivals = {round(t + 2.0, 9) for t in sent}
    assert all(round(t, 9) in arrivals for t in during)
    assert not [
        e for e in res.events if e.side is Side.CLIENT and e.what == "timer" and 10.0 <= e.at < 40.0
    ]


def test_proxy_cuts_an_idle_connection_and_keeps_a_busy_one() -> None:
    # The server heartbeats 55 s after the last sign of life; frozen from 54 s to 61 s, its
    # first heartbeat leaves at 61 s, but the proxy has seen nothing since the opening
    # handshake (t=0): it cuts at 60 s. Without the stall: never silent for 60 s.
    cfg = HeartbeatConfig(interval=55, timeout=10)
    base = dict(link=Link.symmetric(rtt=0.1), proxy=Proxy(idle_limit=60.0), duration=600.0)
    fine = simulate(only(Side.SERVER, cfg, **base))
    assert_no_proxy_cut(fine)
    stalled = simulate(
        only(Side.SERVER, cfg, faults=(Stall(side=Side.SERVER, at=54.0, duration=7.0),), **base)
    )
    assert stalled.ending is Ending.PROXY_CUT
    assert stalled.proxy_cut_at == 60.0
    with pytest.raises(AssertionError, match="proxy cut the idle connection"):
        assert_no_proxy_cut(stalled)
    # The client's pings pass the proxy when they reach the server's side.
    client_side = simulate(only(Side.CLIENT, cfg, **base))
    assert client_side.ending is Ending.HORIZON
    # A client heartbeat every 70 s: the proxy cuts at 60 s, before the first one passes.
    slow = simulate(only(Side.CLIENT, HeartbeatConfig(interval=70, timeout=10), **base))
    assert slow.ending is Ending.PROXY_CUT and slow.proxy_cut_at == 60.0
    # Frozen from 50 s to 80 s, the answering server is pinged at 55 s, answers at 80 s:
    # silent from the ping's arrival (55.05 s) for 24.95 s, under the limit: no cut.
    frozen = simulate(
        only(Side.CLIENT, cfg, faults=(Stall(side=Side.SERVER, at=50.0, duration=30.0),), **base)
    )
    assert frozen.ending is not Ending.PROXY_CUT


def test_a_one_way_cut_for_good_is_a_gone_peer() -> None:
    sc = only(
        Side.SERVER,
        link=Link.symmetric(rtt=0.1),
        faults=(Cut(sender=Side.CLIENT, at=100.0),),
        duration=300.0,
    )
    res = simulate(sc)
    assert res.verdict is not None and not res.false_positive
    assert_detected_within(res, detection_bound(CFG, one_way_delay=0.05))
    # The server's own pings still reach the client (it answers into the void).
    assert res.client.answers > res.server.stats.pongs_received  # type: ignore[union-attr]


def test_a_cut_that_heals_delivers_what_it_held_back() -> None:
    sc = only(
        Side.SERVER,
        link=Link.symmetric(rtt=0.1),
        faults=(Cut(sender=Side.SERVER, at=19.0, until=25.0),),
        duration=100.0,
    )
    res = simulate(sc)
    assert res.verdict is None
    assert res.server.stats is not None
    assert res.server.stats.max_rtt == pytest.approx(25.1 - 20.0)  # held 5 s, then on its way
    # A healthy peer behind a cut that heals after the timeout: declared dead, and the
    # verdict is not a false positive (the peer could not be reached).
    late = simulate(
        only(
            Side.SERVER,
            link=Link.symmetric(rtt=0.1),
            faults=(Cut(sender=Side.CLIENT, at=19.0, until=45.0),),
            duration=100.0,
        )
    )
    assert late.verdict is not None and not late.false_positive
    assert late.detection == pytest.approx(30.0 - 19.0)


def test_loss_delays_by_the_retransmission_timeout_and_keeps_the_order() -> None:
    path = Path(delay=0.05, loss=0.2, rto=0.2)
    res = simulate(only(Side.SERVER, link=Link(up=path, down=path), duration=4000.0), seed=3)
    stats = res.server.stats
    assert stats is not None
    assert stats.min_rtt == pytest.approx(0.1)
    # A lost segment adds 0.2, then 0.4, 0.8 ... : every RTT is 0.1 + a sum of those.
    assert stats.max_rtt is not None and stats.max_rtt >= 0.3 - 1e-9
    steps = (stats.max_rtt - 0.1) / 0.2
    assert abs(steps - round(steps)) < 1e-6


def test_bandwidth_spaces_messages_by_their_size() -> None:
    # 10 bytes per second: a server ping of 3 bytes (header 2 + "1") takes 0.3 s to send,
    # the client's pong (6 + 1) 0.7 s.
    slow = Path(bandwidth=10.0)
    res = simulate(only(Side.SERVER, link=Link(up=slow, down=slow), duration=21.5))
    assert res.server.stats is not None
    assert res.server.stats.last_rtt == pytest.approx(0.3 + 0.7)


@pytest.mark.parametrize("distribution", list(Distribution))
def test_delay_distributions_spread_around_the_delay(distribution: Distribution) -> None:
    path = Path(delay=0.1, jitter=0.05, distribution=distribution)
    res = simulate(only(Side.SERVER, link=Link(up=path, down=Path()), duration=20 * 2000.0), seed=1)
    stats = res.server.stats
    assert stats is not None and stats.min_rtt is not None and stats.max_rtt is not None
    assert stats.min_rtt >= 0.0
    if distribution is Distribution.UNIFORM:
        assert 0.05 <= stats.min_rtt < 0.06 and 0.14 < stats.max_rtt <= 0.15
    elif distribution is Distribution.EXPONENTIAL:
        assert 0.1 <= stats.min_rtt < 0.101 and stats.max_rtt > 0.3
    else:
        # One standard deviation is 0.05: beyond it a third of the time, far beyond it never.
        assert stats.min_rtt < 0.05 and 0.15 < stats.max_rtt < 0.1 + 6 * 0.05


def test_pong_only_liveness_and_a_ping_flood_close() -> None:
    """A client pinging every second at a server that allows no strikes (rule
    peer-ping): the server closes with 1008, an ending of its own."""
    strict = HeartbeatConfig(
        interval=60,
        timeout=10,
        peer_ping_min_interval=5,
        peer_ping_max_strikes=0,
        liveness=Liveness.PONG_ONLY,
    )
    res = simulate(
        Scenario(client=HeartbeatConfig(interval=1, timeout=0.5), server=strict, duration=60.0),
        record=True,
    )
    assert res.ending is Ending.CLOSED and res.closed == (Side.SERVER, 1008, "too many pings")
    assert any(e.what == "close" for e in res.events)
    with pytest.raises(AssertionError, match="closed the connection with 1008"):
        assert_detected_within(res, 1.0)


def test_app_heartbeats_to_a_peer_with_heartbeats_of_its_own() -> None:
    app = HeartbeatConfig(interval=20, timeout=10, style=HeartbeatStyle.APP)
    res = simulate(Scenario(client=app, server=app, link=Link.symmetric(rtt=0.1), duration=600.0))
    assert res.verdict is None
    assert res.client.answers + res.server.answers == res.client.heartbeats + res.server.heartbeats


def test_recorded_events_tell_the_story() -> None:
    sc = only(
        Side.SERVER,
        link=Link.symmetric(rtt=0.1),
        faults=(Vanish(side=Side.CLIENT, at=30.0),),
        proxy=Proxy(idle_limit=500.0),
        duration=100.0,
    )
    res = simulate(sc, record=True)
    story = [(e.side, e.what, e.detail) for e in res.events if e.what != "timer"]
    assert story[:4] == [
        (Side.SERVER, "sent", "ping"),
        (Side.CLIENT, "received", "ping"),
        (Side.CLIENT, "sent", "pong"),
        (Side.SERVER, "received", "pong"),
    ]
    assert res.events[-1].what == "dead" and res.events[-1].value == pytest.approx(10.0)
    assert [e.value for e in res.events if e.what == "rtt"] == [pytest.approx(0.1)]
    assert res.hours == pytest.approx(res.end / 3600)


def test_a_message_to_a_vanished_endpoint_is_dropped() -> None:
    # Both ends heartbeat; the client vanishes while the server's ping is in flight.
    sc = Scenario(
        link=Link.symmetric(rtt=1.0),
        faults=(Vanish(side=Side.CLIENT, at=20.2),),
        duration=200.0,
    )
    res = simulate(sc)
    assert res.verdict is not None and res.verdict.side is Side.SERVER
    assert not res.false_positive


def test_the_proxy_cut_fires_at_the_horizon_edge_only_within_it() -> None:
    sc = only(
        Side.SERVER,
        HeartbeatConfig(interval=100, timeout=10),
        proxy=Proxy(idle_limit=50),
        duration=49.0,
    )
    assert simulate(sc).ending is Ending.HORIZON
    res = simulate(
        Scenario(client=None, server=None, proxy=Proxy(idle_limit=5), duration=10), record=True
    )
    assert res.ending is Ending.PROXY_CUT and res.proxy_cut_at == 5.0
    assert [(e.at, e.what) for e in res.events] == [(5.0, "proxy-cut")]


def test_nobody_heartbeating_runs_to_the_horizon() -> None:
    res = simulate(Scenario(client=None, server=None, duration=10.0), start=100.0)
    assert res.ending is Ending.HORIZON and (res.start, res.end) == (100.0, 110.0)
    with pytest.raises(AssertionError, match=r"connection was still open at t=110\.000 s"):
        assert_detected_within(res, 1.0)


def test_faults_before_start_change_nothing() -> None:
    sc = only(Side.SERVER, faults=(Stall(side=Side.CLIENT, at=0.0, duration=50.0),), duration=300.0)
    assert simulate(sc, start=1000.0).verdict is None


def test_overlapping_stalls_chain() -> None:
    sc = only(
        Side.SERVER,
        faults=(
            Stall(side=Side.CLIENT, at=15.0, duration=10.0),
            Stall(side=Side.CLIENT, at=24.0, duration=10.0),
            Stall(side=Side.CLIENT, at=1.0, duration=1.0),
        ),
        duration=100.0,
    )
    res = simulate(sc)
    assert res.false_positive and res.verdict is not None and res.verdict.at == pytest.approx(30.0)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: Path(delay=-1), "delay must be a finite number of seconds >= 0"),
        (lambda: Path(rto=0), "rto must be a finite number of seconds > 0"),
        (lambda: Path(loss=1.0), "loss must be a probability in"),
        (lambda: Path(bandwidth=0), "bandwidth must be a number of bytes per second"),
        (lambda: Path(distribution="normal"), "distribution must be a Distribution"),
        (lambda: Link(up="fast"), "up must be a Path"),
        (lambda: Link.symmetric(rtt=math.nan), "rtt must be a finite number"),
        (lambda: Stall(side="client", at=0, duration=1), "side must be Side.CLIENT"),
        (
            lambda: Stall(side=Side.CLIENT, at=0, duration=0),
            "duration must be a finite number of seconds > 0",
        ),
        (lambda: Stall(side=Side.CLIENT, at=0, duration=1, kind="all"), "kind must be a StallKind"),
        (lambda: Vanish(side=Side.CLIENT, at=-1), "at must be a finite"),
        (lambda: Cut(sender=Side.CLIENT, at=5, until=5), r"until \(5\) must be after at"),
        (lambda: Proxy(idle_limit=True), "idle_limit must be a finite number"),
        (lambda: Scenario(client="default"), "client must be a HeartbeatConfig or None"),
        (lambda: Scenario(link=None), "link must be a Link"),
        (lambda: Scenario(proxy=60), "proxy must be a Proxy or None"),
        (lambda: Scenario(faults=[Vanish(side=Side.CLIENT, at=1)]), "faults must be a tuple"),
        (lambda: Scenario(duration=math.inf), "duration must be a finite number"),
        (lambda: simulate("scenario"), "scenario must be a Scenario"),  # type: ignore[arg-type]
        (lambda: simulate(Scenario(), start=math.nan), "start must be a finite number"),
    ],
)
def test_bad_arguments_raise_config_error_saying_what(make: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        make()  # type: ignore[operator]


def test_side_other() -> None:
    assert Side.CLIENT.other is Side.SERVER and Side.SERVER.other is Side.CLIENT
    assert Stall(side=Side.CLIENT, at=1.0, duration=2.0).until == 3.0
