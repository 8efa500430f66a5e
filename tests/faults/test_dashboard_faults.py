"""The dashboard of ``heartbeat serve`` against a hostile web page and many viewers.

Issue 18, finding 5: the feed answered 101 to any ``Origin`` (any web page the operator
opened could read peers, paths, RTTs), ``GET /`` answered any ``Host`` (DNS
rebinding), any number of viewers each had a snapshot built and encoded of its own,
and a snapshot listed paths whole. Each test fails on d061d09.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.cli.harness import SLACK, Command, start_server
from tests.support.frames import TEXT, FrameReader, upgrade_request

from .harness import record


@pytest.fixture
def served() -> Iterator[list[Command]]:
    """Servers to stop (by pid) at teardown."""
    started: list[Command] = []
    yield started
    for command in started:
        command.kill()


def _request(port: int, head: bytes) -> bytes:
    """Send ``head``; what the server answers in its first response head."""
    with socket.create_connection(("127.0.0.1", port), timeout=SLACK) as sock:
        sock.sendall(head)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
        return data


def feed_request(port: int, *, origin: str | None, host: str | None = None) -> bytes:
    extra = "" if origin is None else f"Origin: {origin}\r\n"
    head = upgrade_request(host=host or f"127.0.0.1:{port}", target="/_dashboard", extra=extra)
    return _request(port, head)


def get(port: int, host: str, target: str = "/") -> bytes:
    return _request(port, f"GET {target} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())


def test_the_feed_is_for_its_own_page_and_the_page_for_its_own_address(
    served: list[Command],
) -> None:
    server, port = start_server("--dashboard-origin", "https://ops.example.org")
    served.append(server)
    evil = feed_request(port, origin="http://evil.example")
    assert evil.startswith(b"HTTP/1.1 403 "), evil
    assert feed_request(port, origin="null").startswith(b"HTTP/1.1 403 ")
    # Same origin (the page served from this address), an allowed origin, no Origin at all
    # (not a browser), localhost: let in.
    assert feed_request(port, origin=f"http://127.0.0.1:{port}").startswith(b"HTTP/1.1 101 ")
    assert feed_request(port, origin="https://ops.example.org").startswith(b"HTTP/1.1 101 ")
    assert feed_request(port, origin=None).startswith(b"HTTP/1.1 101 ")
    local = feed_request(port, origin=f"http://localhost:{port}", host=f"localhost:{port}")
    assert local.startswith(b"HTTP/1.1 101 ")
    # DNS rebinding: a name that is not ours, for the page and for the feed.
    rebound = get(port, f"evil.example:{port}")
    assert rebound.startswith(b"HTTP/1.1 403 "), rebound
    rebound_feed = feed_request(
        port, origin=f"http://evil.example:{port}", host=f"evil.example:{port}"
    )
    assert rebound_feed.startswith(b"HTTP/1.1 403 ")
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", f"[::1]:{port}"):
        assert get(port, host).startswith(b"HTTP/1.1 200 "), host
    # The echo server itself is nobody's business here: any Origin may use it.
    other = _request(
        port,
        upgrade_request(
            host=f"127.0.0.1:{port}", target="/chat", extra="Origin: http://evil.example\r\n"
        ),
    )
    assert other.startswith(b"HTTP/1.1 101 ")
    record(
        "dashboard: feed from a foreign Origin, page and feed for a rebound Host",
        "cli (asyncio)",
        "403 for both; same origin, allowed origin, no Origin, localhost: 101/200",
        "",
    )


class Viewer:
    """A dashboard page's feed, on a bare socket: reads messages, answers nothing."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=SLACK)
        self.sock.sendall(upgrade_request(host=f"127.0.0.1:{port}", target="/_dashboard"))
        self.reader = FrameReader(expect_masked=False)
        self.head = b""
        while b"\r\n\r\n" not in self.head:
            chunk = self.sock.recv(65536)
            if not chunk:
                break
            self.head += chunk
        self.head, _, rest = self.head.partition(b"\r\n\r\n")
        self.messages: list[dict[str, Any]] = []
        self.sizes: list[int] = []
        self._take(rest)

    def _take(self, data: bytes) -> None:
        for f in self.reader.feed(data):
            if f.opcode == TEXT:
                self.sizes.append(len(f.payload))
                self.messages.append(json.loads(f.payload))

    def read_for(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0:
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(1 << 20)
            except TimeoutError:
                return
            if not chunk:
                return
            self._take(chunk)

    def close(self) -> None:
        self.sock.close()


def test_viewers_are_limited_and_snapshots_bounded(served: list[Command]) -> None:
    server, port = start_server("--dashboard-viewers", "2")
    served.append(server)
    clients = []
    try:
        for i in range(30):  # connections with 8,000-character paths (a request line < 8 KB)
            path = f"/{i:03d}" + "p" * 7996
            sock = socket.create_connection(("127.0.0.1", port), timeout=SLACK)
            sock.sendall(upgrade_request(host=f"127.0.0.1:{port}", target=path))
            assert sock.recv(65536).startswith(b"HTTP/1.1 101 ")
            clients.append(sock)
        viewers = [Viewer(port), Viewer(port)]
        assert all(v.head.startswith(b"HTTP/1.1 101 ") for v in viewers)
        third = feed_request(port, origin=None)
        assert third.startswith(b"HTTP/1.1 503 ") and b"retry-after: 5" in third.lower()
        for v in viewers:
            v.read_for(1.5)
        viewers[0].close()
        time.sleep(0.3)
        fourth = Viewer(port)  # a place is free again
        assert fourth.head.startswith(b"HTTP/1.1 101 ")
        fourth.close()
        viewers[1].close()
    finally:
        for sock in clients:
            sock.close()
    snapshots = [m for m in viewers[1].messages if m["type"] == "snapshot"]
    assert len(snapshots) >= 2
    paths = [row["path"] for row in snapshots[-1]["rows"] if row["kind"] == "client"]
    assert len(paths) == 30 and all(len(p) <= 200 for p in paths)
    assert max(viewers[1].sizes) < 64 * 1024, max(viewers[1].sizes)
    record(
        "dashboard: 30 connections with 8,000-character paths, 3 viewers for 2 places",
        "cli (asyncio)",
        "third viewer 503 (Retry-After); paths cut to 200 characters",
        f"largest snapshot {max(viewers[1].sizes)} bytes (240 KB of paths uncut)",
    )


def test_one_snapshot_per_interval_whatever_the_number_of_viewers() -> None:
    """Eight viewers cost one snapshot (built and encoded once) per update interval."""
    from heartbeat_asyncio import connect, serve
    from heartbeat_cli.dashboard import Dashboard

    async def main() -> tuple[int, float, list[int]]:
        dashboard = Dashboard(update_interval=0.1, max_viewers=8)
        builds = 0
        snapshot = dashboard.registry.snapshot

        def counted(*args: Any, **kwargs: Any) -> dict[str, Any]:
            nonlocal builds
            builds += 1
            return snapshot(*args, **kwargs)

        dashboard.registry.snapshot = counted  # type: ignore[method-assign]

        async def echo(conn: Any) -> None:
            async for message in conn:
                await conn.send(message)

        async with await serve(
            dashboard.handler(echo),
            on_event=dashboard.on_event,
            process_request=dashboard.process_request,
        ) as server:
            feeds = [await connect(f"ws://127.0.0.1:{server.port}/_dashboard") for _ in range(8)]
            got = [0] * 8

            async def read(i: int) -> None:
                async for _ in feeds[i]:
                    got[i] += 1

            readers = [asyncio.ensure_future(read(i)) for i in range(8)]
            await asyncio.sleep(0.3)  # all joined
            builds, t0 = 0, time.monotonic()
            before = list(got)
            await asyncio.sleep(1.0)
            elapsed = time.monotonic() - t0
            counts = [g - b for g, b in zip(got, before, strict=True)]
            n = builds
            for f in feeds:
                await f.close()
            for r in readers:
                r.cancel()
            return n, elapsed, counts

    builds, elapsed, counts = asyncio.run(asyncio.wait_for(main(), 30))
    pushes = elapsed / 0.1
    assert builds <= pushes + 2, (builds, pushes)  # one per interval, not one per viewer
    assert all(c >= pushes * 0.7 for c in counts), counts  # and every viewer got them
    record(
        "dashboard: 8 viewers, update interval 100 ms, for 1 s",
        "cli (asyncio)",
        "one snapshot built and encoded per interval, sent to all",
        f"{builds} snapshots built; each viewer received {min(counts)}-{max(counts)}",
    )
