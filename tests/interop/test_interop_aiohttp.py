"""Our adapters against aiohttp 3.14 with ``heartbeat=`` on, in both roles.

aiohttp pings only after ``heartbeat`` seconds without inbound data and gives the pong
``heartbeat / 2``. Our fixed-rate interval is a little longer than theirs, so both sides
take turns pinging and both keepalives are exercised.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from heartbeat_core import Closed, HeartbeatConfig, RttSample
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
from .peers import AiohttpClientPeer, AiohttpServerPeer

pytestmark = pytest.mark.interop

#: aiohttp's heartbeat; it waits heartbeat / 2 = 0.2 s for each pong.
PEER_HEARTBEAT = 0.4
OUR_INTERVAL = 0.5
ROUNDS = 3


@pytest.fixture(params=["asyncio", "threading", "aiohttp-integration"])
def adapter(request: pytest.FixtureRequest) -> Iterator[Any]:
    """Our two adapters, and the integration this framework has (our heartbeat inside
    the framework, talking to the same framework with its own keepalive on)."""
    shim = shim_for(request.param)
    try:
        yield shim
    finally:
        shim.shutdown()


def our_config() -> HeartbeatConfig:
    return HeartbeatConfig(interval=OUR_INTERVAL, timeout=1.0, close_timeout=1.0, fixed_rate=True)


def test_our_client_and_aiohttp_server_keep_each_other_alive(
    adapter: AdapterShim, peer_loop: LoopThread, figures: dict[str, Any]
) -> None:
    peer = AiohttpServerPeer(peer_loop, PEER_HEARTBEAT)
    try:
        events = Recorder()
        client = adapter.connect(peer.url, our_config(), events)
        assert_echoes(client.send, client.recv)

        # Nobody calls recv() from here on: heartbeats must run without the application reading.
        events.wait_for(RttSample, timeout=ROUNDS * OUR_INTERVAL + SLACK, count=ROUNDS)
        wait_until(lambda: client.stats.peer_pings >= ROUNDS, SLACK, "aiohttp's heartbeats")

        assert client.close_code is None
        assert events.dead == []
        assert peer.open_count() == 1
        assert peer.ended() == []
        stats = client.stats
        assert stats.misses == 0
        assert_plausible_rtts(events.rtts, client.latency)

        client.close(1000)
        wait_until(lambda: bool(peer.ended()), SLACK, "the aiohttp handler to end")
        (ended,) = peer.ended()
        assert ended.code == 1000
        assert ended.error is None
        figures.update(ours=rtt_summary(events.rtts), their_pings_answered=stats.peer_pings)
    finally:
        peer.close()


def test_aiohttp_client_and_our_server_keep_each_other_alive(
    adapter: AdapterShim, peer_loop: LoopThread, figures: dict[str, Any]
) -> None:
    server = adapter.serve(our_config())
    peer = AiohttpClientPeer(peer_loop, server.url, PEER_HEARTBEAT)
    try:
        for sample in ECHO_SAMPLES:
            assert peer.echo(sample) == sample
        events = server.recorder
        events.wait_for(RttSample, timeout=ROUNDS * OUR_INTERVAL + SLACK, count=ROUNDS)

        def answered() -> int:
            return sum(s.peer_pings for s in server.connection_stats())

        wait_until(lambda: answered() >= ROUNDS, SLACK, "aiohttp's heartbeats to reach us")
        assert peer.is_open
        assert peer.ended is None
        assert events.dead == []
        assert events.closed == []
        (stats,) = server.connection_stats()
        assert_plausible_rtts(events.rtts, stats.srtt)

        peer.close(1000)
        (closed,) = events.wait_for(Closed, timeout=SLACK)
        assert closed.code == 1000
        assert closed.by == "remote"
        figures.update(ours=rtt_summary(events.rtts), their_pings_answered=stats.peer_pings)
    finally:
        peer.close()
