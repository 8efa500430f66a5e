"""The dashboard's server side without a browser: static files, the registry, the feed,
and ``heartbeat serve`` with and without ``--no-dashboard``. Real sockets on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import shutil
import signal
import socket
import subprocess
from collections.abc import Coroutine
from typing import Any, TypeVar

import pytest
from heartbeat_asyncio import Connection, connect, serve
from heartbeat_cli.dashboard import (
    CLASSIC_CLIENT_PATH,
    CLIENT_PATH,
    FEED_PATH,
    Dashboard,
    classic_script,
)

from heartbeat_core import HeartbeatConfig, HeartbeatStyle
from heartbeat_core.errors import ConfigError
from tests.cli.harness import SLACK, Command, start_server
from tests.support.peers import open_websocket
from tests.support.waiting import async_wait_until

T = TypeVar("T")
FAST = HeartbeatConfig(interval=0.05, timeout=0.5, close_timeout=0.2)


def run(coro: Coroutine[Any, Any, T], timeout: float = 20.0) -> T:
    return asyncio.run(asyncio.wait_for(coro, timeout))


async def echo(conn: Connection) -> None:
    async for message in conn:
        await conn.send(message)


def rows(dashboard: Dashboard) -> list[dict[str, Any]]:
    return list(dashboard.snapshot()["rows"])


def test_static_files_and_their_headers() -> None:
    dashboard = Dashboard()
    for target in ("/", "/index.html", "/?from=bookmark"):
        answer = dashboard.http_handler(target)
        assert answer is not None
        status, headers, body = answer
        names = dict(headers)
        assert status == 200 and body.startswith(b"<!doctype html>")
        assert names["Content-Type"].startswith("text/html")
        assert "connect-src 'self'" in names["Content-Security-Policy"]
        assert names["X-Frame-Options"] == "DENY"
    for target in ("/dashboard.js", "/dashboard.css", CLIENT_PATH, CLASSIC_CLIENT_PATH):
        answer = dashboard.http_handler(target)
        assert answer is not None and answer[0] == 200 and answer[2], target
    module = dashboard.http_handler(CLIENT_PATH)
    classic = dashboard.http_handler(CLASSIC_CLIENT_PATH)
    assert module is not None and classic is not None
    assert b"export class HeartbeatClient" in module[2]
    assert b"\nexport " not in classic[2] and b"globalThis.HeartbeatClient = " in classic[2]
    # Anything else (the feed included) is the WebSocket server's: 426 Upgrade Required.
    for target in (FEED_PATH, "/secret", "/../pyproject.toml", "/static/dashboard.html"):
        assert dashboard.http_handler(target) is None, target


def test_classic_script_runs_without_modules() -> None:
    with pytest.raises(ConfigError, match="imports"):
        classic_script("import x from './x.js';\nexport const y = x;\n")
    node = shutil.which("node")
    if node is None:
        pytest.skip("running the classic script needs `node`")
    answer = Dashboard().http_handler(CLASSIC_CLIENT_PATH)
    assert answer is not None
    script = (
        "const vm = require('node:vm'); const code = require('node:fs').readFileSync(0, 'utf8');"
        "const box = {EventTarget, CustomEvent, performance, setTimeout, clearTimeout, Math};"
        "box.globalThis = box; vm.runInNewContext(code, box);"
        "console.log(typeof box.HeartbeatClient, typeof box.HeartbeatClient.Backoff)"
    )
    done = subprocess.run(
        [node, "-e", script], input=answer[2], capture_output=True, timeout=30, check=False
    )
    assert done.stdout.decode().split() == ["function", "function"], done.stderr


def test_settings_are_validated() -> None:
    with pytest.raises(ConfigError, match="update_interval"):
        Dashboard(update_interval=0)
    with pytest.raises(ConfigError, match="max_rows"):
        Dashboard(max_rows=0)
    with pytest.raises(ConfigError, match="keep_closed"):
        Dashboard(keep_closed=True)


def test_registry_follows_connections_without_payloads_or_query_strings() -> None:
    async def main() -> None:
        dashboard = Dashboard()
        server = await serve(
            dashboard.handler(echo),
            config=FAST,
            on_event=dashboard.on_event,
            http_handler=dashboard.http_handler,
        )
        async with server:
            conn = await connect(f"ws://127.0.0.1:{server.port}/chat?token=s3cret")
            await conn.send("a private message")
            assert await conn.recv() == "a private message"
            # The server pings the idle client every 50 ms: RTT samples arrive.
            await async_wait_until(
                lambda: rows(dashboard) and rows(dashboard)[0]["last_rtt_ms"], SLACK
            )
            snap = dashboard.snapshot()
            (row,) = snap["rows"]
            assert snap["open"] == 1
            assert row["path"] == "/chat" and row["kind"] == "client"
            assert row["peer"] == f"127.0.0.1:{conn_port(conn)}"
            assert row["style"] == "frames" and row["state"] in ("idle", "awaiting")
            assert 0 < row["last_rtt_ms"] < 1000 and row["srtt_ms"] > 0 and row["pongs"] >= 1
            assert snap["samples"] and all(s[1] == row["id"] for s in snap["samples"])
            assert all(-60 <= s[0] <= 0 for s in snap["samples"])
            text = json.dumps(snap)
            assert "private" not in text and "s3cret" not in text
            # Samples are sent once: a snapshot asks for those after the last one seen.
            assert dashboard.snapshot(since=snap["next"])["samples"] == []
            await conn.close()
            await async_wait_until(lambda: rows(dashboard)[0]["state"] == "closed", SLACK)
            (closed,) = rows(dashboard)
            assert closed["code"] == 1000 and closed["by"] == "remote" and not closed["dead"]
            assert dashboard.snapshot()["open"] == 0

    run(main())


def conn_port(conn: Connection) -> int:
    transport = conn._transport
    assert transport is not None
    return int(transport.get_extra_info("sockname")[1])


def test_a_frozen_client_is_shown_dead_with_1011() -> None:
    async def main() -> None:
        dashboard = Dashboard()
        async with await serve(
            dashboard.handler(echo), config=FAST, on_event=dashboard.on_event
        ) as server:
            loop = asyncio.get_running_loop()
            sock = await loop.run_in_executor(None, open_websocket, server.port, "/frozen")
            try:
                await async_wait_until(lambda: any(r["dead"] for r in rows(dashboard)), SLACK)
                await async_wait_until(lambda: rows(dashboard)[0]["state"] == "closed", SLACK)
                (row,) = rows(dashboard)
                assert row["peer"] == f"127.0.0.1:{sock.getsockname()[1]}"
                assert (row["code"], row["reason"], row["by"]) == (
                    1011,
                    "heartbeat-timeout",
                    "local",
                )
                assert row["pings"] >= 1 and row["pongs"] == 0
            finally:
                sock.close()

    run(main())


def test_feed_streams_snapshots_and_answers_app_pings() -> None:
    async def main() -> None:
        dashboard = Dashboard(update_interval=0.05)
        # A server that does not answer {"type":"ping"} itself: the feed must.
        config = HeartbeatConfig(interval=5.0, timeout=5.0, answer_app_pings=False)
        async with await serve(
            dashboard.handler(echo), config=config, on_event=dashboard.on_event
        ) as server:
            # (A client that leaves {"type":"pong"} to its application, to see it.)
            feed = await connect(
                f"ws://127.0.0.1:{server.port}{FEED_PATH}",
                config=HeartbeatConfig(answer_app_pings=False),
            )
            hello = json.loads(await asyncio.wait_for(feed.recv(), SLACK))
            assert hello["type"] == "hello" and hello["update_interval"] == 0.05
            assert hello["server"] == {
                "style": "protocol",
                "interval": 5.0,
                "timeout": 5.0,
                "answers_app_pings": False,
                "probe_interval": None,
            }
            first = json.loads(await asyncio.wait_for(feed.recv(), SLACK))
            assert first["type"] == "snapshot"
            (me,) = first["rows"]
            assert me["id"] == hello["self"] and me["kind"] == "dashboard"
            await feed.send("anything else is ignored")
            await feed.send('{"type":"ping"}')
            seen: list[str | bytes] = []
            while '{"type":"pong"}' not in seen:
                seen.append(await asyncio.wait_for(feed.recv(), SLACK))
            assert all(json.loads(m)["type"] in ("snapshot", "pong") for m in seen)
            await feed.close()
            await async_wait_until(lambda: rows(dashboard)[0]["state"] == "closed", SLACK)

    run(main())


def test_snapshot_bounds_rows_and_forgets_old_closed_ones() -> None:
    now = [100.0]

    async def main() -> None:
        dashboard = Dashboard(clock=lambda: now[0], max_rows=2, closed_ttl=30.0)
        async with await serve(
            dashboard.handler(echo), config=FAST, on_event=dashboard.on_event
        ) as server:
            uri = f"ws://127.0.0.1:{server.port}/"
            conns = [await connect(uri + str(i)) for i in range(3)]
            await async_wait_until(lambda: dashboard.snapshot()["open"] == 3, SLACK)
            assert [r["path"] for r in rows(dashboard)] == ["/1", "/2"]  # the newest
            for conn in conns:
                await conn.close()
            await async_wait_until(lambda: dashboard.snapshot()["open"] == 0, SLACK)
            assert [r["state"] for r in rows(dashboard)] == ["closed", "closed"]
            now[0] += 31.0
            assert rows(dashboard) == []

    run(main())


def test_heartbeat_serve_has_the_dashboard_unless_told_not_to() -> None:
    def get(port: int, target: str) -> bytes:
        with socket.create_connection(("127.0.0.1", port), timeout=SLACK) as sock:
            sock.sendall(f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
            response = b""
            while chunk := sock.recv(65536):
                response += chunk
        return response

    servers: list[Command] = []
    try:
        server, port = start_server()
        servers.append(server)
        (record,) = server.wait_for("dashboard")
        assert record["url"] == f"http://127.0.0.1:{port}/"
        assert get(port, "/").startswith(b"HTTP/1.1 200")
        assert b"export class HeartbeatClient" in get(port, "/heartbeat-client.js")
        assert get(port, FEED_PATH).startswith(b"HTTP/1.1 426")  # a WebSocket endpoint
        plain, plain_port = start_server("--no-dashboard")
        servers.append(plain)
        for target in ("/", "/heartbeat-client.js", "/dashboard.js"):
            assert get(plain_port, target).startswith(b"HTTP/1.1 426"), target
        # Without the dashboard, /_dashboard is an ordinary (echoed) path.
        sock = open_websocket(plain_port, FEED_PATH)
        sock.close()
        for proc in servers:
            proc.signal(signal.SIGTERM)
            assert proc.finish() == 0
        assert plain.events("dashboard") == []
    finally:
        for proc in servers:
            proc.kill()


def test_styles_are_reported_per_connection() -> None:
    async def main() -> None:
        dashboard = Dashboard()
        config = HeartbeatConfig(interval=5.0, style=HeartbeatStyle.APP)
        async with await serve(
            dashboard.handler(echo), config=config, on_event=dashboard.on_event
        ) as server:
            conn = await connect(f"ws://127.0.0.1:{server.port}/")
            await async_wait_until(lambda: bool(rows(dashboard)), SLACK)
            assert rows(dashboard)[0]["style"] == "app"
            await conn.close()

    run(main())
