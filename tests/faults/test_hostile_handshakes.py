"""Issue 18, findings 6, 9 and 10: the opening handshake against hostile peers.

6. Request heads are bounded whatever the number of reads: a 117 KiB upgrade of 20,000
   header lines in one write got 101 and asyncio kept every line (+2.4 MiB per
   connection); a 100 KB request line was accepted and logged whole. Now: 431 past
   128 header lines, 8 KiB per line or 16 KiB in all, 414 past an 8 KiB request line.
9. Strict upgrades: HTTP/1.0, a bad Sec-WebSocket-Key and a body got 101; a wrong
   version got 400 without ``Sec-WebSocket-Version: 13``.
10. Clients: a wrong Sec-WebSocket-Accept or an unrequested extension or subprotocol
    was "the connection closed during the opening handshake"; the asyncio client took a
    90 KB 101 that the threading client refused; ``heartbeat_threading.connect()``
    leaked its socket when it could not start its thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from heartbeat_core import HandshakeError, HeartbeatConfig
from tests.support.frames import accept_key, upgrade_request, websocket_key
from tests.support.waiting import wait_until

from .harness import RawClient, ServerHandle, fd_count, probe, record
from .procs import server_process

# ---------------------------------------------------------------- finding 6: heads


def _many_headers(n: int = 20_000) -> bytes:
    """An upgrade request of ``n`` extra header lines (117 KiB for 20,000)."""
    return upgrade_request(extra="a: b\r\n" * n)


def _answer(port: int, request: bytes) -> tuple[bytes, bool]:
    """Send ``request`` in one write; the response head and whether the socket closed."""
    with RawClient(port) as c:
        c.send(request)
        head = c.read_head(3.0)
        return head, c.wait_eof(3.0)


def test_a_huge_head_in_one_read_gets_431(server: ServerHandle, adapter: str) -> None:
    request = _many_headers()
    assert 110_000 < len(request) < 128 * 1024  # arrives in one read (<= 256 KiB)
    t0 = time.monotonic()
    head, closed = _answer(server.port, request)
    took = time.monotonic() - t0
    assert head.startswith(b"HTTP/1.1 431 "), head[:80]
    assert closed
    probe(server.port)
    record(
        "upgrade with 20,000 header lines (117 KiB) in one write",
        adapter,
        "HTTP 431, socket closed",
        f"{took * 1000:.1f} ms",
    )


def test_a_100_kb_request_line_gets_414_and_is_not_logged(
    server: ServerHandle, adapter: str, caplog: pytest.LogCaptureFixture
) -> None:
    path = "/" + "p" * 100_000
    with caplog.at_level(logging.DEBUG):
        head, closed = _answer(server.port, upgrade_request(target=path))
        assert head.startswith(b"HTTP/1.1 414 "), head[:80]
        assert closed
        probe(server.port)
    logged = [r.getMessage() for r in caplog.records]
    assert not any("p" * 1000 in line for line in logged), "the 100 KB path was logged"
    record("100 KB request line", adapter, "HTTP 414, socket closed, not logged", "")


def _open_with(port: int, request: bytes) -> RawClient:
    c = RawClient(port)
    c.send(request)
    head = c.read_head(5.0)
    assert head.startswith(b"HTTP/1.1 101 "), head[:80]
    return c


def test_heads_keep_at_most_64_kib_per_connection(adapter: str) -> None:
    """200 connections whose heads are as large as allowed (128 header lines, 16 KiB)
    stay open; the server keeps < 64 KiB for each beyond what a minimal head costs.
    Then 200 upgrades of 20,000 header lines each, in one write: every one gets 431."""
    n = 200
    largest = upgrade_request(extra="".join(f"X-{i:03}: {'v' * 120}\r\n" for i in range(123)))
    assert 15_000 < len(largest) <= 16 * 1024
    with server_process(adapter, 5.0, 5.0) as srv:
        probe(srv.port)
        rss0 = srv.rss_kib()
        small = [_open_with(srv.port, upgrade_request()) for _ in range(n)]
        time.sleep(0.2)
        rss_small = srv.rss_kib()
        large = [_open_with(srv.port, largest) for _ in range(n)]
        time.sleep(0.2)
        rss_large = srv.rss_kib()
        kept = (rss_large - rss_small) / n  # KiB per connection, beyond a minimal head
        for c in small + large:
            c.close()
        answers = [_answer(srv.port, _many_headers())[0][:12] for _ in range(n)]
        rss_end = srv.rss_kib()
    assert kept <= 64, f"{kept:.1f} KiB kept per connection for a 16 KiB head"
    assert answers == [b"HTTP/1.1 431"] * n
    record(
        f"{n} connections with the largest head allowed (16 KiB), then {n} upgrades "
        "of 20,000 header lines in one write",
        adapter,
        "all open / all HTTP 431",
        f"{kept:.1f} KiB per connection beyond a minimal head "
        f"(minimal: {(rss_small - rss0) / n:.1f} KiB each); RSS {rss0} -> {rss_end} KiB",
    )


# ---------------------------------------------------------------- finding 9: strictness

_CHUNKED, _LENGTH = "Transfer-Encoding: chunked", "Content-Length: 5"


@pytest.mark.parametrize(
    ("case", "request_bytes", "status"),
    [
        ("HTTP/1.0 upgrade", upgrade_request().replace(b"HTTP/1.1", b"HTTP/1.0"), 505),
        ("invalid Sec-WebSocket-Key", upgrade_request(key="not a key!"), 400),
        (
            "Transfer-Encoding: chunked",
            upgrade_request(extra="Transfer-Encoding: chunked\r\n"),
            400,
        ),
        (
            "a body (Content-Length: 5)",
            upgrade_request(extra="Content-Length: 5\r\n") + b"hello",
            400,
        ),
        ("Sec-WebSocket-Version: 8", upgrade_request().replace(b"Version: 13", b"Version: 8"), 426),
    ],
)
def test_strict_upgrades(
    server: ServerHandle, adapter: str, case: str, request_bytes: bytes, status: int
) -> None:
    head, closed = _answer(server.port, request_bytes)
    assert head.startswith(b"HTTP/1.1 %d " % status), head[:80]
    assert closed
    if status == 426:
        assert b"\r\nSec-WebSocket-Version: 13\r\n" in head
    record(case, adapter, f"HTTP {status}, socket closed", "")


# ---------------------------------------------------------------- finding 10: clients


@contextlib.contextmanager
def answering(
    make: Callable[[bytes], bytes], *, piece: int | None = None
) -> Iterator[tuple[str, list[str]]]:
    """A server for one connection answering its upgrade with ``make(key)`` (in
    ``piece``-byte writes when given); yields the URI and a list that gets "eof" once the
    client hung up."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(10)
    seen: list[str] = []

    def run() -> None:
        with contextlib.suppress(OSError):
            sock, _ = listener.accept()
            with sock:
                try:
                    sock.settimeout(10)
                    head = b""
                    while b"\r\n\r\n" not in head:
                        chunk = sock.recv(4096)
                        if not chunk:
                            return
                        head += chunk
                    answer = make(websocket_key(head))
                    step = piece or len(answer)
                    for i in range(0, len(answer), step):
                        sock.sendall(answer[i : i + step])
                        if piece:
                            time.sleep(0.001)
                    while sock.recv(65536):
                        pass
                finally:  # EOF, or a reset: the client hung up
                    seen.append("eof")

    thread = threading.Thread(target=run, name="answering-server", daemon=True)
    thread.start()
    try:
        yield f"ws://127.0.0.1:{listener.getsockname()[1]}/", seen
    finally:
        listener.close()
        thread.join(10)


def _101(key: bytes, extra: bytes = b"", accept: bytes | None = None) -> bytes:
    token = accept if accept is not None else accept_key(key).encode()
    return (
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: " + token + b"\r\n" + extra + b"\r\n"
    )


def _connect(client: str, uri: str) -> None:
    """Connect with the ``client`` driver (and close at once if that succeeds)."""
    pytest.importorskip(f"heartbeat_{client}")
    if client == "threading":
        from heartbeat_threading import connect

        connect(uri, open_timeout=5).close()
        return
    from heartbeat_asyncio import connect as aconnect

    async def run() -> None:
        conn = await aconnect(uri, open_timeout=5)
        await conn.close()

    asyncio.run(run())


CLIENTS = ["asyncio", "threading"]


@pytest.mark.parametrize("client", CLIENTS)
@pytest.mark.parametrize(
    ("case", "make", "says"),
    [
        (
            "wrong Sec-WebSocket-Accept",
            lambda key: _101(key, accept=b"dGhpcyBpcyBub3QgaXQ="),
            "Sec-WebSocket-Accept does not answer our Sec-WebSocket-Key",
        ),
        (
            "unrequested extension",
            lambda key: _101(key, b"Sec-WebSocket-Extensions: permessage-deflate\r\n"),
            "accepted the extension 'permessage-deflate', which we did not offer",
        ),
        (
            "unrequested subprotocol",
            lambda key: _101(key, b"Sec-WebSocket-Protocol: chat\r\n"),
            "chose the subprotocol 'chat', which we did not offer",
        ),
    ],
)
def test_client_handshake_errors_say_what_was_wrong(
    client: str, case: str, make: Callable[[bytes], bytes], says: str
) -> None:
    with answering(make) as (uri, seen):
        with pytest.raises(HandshakeError) as info:
            _connect(client, uri)
        wait_until(lambda: seen, 5.0, "the client to hang up")
    assert says in str(info.value)
    assert "closed during the opening handshake" not in str(info.value)
    record(f"server answers with a {case}", client, "HandshakeError: " + says, "")


@pytest.mark.parametrize("client", CLIENTS)
@pytest.mark.parametrize("piece", [None, 1400])
def test_both_clients_refuse_a_90_kb_101(client: str, piece: int | None) -> None:
    pad = b"".join(b"X-Pad-%d: %s\r\n" % (i, b"p" * 80) for i in range(1000))  # 90 KB
    with answering(lambda key: _101(key, pad), piece=piece) as (uri, seen):
        with pytest.raises(HandshakeError, match="too large") as info:
            _connect(client, uri)
        wait_until(lambda: seen, 5.0, "the client to hang up")
    assert "header lines" in str(info.value) or "over" in str(info.value)
    record(
        "server answers with a 90 KB 101" + (" in 1400-byte writes" if piece else ""),
        client,
        "HandshakeError: " + str(info.value)[:60] + "...",
        "",
    )


def test_threading_connect_releases_its_socket_when_its_thread_cannot_start(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pytest.importorskip("heartbeat_threading")
    from heartbeat_threading import connect
    from heartbeat_threading.reactor import Reactor

    def cannot_start(self: Reactor) -> None:
        raise RuntimeError("can't start new thread")

    with answering(_101) as (uri, seen):
        quick = HeartbeatConfig(close_timeout=0.1)  # (the server never answers the close)
        connect(uri, config=quick, open_timeout=5).close()  # (warm: imports, a first thread)
        seen.clear()
    monkeypatch.setattr(Reactor, "start", cannot_start)
    before = fd_count()
    with answering(_101) as (uri, seen):
        for _ in range(3):
            with pytest.raises(RuntimeError, match="start"):
                connect(uri, open_timeout=5)
        wait_until(lambda: seen, 5.0, "the server to see the client's socket closed")
    assert fd_count() == before, f"{fd_count() - before} descriptors leaked"
    record(
        "heartbeat_threading.connect() cannot start its thread",
        "threading",
        "RuntimeError, socket and reactor released",
        "fds back to baseline",
    )
