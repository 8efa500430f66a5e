"""``heartbeat serve`` and ``heartbeat ping`` as real subprocesses on 127.0.0.1.

Every wait is bounded; timing assertions are upper bounds with generous slack (the machine
is shared), and lower bounds only where the rule guarantees them.
"""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import time
from collections.abc import Iterator

import pytest
from heartbeat_asyncio import connect

from heartbeat_core import HeartbeatConfig
from heartbeat_core.errors import ConnectionClosedError
from tests.support.peers import FrozenServer, open_websocket

from .harness import SLACK, Command, free_port, start_server


@pytest.fixture
def cleanup() -> Iterator[list[Command]]:
    """Commands to kill at teardown if a test left them running."""
    started: list[Command] = []
    yield started
    for command in started:
        command.kill()


def _assert_json_lines(command: Command) -> None:
    for line in command.lines:
        assert isinstance(json.loads(line), dict), line


# ----------------------------------------------------------------------------- serve + ping


@pytest.mark.parametrize("mode", ["protocol", "app"])
def test_ping_against_serve_in_both_modes(mode: str, cleanup: list[Command]) -> None:
    server, port = start_server("--mode", mode, "--interval", "0.2", "--timeout", "2")
    cleanup.append(server)
    ping = Command(
        "ping",
        f"ws://127.0.0.1:{port}/",
        "--mode",
        mode,
        "--count",
        "4",
        "--interval",
        "0.1",
        "--json",
    )
    cleanup.append(ping)
    assert ping.finish() == 0, ping.stderr
    _assert_json_lines(ping)
    records = ping.records()
    pongs = [r for r in records if r["event"] == "pong"]
    assert [p["seq"] for p in pongs] == [1, 2, 3, 4]
    assert all(0 < p["rtt_ms"] < 1000 * SLACK for p in pongs)
    summary = records[-1]
    assert summary["event"] == "summary"
    assert (summary["sent"], summary["received"], summary["loss"]) == (4, 4, 0.0)
    rtts = [p["rtt_ms"] for p in pongs]
    assert summary["min_ms"] == min(rtts) and summary["max_ms"] == max(rtts)
    assert summary["min_ms"] <= summary["avg_ms"] <= summary["max_ms"]
    assert summary["mdev_ms"] >= 0
    assert not ping.events("dead") and not ping.events("closed")

    # The server logged the connection once each way, and the client's normal close.
    (opened,) = server.wait_for("open")
    (closed,) = server.wait_for("close")
    assert closed["peer"] == opened["peer"]
    assert (closed["code"], closed["by"]) == (1000, "remote")
    server.signal(signal.SIGTERM)
    assert server.finish() == 0
    _assert_json_lines(server)


def test_ping_text_output_and_sigint_exit_0(cleanup: list[Command]) -> None:
    server, port = start_server()
    cleanup.append(server)
    ping = Command("ping", f"ws://127.0.0.1:{port}/", "--interval", "0.1")
    cleanup.append(ping)
    ping.wait_text("seq=2 ")
    ping.signal(signal.SIGINT)
    assert ping.finish() == 0, ping.stderr
    text = "\n".join(ping.lines)
    assert ping.lines[0].startswith(f"PING ws://127.0.0.1:{port}/")
    assert "pong from" in text and "rtt=" in text
    assert "heartbeat statistics ---" in text
    assert "rtt min/avg/max/mdev = " in text
    assert "Traceback" not in ping.stderr
    server.signal(signal.SIGINT)
    assert server.finish() == 0


def test_serve_text_log(cleanup: list[Command]) -> None:
    port = free_port()
    server = Command(
        "serve", "--port", str(port), "--interval", "0.1", "--timeout", "1", "--rtt-log"
    )
    cleanup.append(server)
    server.wait_text(f"listening on 127.0.0.1:{port}")
    # Two answers: the first heartbeat goes out at once, the second 0.5 s later; the
    # server's own (idle 0.1 s) are answered meanwhile.
    ping = Command("ping", f"ws://127.0.0.1:{port}/", "--count", "2", "--interval", "0.5")
    cleanup.append(ping)
    assert ping.finish() == 0
    server.wait_text("open ")
    server.wait_text("rtt ")  # the server's own heartbeats, answered by the ping client
    server.wait_text("code=1000")
    server.signal(signal.SIGTERM)
    assert server.finish() == 0
    assert all(not line.startswith("{") for line in server.lines)


def test_server_heartbeats_are_answered_by_ping_in_app_mode(cleanup: list[Command]) -> None:
    """`serve --mode app` sends {"type":"ping"} to an idle client; `ping` answers it."""
    server, port = start_server("--mode", "app", "--interval", "0.1", "--timeout", "1", "--rtt-log")
    cleanup.append(server)
    ping = Command("ping", f"ws://127.0.0.1:{port}/", "--interval", "1", "--json")
    cleanup.append(ping)
    samples = server.wait_for("rtt", count=2)
    assert all(0 < s["rtt_ms"] < 1000 * SLACK for s in samples)
    ping.signal(signal.SIGTERM)
    assert ping.finish() == 0
    server.signal(signal.SIGTERM)
    assert server.finish() == 0


# ----------------------------------------------------------------------------- serve modes


async def _exchange(port: int, messages: list[str | bytes]) -> list[str | bytes]:
    """Send each message and collect what comes back within a short bound."""
    # answer_app_pings=False: app pings and pongs reach us as ordinary messages.
    config = HeartbeatConfig(interval=30.0, timeout=10.0, answer_app_pings=False)
    async with connect(f"ws://127.0.0.1:{port}/", config=config) as conn:
        got: list[str | bytes] = []
        for message in messages:
            await conn.send(message)
            got.append(await asyncio.wait_for(conn.recv(), SLACK))
        return got


PING_TEXT = '{"type":"ping"}'
PONG_TEXT = '{"type":"pong"}'


@pytest.mark.parametrize(
    ("mode", "answer"),
    [("protocol", PING_TEXT), ("app", PONG_TEXT), ("both", PONG_TEXT)],
)
@pytest.mark.parametrize("dashboard", [(), ("--no-dashboard",)], ids=["dashboard", "no-dashboard"])
def test_serve_modes_echo_or_answer_app_pings(
    mode: str, answer: str, dashboard: tuple[str, ...], cleanup: list[Command]
) -> None:
    """protocol: an app ping is an ordinary, echoed message; app/both: it is answered.
    (Without a dashboard the server echoes through ``on_message``, with a handler else.)"""
    server, port = start_server("--mode", mode, *dashboard)
    cleanup.append(server)
    got = asyncio.run(asyncio.wait_for(_exchange(port, ["hello", b"\x00\x01", PING_TEXT]), SLACK))
    assert got == ["hello", b"\x00\x01", answer]
    server.signal(signal.SIGTERM)
    assert server.finish() == 0


def test_serve_max_size_closes_with_1009(cleanup: list[Command]) -> None:
    server, port = start_server("--max-size", "1KiB")
    cleanup.append(server)

    async def go() -> int | None:
        async with connect(f"ws://127.0.0.1:{port}/") as conn:
            await conn.send("x" * 1024)
            assert await asyncio.wait_for(conn.recv(), SLACK) == "x" * 1024
            await conn.send("y" * 1025)
            with pytest.raises(ConnectionClosedError):
                await asyncio.wait_for(conn.recv(), SLACK)
            await asyncio.wait_for(conn.wait_closed(), SLACK)
            return conn.close_code

    assert asyncio.run(go()) == 1009
    (closed,) = server.wait_for("close")
    assert (closed["code"], closed["by"]) == (1009, "local")
    server.signal(signal.SIGTERM)
    assert server.finish() == 0


# ----------------------------------------------------------------------------- exit code 1


def test_ping_exits_1_when_the_server_freezes(cleanup: list[Command]) -> None:
    """SIGSTOP on the serve process: its TCP stays up, nothing answers; ping finds it dead."""
    server, port = start_server()
    cleanup.append(server)
    ping = Command(
        "ping", f"ws://127.0.0.1:{port}/", "--interval", "0.1", "--timeout", "0.5", "--json"
    )
    cleanup.append(ping)
    ping.wait_for("pong")
    server.signal(signal.SIGSTOP)
    try:
        frozen_at = time.monotonic()
        assert ping.finish() == 1, ping.stderr
        elapsed = time.monotonic() - frozen_at
    finally:
        server.signal(signal.SIGCONT)
    (dead,) = ping.events("dead")
    assert dead["waited_ms"] >= 500
    assert dead["waited_ms"] < 500 + 1000 * SLACK
    assert elapsed < 0.1 + 0.5 + SLACK
    summary = ping.records()[-1]
    assert summary["event"] == "summary"
    assert summary["sent"] == summary["received"] + 1
    assert summary["loss"] == pytest.approx(1 / summary["sent"])
    assert not ping.events("closed")  # we closed (1011), not the server
    server.signal(signal.SIGTERM)
    assert server.finish() == 0


def test_ping_exits_1_against_a_peer_that_never_answers(cleanup: list[Command]) -> None:
    """A raw server that completes the handshake and then stays silent."""
    raw = FrozenServer(drain=True)
    try:
        started = time.monotonic()
        ping = Command(
            "ping",
            f"ws://127.0.0.1:{raw.port}/",
            "--interval",
            "0.1",
            "--timeout",
            "0.3",
            "--json",
        )
        cleanup.append(ping)
        assert ping.finish() == 1, ping.stderr
        assert time.monotonic() - started < 0.4 + SLACK
    finally:
        raw.close()
    records = ping.records()
    assert [r["event"] for r in records] == ["dead", "summary"]
    assert records[0]["seq"] == 1 and records[0]["waited_ms"] >= 300
    assert (records[1]["sent"], records[1]["received"], records[1]["loss"]) == (1, 0, 1.0)
    assert records[1]["min_ms"] is None


def test_sigterm_closes_every_connection_with_1001(cleanup: list[Command]) -> None:
    """serve exits 0 on SIGTERM after closing with 1001; ping sees it and exits 1."""
    server, port = start_server()
    cleanup.append(server)
    pings = [
        Command("ping", f"ws://127.0.0.1:{port}/", "--interval", "0.1", "--json") for _ in range(2)
    ]
    cleanup.extend(pings)
    for ping in pings:
        ping.wait_for("pong")
    server.wait_for("open", count=2)
    server.signal(signal.SIGTERM)
    assert server.finish() == 0, server.stderr
    for ping in pings:
        assert ping.finish() == 1, ping.stderr
        (closed,) = ping.events("closed")
        assert (closed["code"], closed["reason"]) == (1001, "going away")
        assert ping.records()[-1]["event"] == "summary"
    closes = server.events("close")
    assert len(closes) == 2
    assert {(c["code"], c["by"]) for c in closes} == {(1001, "local")}
    (shutdown,) = server.events("shutdown")
    assert shutdown["signal"] == "SIGTERM" and shutdown["connections"] == 2
    assert server.records()[-1]["event"] == "stopped"


# ----------------------------------------------------------------------------- exit code 2


def _one_line_error(command: Command, *fragments: str) -> None:
    assert command.finish() == 2
    err = command.stderr
    assert err.count("\n") == 1, err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in err, err


def test_ping_connection_refused_exits_2() -> None:
    ping = Command("ping", f"ws://127.0.0.1:{free_port()}/")
    _one_line_error(ping, "refused")


def test_ping_bad_url_exits_2() -> None:
    _one_line_error(Command("ping", "http://127.0.0.1:1/"), "bad URL", "ws://")


def test_ping_http_status_exits_2() -> None:
    raw = FrozenServer(status=404)
    try:
        _one_line_error(Command("ping", f"ws://127.0.0.1:{raw.port}/"), "HTTP status 404")
    finally:
        raw.close()


def test_ping_tls_failure_exits_2(cleanup: list[Command]) -> None:
    """wss:// to a plain-text server: the TLS handshake fails."""
    server, port = start_server()
    cleanup.append(server)
    _one_line_error(
        Command("ping", f"wss://127.0.0.1:{port}/"), "the server does not speak TLS on this port"
    )
    server.signal(signal.SIGTERM)
    assert server.finish() == 0


def test_ping_unresolvable_host_exits_2() -> None:
    _one_line_error(Command("ping", "ws://no-such-host.invalid/"), "cannot connect")


def test_serve_unbindable_port_exits_2() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        _one_line_error(Command("serve", "--port", str(port)), f"cannot listen on 127.0.0.1:{port}")


def test_usage_error_exits_2() -> None:
    command = Command("ping", "ws://127.0.0.1:1/", "--count", "zero")
    assert command.finish() == 2
    assert "usage:" in command.stderr and "Traceback" not in command.stderr


# ----------------------------------------------------------------------------- liveness


def test_bytes_in_the_middle_of_a_message_keep_a_peer_alive(cleanup: list[Command]) -> None:
    """A peer that never answers pings but trickles one byte of a large message every 50 ms
    stays alive (any inbound byte counts); once it stops, it is declared dead."""
    server, port = start_server("--interval", "0.4", "--timeout", "0.6")
    cleanup.append(server)
    sock = open_websocket(port, "/raw", timeout=SLACK)
    try:
        server.wait_for("open")
        payload = b"x" * 200
        frame = b"\x81\xfe" + len(payload).to_bytes(2, "big") + b"\x00\x00\x00\x00" + payload
        end = time.monotonic() + 2.0  # twice interval + timeout
        sent = 0
        while time.monotonic() < end and sent < len(frame):
            sock.sendall(frame[sent : sent + 1])
            sent += 1
            time.sleep(0.05)
        assert not server.events("dead") and not server.events("close"), server.lines
        stopped = time.monotonic()
        (closed,) = server.wait_for("close")
        assert time.monotonic() - stopped < 1.0 + SLACK
        assert (closed["code"], closed["reason"], closed["by"]) == (
            1011,
            "heartbeat-timeout",
            "local",
        )
        (dead,) = server.events("dead")
        assert dead["waited_ms"] >= 600
    finally:
        sock.close()
    server.signal(signal.SIGTERM)
    assert server.finish() == 0


def test_plain_http_gets_426_and_is_not_logged_as_a_connection(cleanup: list[Command]) -> None:
    server, port = start_server()
    cleanup.append(server)
    with socket.create_connection(("127.0.0.1", port), timeout=SLACK) as sock:
        # (/ is the dashboard's page: a path nobody serves gets 426.)
        sock.sendall(b"GET /nothing-here HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        response = b""
        while chunk := sock.recv(4096):
            response += chunk
    assert response.startswith(b"HTTP/1.1 426"), response
    ping = Command(
        "ping", f"ws://127.0.0.1:{port}/x?y=1", "--count", "1", "--interval", "0.1", "--json"
    )
    cleanup.append(ping)
    assert ping.finish() == 0
    server.wait_for("close")
    server.signal(signal.SIGTERM)
    assert server.finish() == 0
    (opened,) = server.events("open")  # the ping only: the plain GET was no connection
    assert opened["path"] == "/x"  # (the query string stays out of the log: --log-query)
    assert len(server.events("close")) == 1
