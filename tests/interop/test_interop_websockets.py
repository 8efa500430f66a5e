"""Our adapters against websockets 17, whose own keepalive is on in both roles.

websockets pings every ``ping_interval`` whatever the traffic, and closes with 1011 when a
pong takes longer than ``ping_timeout``. Our side runs ``fixed_rate`` heartbeats (otherwise
their pings, arriving more often than our interval, would keep ours from ever being sent),
so both keepalives run at once over several intervals.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from heartbeat_core import Closed, HeartbeatConfig, RttSample
from tests.support.versions import HAS_WEBSOCKETS, WEBSOCKETS_REASON
from tests.support.waiting import wait_until

from .harness import (
    ECHO_SAMPLES,
    SLACK,
    AdapterShim,
    LoopThread,
    Recorder,
    assert_echoes,
    assert_plausible_rtts,
    rtt_summary,
)
from .integrations import shim_for
from .peers import WebsocketsClientPeer, WebsocketsServerPeer

pytestmark = [pytest.mark.interop, pytest.mark.skipif(not HAS_WEBSOCKETS, reason=WEBSOCKETS_REASON)]

PEER_PING_INTERVAL = 0.2
PEER_PING_TIMEOUT = 0.5
#: Heartbeats (ours) and keepalive pings (theirs) to see before calling it "several intervals".
ROUNDS = 6


@pytest.fixture(params=["asyncio", "threading", "websockets-integration"])
def adapter(request: pytest.FixtureRequest) -> Iterator[Any]:
    """Our two adapters, and the integration this framework has (our heartbeat inside
    the framework, talking to the same framework with its own keepalive on)."""
    shim = shim_for(request.param)
    try:
        yield shim
    finally:
        shim.shutdown()


def our_config() -> HeartbeatConfig:
    return HeartbeatConfig(interval=0.25, timeout=1.0, close_timeout=1.0, fixed_rate=True)


def test_our_client_and_websockets_server_keep_each_other_alive(
    adapter: AdapterShim, peer_loop: LoopThread, figures: dict[str, Any]
) -> None:
    peer = WebsocketsServerPeer(peer_loop, PEER_PING_INTERVAL, PEER_PING_TIMEOUT)
    try:
        events = Recorder()
        client = adapter.connect(peer.url, our_config(), events)
        assert_echoes(client.send, client.recv)

        # Nobody calls recv() from here on: heartbeats must run without the application reading.
        events.wait_for(RttSample, timeout=ROUNDS * 0.25 + SLACK, count=ROUNDS)
        wait_until(lambda: client.stats.peer_pings >= ROUNDS, SLACK, "websockets' pings")

        # Nobody timed anybody out.
        assert client.close_code is None
        assert events.dead == []
        assert peer.open_count() == 1
        assert peer.ended() == []
        # We answered their pings: websockets measured its latency from our pongs.
        (their_latency,) = peer.latencies()
        assert 0 < their_latency < 0.5
        stats = client.stats
        assert stats.misses == 0
        assert_plausible_rtts(events.rtts, client.latency)
        # ping() is separate from the heartbeat and reports its own RTT.
        assert 0 < client.ping() < 0.5

        client.close(1000, "done")
        wait_until(lambda: bool(peer.ended()), SLACK, "the websockets handler to end")
        (ended,) = peer.ended()
        assert (ended.code, ended.reason) == (1000, "done")
        assert client.close_code == 1000
        assert client.closed_by == "local"
        figures.update(
            ours=rtt_summary(events.rtts),
            our_srtt_ms=round(stats.srtt * 1000, 3) if stats.srtt else None,
            their_pings_answered=stats.peer_pings,
            their_latency_ms=round(their_latency * 1000, 3),
        )
    finally:
        peer.close()


def test_websockets_client_and_our_server_keep_each_other_alive(
    adapter: AdapterShim, peer_loop: LoopThread, figures: dict[str, Any]
) -> None:
    server = adapter.serve(our_config())
    peer = WebsocketsClientPeer(peer_loop, server.url, PEER_PING_INTERVAL, PEER_PING_TIMEOUT)
    try:
        for sample in ECHO_SAMPLES:
            assert peer.echo(sample) == sample
        events = server.recorder
        events.wait_for(RttSample, timeout=ROUNDS * 0.25 + SLACK, count=ROUNDS)

        def answered() -> int:
            return sum(s.peer_pings for s in server.connection_stats())

        wait_until(lambda: answered() >= ROUNDS, SLACK, "websockets' pings to reach our server")
        # Their connection stays open and their latency comes from our pongs.
        assert peer.is_open
        assert peer.ended is None
        latency = peer.latency
        assert 0 < latency < 0.5
        # Ours did not time them out either.
        assert events.dead == []
        assert events.closed == []
        assert server.open_connections == 1
        (stats,) = server.connection_stats()
        assert_plausible_rtts(events.rtts, stats.srtt)

        peer.close(1000)
        (closed,) = events.wait_for(Closed, timeout=SLACK)
        assert closed.code == 1000
        assert closed.by == "remote"
        assert peer.ended is not None
        assert peer.ended.code == 1000
        figures.update(
            ours=rtt_summary(events.rtts),
            their_pings_answered=stats.peer_pings,
            their_latency_ms=round(latency * 1000, 3),
        )
    finally:
        peer.close()
