"""The dashboard's registry outside asyncio: importing it loads no asyncio, and the
threading driver feeds it (``on_event`` on the I/O thread, snapshots from another)."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import pytest
from heartbeat_cli.registry import ConnectionRegistry
from heartbeat_threading import Connection, connect, serve

from heartbeat_core import Closed, ConnectionEvent, HeartbeatConfig
from heartbeat_core.errors import ConnectionClosedError
from tests.cli.harness import SLACK, child_env


def echo(conn: Connection) -> None:
    try:
        for message in conn:
            conn.send(message)
    except ConnectionClosedError:
        pass


def test_the_registry_loads_no_asyncio() -> None:
    code = (
        "import sys, heartbeat_cli.registry; "
        "print(sorted(m for m in sys.modules "
        "if m.split('.')[0] in ('asyncio', 'heartbeat_asyncio')))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=SLACK,
        check=True,
    )
    assert result.stdout.strip() == "[]", result.stdout


def test_the_threading_driver_feeds_the_registry() -> None:
    registry = ConnectionRegistry()
    closed = threading.Event()

    def on_event(conn: Connection, event: ConnectionEvent) -> None:
        registry.on_event(conn, event)
        if isinstance(event, Closed):
            closed.set()

    config = HeartbeatConfig(interval=0.05, timeout=0.5, close_timeout=0.5)
    with serve(echo, "127.0.0.1", 0, config=config, on_event=on_event) as server:
        with connect(f"ws://127.0.0.1:{server.port}/room?token=secret") as client:
            end = time.monotonic() + SLACK
            while True:  # snapshots from this thread while the I/O thread feeds the registry
                rows = registry.snapshot()["rows"]
                if rows and rows[0]["last_rtt_ms"] is not None:
                    break
                assert time.monotonic() < end, rows
                time.sleep(0.01)
            (row,) = rows
            assert (row["path"], row["style"], row["kind"]) == ("/room", "frames", "client")
            assert row["state"] != "closed" and row["pongs"] >= 1
            client.close()
        assert closed.wait(SLACK)
    snapshot = registry.snapshot()
    assert snapshot["open"] == 0 and snapshot["samples"]
    (row,) = snapshot["rows"]
    assert (row["state"], row["code"], row["by"]) == ("closed", 1000, "remote")


@pytest.mark.parametrize(
    ("peer_pings", "peer_app_pings", "style"),
    [(0, 0, "none"), (3, 0, "frames"), (2, 2, "app"), (5, 2, "both")],
)
def test_each_connection_shows_the_peers_own_heartbeat_style(
    peer_pings: int, peer_app_pings: int, style: str
) -> None:
    from heartbeat_cli.registry import peer_style

    from heartbeat_core import HeartbeatStats

    stats = HeartbeatStats(peer_pings=peer_pings, peer_app_pings=peer_app_pings)
    assert peer_style(stats) == style
