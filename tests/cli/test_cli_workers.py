"""``heartbeat serve --workers N`` and ``--loop``: real processes on 127.0.0.1, bounded waits.

Two workers share the port (the kernel spreads connections by their addresses, so
clients connect until both workers have one, at most ``MAX_CLIENTS``); one JSON log
stream says which worker wrote each line; one dashboard and one ``/metrics`` cover
both; SIGTERM stops all with exit 0; a worker that dies ends the server with 1.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import heartbeat_threading
import pytest
from heartbeat_cli.app import main

from heartbeat_core import HeartbeatConfig
from tests.cli.harness import SLACK, Command

#: Connections tried before giving up on seeing both workers (each lands on one at random).
MAX_CLIENTS = 64
QUIET = HeartbeatConfig(interval=30, timeout=10)


@pytest.fixture
def cleanup() -> Iterator[list[Any]]:
    """Commands and client connections to end at teardown."""
    started: list[Any] = []
    yield started
    for item in reversed(started):
        if isinstance(item, Command):
            item.kill()
        else:
            item.close()


def start_workers(cleanup: list[Any], *args: str) -> tuple[Command, int]:
    server = Command("serve", "--port", "0", "--log-format", "json", "--workers", "2", *args)
    cleanup.append(server)
    (started,) = server.wait_for("workers")
    assert started["worker"] is None and len(started["pids"]) == 2
    return server, int(started["port"])


def connect_until_both_workers(server: Command, port: int, cleanup: list[Any]) -> None:
    """Open connections (kept open) until each worker logged one."""
    for _ in range(MAX_CLIENTS):
        cleanup.append(heartbeat_threading.connect(f"ws://127.0.0.1:{port}/", config=QUIET))
        opened = len(cleanup) - 1
        server.wait_for("open", count=opened)
        if {r["worker"] for r in server.events("open")} == {1, 2}:
            return
    raise AssertionError(f"one worker took all {MAX_CLIENTS} connections")


def test_two_workers_share_the_port_in_one_log_and_stop_together(cleanup: list[Any]) -> None:
    server, port = start_workers(cleanup, "--no-dashboard", "--no-metrics", "--loop", "asyncio")
    listening = server.wait_for("listening", count=2)
    assert sorted(r["worker"] for r in listening) == [1, 2]
    assert {r["port"] for r in listening} == {port} and {r["loop"] for r in listening} == {
        "asyncio"
    }
    connect_until_both_workers(server, port, cleanup)
    server.signal(signal.SIGTERM)
    assert server.finish() == 0
    records = server.records()  # every line is JSON and says which worker (null: supervisor)
    assert all("worker" in r for r in records), records
    stopped = [r["worker"] for r in records if r["event"] == "stopped"]
    assert sorted(stopped) == [1, 2]
    shutdowns = [r for r in records if r["event"] == "shutdown"]
    assert {r["signal"] for r in shutdowns} == {"SIGTERM"}
    assert sum(r["connections"] for r in shutdowns) == len(cleanup) - 1
    for pid in server.events("workers")[0]["pids"]:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def _feed_snapshot(port: int, wanted: int) -> dict[str, Any]:
    """The dashboard's feed until a snapshot counts ``wanted`` open client connections."""
    feed = heartbeat_threading.connect(f"ws://127.0.0.1:{port}/_dashboard", config=QUIET)
    try:
        end = time.monotonic() + SLACK
        while time.monotonic() < end:
            message = json.loads(feed.recv(SLACK))
            if message["type"] != "snapshot":
                continue
            clients = [r for r in message["rows"] if r["kind"] == "client"]
            if len(clients) >= wanted:
                return message
        raise AssertionError("no snapshot with every worker's connections")
    finally:
        feed.close()


def test_one_dashboard_and_one_metrics_cover_every_worker(cleanup: list[Any]) -> None:
    server, port = start_workers(cleanup, "--interval", "0.2")
    connect_until_both_workers(server, port, cleanup)
    clients = len(cleanup) - 1
    # Whichever worker the feed lands on shows the other's connections too (ids are
    # numbered 1, 3, 5... in worker 1 and 2, 4, 6... in worker 2).
    snap = _feed_snapshot(port, clients)
    ids = [r["id"] for r in snap["rows"] if r["kind"] == "client"]
    assert {i % 2 for i in ids} == {0, 1}, ids
    assert snap["open"] >= clients
    # /metrics: every worker's figures, labelled, whichever worker answers.
    end = time.monotonic() + SLACK
    while True:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=SLACK) as got:
            text = got.read().decode()
        opened = [
            line for line in text.splitlines()
            if line.startswith('heartbeat_connections_opened_total{role="server"')
        ]  # fmt: skip
        counted = sum(float(line.split()[-1]) for line in opened)
        if (len(opened) == 2 and counted >= clients) or time.monotonic() > end:
            break  # (a scrape makes the other worker report every 2 s)
        time.sleep(0.2)
    assert sorted(line.split('worker="')[1][0] for line in opened) == ["1", "2"], text
    assert sum(float(line.split()[-1]) for line in opened) >= clients
    server.signal(signal.SIGINT)
    assert server.finish() == 0


def test_a_worker_that_dies_is_reported_and_the_server_exits_1(cleanup: list[Any]) -> None:
    server, _ = start_workers(cleanup, "--no-dashboard", "--no-metrics")
    server.wait_for("listening", count=2)
    victim = server.events("workers")[0]["pids"][0]
    os.kill(victim, signal.SIGKILL)
    (report,) = server.wait_for("worker-exit")
    assert report["pid"] == victim and report["code"] == -signal.SIGKILL
    assert report["worker"] is None and report["index"] == 1
    assert server.finish() == 1
    assert [r["worker"] for r in server.events("stopped")] == [2]


@pytest.mark.parametrize("value", ["0", "x", "-1"])
def test_bad_workers_values_are_usage_errors(value: str) -> None:
    command = Command("serve", "--port", "0", "--workers", value)
    assert command.finish() == 2
    errors = [line for line in command.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1 and "--workers" in errors[0], command.stderr
    assert "Traceback" not in command.stderr


def test_loop_uvloop_without_uvloop_names_the_extra(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)  # (import uvloop: ImportError)
    assert main(["serve", "--port", "0", "--loop", "uvloop"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "heartbeat-core[uvloop]" in err, err


def test_workers_stop_by_themselves_when_the_supervisor_is_killed(cleanup: list[Any]) -> None:
    server, _ = start_workers(cleanup, "--no-dashboard", "--no-metrics")
    server.wait_for("listening", count=2)
    pids = server.events("workers")[0]["pids"]
    server.kill()  # SIGKILL: nothing is forwarded; each worker sees its channel close
    end = time.monotonic() + SLACK
    while time.monotonic() < end and any(_alive(pid) for pid in pids):
        time.sleep(0.05)
    assert not any(_alive(pid) for pid in pids)


def _alive(pid: int) -> bool:
    """``pid`` runs (not a zombie; an orphan is reaped by init, or a subreaper, later)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            return stat.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except FileNotFoundError:
        return False


def test_a_port_taken_by_another_server_is_one_line_exit_2() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        command = Command("serve", "--port", str(port), "--workers", "2")
        assert command.finish() == 2
    assert command.stderr.count("\n") == 1, command.stderr
    assert f"cannot listen on 127.0.0.1:{port}" in command.stderr


def test_workers_auto_is_the_cpu_count() -> None:
    from heartbeat_cli.app import build_parser

    args = build_parser().parse_args(["serve", "--workers", "auto"])
    assert args.workers == (os.cpu_count() or 1) and args.loop == "auto"
    assert build_parser().parse_args(["serve"]).workers == 1


def _row(conn_id: int, age: float, closed_ago: float | None = None) -> dict[str, Any]:
    return {"id": conn_id, "kind": "client", "age_s": age, "closed_ago_s": closed_ago}


def test_a_workers_dashboard_merges_the_others_parts() -> None:
    """What Cluster.merge makes of another worker's parts (no processes needed)."""
    from heartbeat_cli.cluster import Cluster

    cluster = Cluster((1, 2, -1), snapshot=None, exposition=None, max_rows=3)
    now = time.monotonic()
    cluster.receive({"kind": "part", "worker": 2, "open": 2, "awaiting": 1,
                     "rows": [_row(2, 9.0), _row(4, 1.0), _row(6, 5.0, closed_ago=3.0)],
                     "samples": [[now - 1.0, 2, 0.5]]})  # fmt: skip
    own = {"type": "snapshot", "open": 1, "awaiting": 0, "rows": [_row(1, 4.0)],
           "samples": [[-0.5, 1, 0.25]], "next": 7}  # fmt: skip
    first = cluster.merge(own, True)  # a new page: nothing pushed yet, so no remote sample
    assert (first["open"], first["awaiting"], first["next"]) == (3, 1, 7)
    assert [r["id"] for r in first["rows"]] == [2, 1, 4]  # open rows first, oldest first
    assert first["samples"] == [[-0.5, 1, 0.25]]
    pushed = cluster.merge(own, False)  # the next push has the other's new samples
    assert [s[1:] for s in pushed["samples"]] == [[1, 0.25], [2, 0.5]]
    assert -1.5 < pushed["samples"][1][0] < -0.9
    assert cluster.merge(own, False)["samples"] == [[-0.5, 1, 0.25]]  # (sent once)
    later = cluster.merge(own, True)  # a page opened later: the history up to the last push
    assert [s[1] for s in later["samples"]] == [1, 2]


def test_workers_without_so_reuseport_is_one_line_exit_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delattr(socket, "SO_REUSEPORT", raising=False)
    assert main(["serve", "--port", "0", "--workers", "2", "--loop", "asyncio"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "SO_REUSEPORT" in err, err
