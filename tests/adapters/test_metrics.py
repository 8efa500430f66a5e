"""heartbeat_metrics.HeartbeatMetrics over every driver: one collector, fed by on_event,
read with prometheus_client's own exposition and parser; labels stay bounded."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from heartbeat_metrics import HeartbeatMetrics, code_label
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from heartbeat_core import (
    ConfigError,
    HeartbeatConfig,
    HeartbeatConnection,
    HeartbeatState,
    Role,
)
from heartbeat_core.wsevents import (
    Accepted,
    Closed,
    CloseTransport,
    Closing,
    PeerDead,
    Request,
    RttSample,
)
from tests.adapters.drivers import DRIVERS, Driver, make_driver
from tests.support.peers import open_websocket
from tests.support.waiting import wait_until


def scrape(registry: CollectorRegistry) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of the exposition, parsed by prometheus_client's parser."""
    text = generate_latest(registry).decode("utf-8")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: dict[Any, float], name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.fixture(params=DRIVERS)
def driver(request: pytest.FixtureRequest) -> Iterator[Driver]:
    with make_driver(request.param) as made:
        yield made


def test_one_collector_counts_a_servers_connections(driver: Driver) -> None:
    registry = CollectorRegistry()
    metrics = HeartbeatMetrics(registry=registry)
    # Clients ping us every 50 ms (busy), so only the probe (every 0.1 s) measures RTT.
    config = HeartbeatConfig(interval=5, timeout=2, probe_interval=0.1)
    handle = driver.serve(config=config, on_event=metrics.on_event)
    try:
        client_cfg = HeartbeatConfig(interval=0.05, timeout=2)
        clients = [driver.connect(handle.uri, config=client_cfg) for _ in range(2)]
        wait_until(
            lambda: value(scrape(registry), "heartbeat_rtt_seconds_count", role="server") >= 4,
            10,
            "probes answered on both connections",
        )
        now = scrape(registry)
        assert value(now, "heartbeat_connections_open", role="server") == 2
        assert value(now, "heartbeat_connections_opened_total", role="server") == 2
        assert value(now, "heartbeat_probes_sent_total", role="server") >= 4
        assert value(now, "heartbeat_peer_pings_received_total", role="server") >= 2
        for client in clients:
            client.close(1000)
        wait_until(
            lambda: value(scrape(registry), "heartbeat_connections_open", role="server") == 0,
            10,
            "both closes counted",
        )
        done = scrape(registry)
        assert value(done, "heartbeat_closes_total", role="server", code="1000", by="remote") == 2
        # Counters never go back: what the open connections had sent is kept.
        sent_open = value(now, "heartbeat_heartbeats_sent_total", role="server")
        assert value(done, "heartbeat_heartbeats_sent_total", role="server") >= sent_open
    finally:
        handle.close()


def test_a_thousand_distinct_paths_and_peers_add_no_series() -> None:
    import heartbeat_threading

    registry = CollectorRegistry()
    metrics = HeartbeatMetrics(registry=registry)

    def handler(conn: Any) -> None:
        for _ in conn:
            pass

    server = heartbeat_threading.serve(
        handler, "127.0.0.1", 0, on_event=metrics.on_event, config=HeartbeatConfig(timeout=2)
    )
    try:
        first = open_websocket(server.port, "/room/0?user=0")
        wait_until(lambda: value(scrape(registry), "heartbeat_connections_open", role="server"))
        series = set(scrape(registry))
        first.close()
        peers = set()
        for i in range(1, 1001):
            sock = open_websocket(server.port, f"/room/{i}?user={i}", timeout=5)
            peers.add(sock.getsockname())
            sock.close()  # (no close frame: each ends 1006, by the remote side)
        # Ports of closed sockets may come round again; hundreds of peers still differ.
        assert len(peers) > 100
        wait_until(
            lambda: (
                value(scrape(registry), "heartbeat_connections_opened_total", role="server") == 1001
                and value(scrape(registry), "heartbeat_connections_open", role="server") == 0
            ),
            20,
            "1,001 connections opened and closed",
        )
        after = scrape(registry)
        # The closes' (code, by) pair is the only new label set: the same for all 1,001.
        new = set(after) - series
        assert {dict(labels).get("code") for _, labels in new} == {"1006"}, new
        assert len(new) == 1, new
        assert not any("room" in str(key) or "127.0.0.1" in str(key) for key in after)
    finally:
        server.close(timeout=2)


class _Stub:
    def __init__(self) -> None:
        self.core = HeartbeatConnection(Role.SERVER)


def test_closes_floods_and_dead_peers_from_events() -> None:
    registry = CollectorRegistry()
    metrics = HeartbeatMetrics(registry=registry, namespace="ws", buckets=(0.01, 0.1))
    a, b, c = _Stub(), _Stub(), _Stub()
    metrics.on_event(a, Request(host="h", target="/x?t=1"))
    metrics.on_event(a, CloseTransport())  # (a request and its answer: not open yet)
    for conn in (a, b, c):
        metrics.on_event(conn, Accepted())
        metrics.on_event(conn, Accepted())  # (once only)
    metrics.on_event(a, RttSample(seq=1, rtt=0.005))
    metrics.on_event(a, RttSample(seq=2, rtt=0.05))
    metrics.on_event(a, RttSample(seq=3, rtt=5.0))
    metrics.on_event(b, PeerDead(seq=1, waited=2.0))
    metrics.on_event(b, Closing(code=1011, reason="heartbeat-timeout", by_peer=False))
    metrics.on_event(b, Closed(code=1011, reason="heartbeat-timeout", by="local"))
    metrics.on_event(c, Closing(code=1008, reason="too many pings", by_peer=False))
    metrics.on_event(c, Closed(code=1008, reason="too many pings", by="local"))
    metrics.on_event(c, Closed(code=1008, reason="too many pings", by="local"))  # (counted once)
    metrics.on_event(a, Closing(code=1008, reason="too many pongs", by_peer=False))
    metrics.on_event(a, Closed(code=4321, reason="", by="remote"))
    metrics.on_event(_Stub(), Closed(code=1006, reason="", by="local"))  # never opened
    s = scrape(registry)
    assert value(s, "ws_rtt_seconds_bucket", role="server", le="0.01") == 1
    assert value(s, "ws_rtt_seconds_bucket", role="server", le="0.1") == 2
    assert value(s, "ws_rtt_seconds_bucket", role="server", le="+Inf") == 3
    assert value(s, "ws_rtt_seconds_sum", role="server") == pytest.approx(5.055)
    assert value(s, "ws_dead_peers_total", role="server") == 1
    assert value(s, "ws_flood_closes_total", role="server", kind="ping") == 1
    assert value(s, "ws_flood_closes_total", role="server", kind="pong") == 1
    assert value(s, "ws_closes_total", role="server", code="1011", by="local") == 1
    assert value(s, "ws_closes_total", role="server", code="4xxx", by="remote") == 1
    assert value(s, "ws_connections_opened_total", role="server") == 3
    assert value(s, "ws_connections_open", role="server") == 0
    assert {f.name for f in metrics.describe()} == {f.name for f in metrics.collect()}


@pytest.mark.parametrize(
    ("code", "label"),
    [(1000, "1000"), (1015, "1015"), (4000, "4000"), (3001, "3xxx"), (4999, "4xxx"),
     (1016, "other"), (2999, "other"), (5000, "other")],
)  # fmt: skip
def test_close_codes_fall_in_at_most_20_labels(code: int, label: str) -> None:
    assert code_label(code) == label
    assert len({code_label(c) for c in range(0, 70000)}) == 16 + 1 + 3


@pytest.mark.parametrize(
    "kwargs", [{"buckets": ()}, {"buckets": (0.1, 0.1)}, {"buckets": (0,)}, {"namespace": "a-b"}]
)
def test_bad_arguments_raise_config_error(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        HeartbeatMetrics(**kwargs)


class _Runner:
    def __init__(self) -> None:
        self.state = HeartbeatState(HeartbeatConfig(probe_interval=1.0))


class FrameworkClientConnection:  # an integration's connection: its runner as .heartbeat
    def __init__(self) -> None:
        self.heartbeat = _Runner()


def test_integrations_connections_are_counted_from_their_events() -> None:
    registry = CollectorRegistry()
    metrics = HeartbeatMetrics(registry=registry)
    client = FrameworkClientConnection()
    scope = {"type": "websocket", "state": {"heartbeat": _Runner()}}  # ASGI: a dict
    opaque = object()  # anything else: counted from events alone
    for conn in (client, scope, opaque):
        metrics.on_event(conn, RttSample(seq=1, rtt=0.002))
    s = scrape(registry)
    assert value(s, "heartbeat_connections_open", role="client") == 1
    assert value(s, "heartbeat_connections_open", role="server") == 2
    metrics.on_event(scope, Closed(code=1000, reason="", by="remote"))
    metrics.on_event(FrameworkClientConnection(), Closed(code=1006, reason="", by="remote"))
    s = scrape(registry)
    assert value(s, "heartbeat_closes_total", role="server", code="1000", by="remote") == 1
    # An integration's connection is open once it exists: even one whose first event is
    # its close counts as opened.
    assert value(s, "heartbeat_connections_opened_total", role="client") == 2
    assert value(s, "heartbeat_connections_open", role="client") == 1
