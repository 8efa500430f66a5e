"""heartbeat_metrics.HeartbeatMetrics fed by the framework integrations' ``on_event``
(websockets, aiohttp, ASGI under uvicorn): one collector, the same series as with our own
drivers, while a peer in a child process exchanges heartbeats, then freezes (SIGSTOP)."""

from __future__ import annotations

import asyncio
import sys

import pytest
from heartbeat_metrics import HeartbeatMetrics
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from heartbeat_core import Closed, HeartbeatStyle, PeerDead, RttSample

from .harness import Child
from .test_integration_servers import SERVERS, config

pytestmark = [
    pytest.mark.interop,
    pytest.mark.skipif(sys.version_info < (3, 11), reason="websockets 17 needs Python 3.11"),
]


def series(registry: CollectorRegistry) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = generate_latest(registry).decode("utf-8")
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


@pytest.mark.parametrize("server", ["websockets", "aiohttp", "asgi-uvicorn-websockets"])
def test_one_collector_counts_an_integrations_connection(server: str) -> None:
    factory, styles = SERVERS[server]
    registry = CollectorRegistry()
    metrics = HeartbeatMetrics(registry=registry)
    style = HeartbeatStyle.APP if HeartbeatStyle.APP in styles else styles[0]

    async def main() -> None:
        async with factory(config(style)) as served:
            served.also = metrics.on_event
            child = Child("client", "127.0.0.1", str(served.port), served.path)
            try:
                await child.wait("ready")
                await served.wait(RttSample, count=2)
                now = series(registry)
                role = (("role", "server"),)
                assert now[("heartbeat_connections_open", role)] == 1
                assert now[("heartbeat_rtt_seconds_count", role)] >= 2
                assert now[("heartbeat_heartbeats_sent_total", role)] >= 2  # (its runner's)
                child.freeze()
                await served.wait(PeerDead)
                await served.wait(Closed)
                await asyncio.sleep(0.05)
                done = series(registry)
                assert done[("heartbeat_dead_peers_total", role)] == 1
                assert done[("heartbeat_connections_open", role)] == 0
                closes = {
                    dict(labels)["code"]: v
                    for (name, labels), v in done.items()
                    if name == "heartbeat_closes_total"
                }
                assert sum(closes.values()) == 1, closes
            finally:
                child.stop()

    asyncio.run(main())
