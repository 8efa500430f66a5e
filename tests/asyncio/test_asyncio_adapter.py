"""heartbeat_asyncio client and server against each other, on 127.0.0.1 with short intervals."""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
import time

import heartbeat_asyncio
import pytest
from heartbeat_asyncio import Connection, connect, serve

from heartbeat_core import (
    ConnectionEvent,
    HeartbeatConfig,
    HeartbeatStyle,
    Liveness,
    PeerDead,
    RttSample,
    TcpKeepalive,
)
from heartbeat_core.errors import ConnectionClosedError, HandshakeError
from tests.support.waiting import async_wait_until

from .helpers import HOST, raw_client, read_head, run

FAST = HeartbeatConfig(interval=0.05, timeout=0.5, close_timeout=1.0)
STYLES = [HeartbeatStyle.PROTOCOL, HeartbeatStyle.APP]


async def echo(conn: Connection) -> None:
    async for message in conn:
        await conn.send(message)


def test_exports() -> None:
    for name in heartbeat_asyncio.__all__:
        assert hasattr(heartbeat_asyncio, name)


@pytest.mark.parametrize("style", STYLES, ids=lambda s: s.value)
def test_echo_and_heartbeats_both_styles(style: HeartbeatStyle) -> None:
    config = HeartbeatConfig(interval=0.05, timeout=0.5, style=style)
    server_events: list[ConnectionEvent] = []

    async def main() -> None:
        async with await serve(
            echo, config=config, on_event=lambda c, e: server_events.append(e)
        ) as server:
            async with connect(f"ws://{HOST}:{server.port}/echo", config=config) as conn:
                await conn.send("hello")
                assert await conn.recv() == "hello"
                await conn.send(b"\x00\x01")
                assert await conn.recv() == b"\x00\x01"
                # Both sides heartbeat each other; nothing else is delivered as a message.
                await async_wait_until(lambda: conn.stats.pongs_received >= 3)
                await async_wait_until(
                    lambda: sum(isinstance(e, RttSample) for e in server_events) >= 3
                )
                assert conn.latency is not None and 0 < conn.latency < 0.5
                (server_conn,) = server.connections
                assert server_conn.stats.pongs_received >= 3
                assert server_conn.path == "/echo"
                assert conn.is_open
            assert conn.close_code == 1000
            assert conn.closed_by == "local"
            assert not any(isinstance(e, PeerDead) for e in server_events)
            # Never stamped late: the shared timer fires no entry before its deadline.
            rtts = [e.rtt for e in server_events if isinstance(e, RttSample)]
            assert rtts and all(rtt > 0 for rtt in rtts)

    run(main())


def test_ping_returns_rtt_and_stats() -> None:
    async def main() -> None:
        async with (
            await serve(echo) as server,
            connect(f"ws://{HOST}:{server.port}/", config=FAST) as conn,
        ):
            rtts = [await conn.ping() for _ in range(5)]
            assert all(0 < rtt < 1.0 for rtt in rtts)
            await async_wait_until(lambda: conn.latency is not None)
            stats = conn.stats
            assert stats.pings_sent >= 1
            assert stats.min_rtt is not None and stats.max_rtt is not None
            assert 0 < stats.min_rtt <= stats.max_rtt < 1.0

    run(main())


def test_subprotocol_and_extra_headers() -> None:
    seen: list[tuple[str | None, list[tuple[bytes, bytes]]]] = []

    async def handler(conn: Connection) -> None:
        seen.append((conn.subprotocol, conn.headers))
        await conn.send(conn.subprotocol or "")

    def pick(offered: object) -> str | None:
        return "chat.v1" if "chat.v1" in offered else None  # type: ignore[operator]

    async def main() -> None:
        async with await serve(handler, select_subprotocol=pick) as server:
            async with connect(
                f"ws://{HOST}:{server.port}/",
                subprotocols=["chat.v2", "chat.v1"],
                extra_headers=[("X-Token", "abc123")],
            ) as conn:
                assert conn.subprotocol == "chat.v1"
                assert await conn.recv() == "chat.v1"
            async with connect(f"ws://{HOST}:{server.port}/") as plain:
                assert plain.subprotocol is None
                assert await plain.recv() == ""

    run(main())
    assert seen[0][0] == "chat.v1"
    assert (b"x-token", b"abc123") in seen[0][1]


def test_max_size_closes_with_1009() -> None:
    async def main() -> None:
        async with (
            await serve(echo, max_size=1000) as server,
            connect(f"ws://{HOST}:{server.port}/") as conn,
        ):
            await conn.send("x" * 1000)
            assert await conn.recv() == "x" * 1000
            await conn.send(b"y" * 1001)
            with pytest.raises(ConnectionClosedError) as info:
                await conn.recv()
            assert info.value.code == 1009
            await conn.wait_closed()
            assert conn.close_code == 1009
            assert conn.closed_by == "remote"

    run(main())


def test_graceful_shutdown_sends_1001_to_every_client() -> None:
    async def idle(conn: Connection) -> None:
        await conn.wait_closed()

    async def main() -> None:
        server = await serve(idle)
        clients = [await connect(f"ws://{HOST}:{server.port}/") for _ in range(3)]
        await async_wait_until(lambda: len(server.connections) == 3)
        started = time.monotonic()
        await server.close(timeout=3.0)
        took = time.monotonic() - started
        await asyncio.wait_for(asyncio.gather(*(c.wait_closed() for c in clients)), 5.0)
        assert [c.close_code for c in clients] == [1001] * 3
        assert all(c.closed_by == "remote" and c.close_reason == "going away" for c in clients)
        assert not server.connections
        assert took < 2.0
        with pytest.raises(OSError):
            await connect(f"ws://{HOST}:{server.port}/", open_timeout=2.0)
        await server.wait_closed()

    run(main())


def test_shutdown_aborts_clients_that_do_not_answer_the_close() -> None:
    async def idle(conn: Connection) -> None:
        await conn.wait_closed()

    async def main() -> None:
        config = HeartbeatConfig(interval=30, timeout=10, close_timeout=30)
        server = await serve(idle, config=config)
        _reader, writer = await raw_client(server.port)  # never answers the close frame
        await async_wait_until(lambda: len(server.connections) == 1)
        started = time.monotonic()
        await server.close(timeout=0.3)
        took = time.monotonic() - started
        assert 0.25 < took < 2.0
        assert not server.connections
        writer.close()

    run(main())


def test_handler_return_closes_with_1000_and_error_with_1011() -> None:
    async def handler(conn: Connection) -> None:
        if conn.path == "/fail":
            raise RuntimeError("boom")
        await conn.send("bye")

    async def main() -> None:
        async with await serve(handler) as server:
            conn = await connect(f"ws://{HOST}:{server.port}/ok")
            assert [m async for m in conn] == ["bye"]
            assert (conn.close_code, conn.closed_by) == (1000, "remote")
            conn = await connect(f"ws://{HOST}:{server.port}/fail")
            assert [m async for m in conn] == []
            assert conn.close_code == 1011
            with pytest.raises(ConnectionClosedError):
                await conn.send("late")
            with pytest.raises(ConnectionClosedError):
                await conn.recv()

    logging.getLogger("heartbeat_asyncio").disabled = True
    try:
        run(main())
    finally:
        logging.getLogger("heartbeat_asyncio").disabled = False


def test_a_reader_paused_by_backpressure_never_declares_its_peer_dead() -> None:
    """The client's application reads nothing while the server sends 200 messages: at
    max_queue (32) the client stops reading, so the server's pongs cannot be read.
    Rule paused-reading: its heartbeat (timeout 0.25 s) gives no verdict while paused;
    once the application drains the queue, reading resumes and heartbeats carry on."""
    config = HeartbeatConfig(
        interval=0.05, timeout=0.25, liveness=Liveness.PONG_ONLY, close_timeout=1.0
    )
    quiet = HeartbeatConfig(interval=30.0, timeout=10.0, close_timeout=1.0)
    dead: list[ConnectionEvent] = []

    def message(i: int) -> str:
        # 10 kB each: one 256 KiB read holds at most 26 of them, so the queue stays under
        # max_queue + one read's worth (tiny messages would all fit in a single read).
        return f"message {i}".ljust(10_000, ".")

    async def flood(conn: Connection) -> None:
        for i in range(200):
            await conn.send(message(i))
        await conn.wait_closed()

    def on_event(conn: Connection, event: ConnectionEvent) -> None:
        if isinstance(event, PeerDead):
            dead.append(event)

    async def main() -> None:
        # The server does not heartbeat (quiet): only the paused side's own rule is tested.
        async with (
            await serve(flood, config=quiet) as server,
            connect(f"ws://{HOST}:{server.port}/", config=config, on_event=on_event) as conn,
        ):
            await async_wait_until(lambda: conn.core.reading_paused)
            assert len(conn.queue) <= 32 + 26  # bounded
            sent = conn.stats.pings_sent
            loop = asyncio.get_running_loop()
            end = loop.time() + 1.0  # 3 x (interval + timeout) without reading
            while loop.time() < end:  # observe: no verdict comes
                assert conn.is_open and not dead
                await asyncio.sleep(0.01)
            assert conn.stats.pings_sent <= sent + 1  # one outstanding heartbeat at most
            got = [await asyncio.wait_for(conn.recv(), 5.0) for _ in range(200)]
            assert got == [message(i) for i in range(200)]
            assert not conn.core.reading_paused
            answered = conn.stats.pongs_received
            await async_wait_until(lambda: conn.stats.pongs_received >= answered + 3)
            assert conn.is_open and conn.stats.misses == 0 and not dead

    run(main())


def test_unread_queue_is_bounded_by_pausing_not_closing() -> None:
    """A peer sends far more than the application reads: the receive queue stops
    growing at the byte bound (reading pauses, TCP slows the sender); nothing closes."""
    box: list[Connection] = []

    async def idle(conn: Connection) -> None:
        box.append(conn)
        await conn.wait_closed()

    async def main() -> None:
        async with await serve(idle) as server:
            conn = await connect(
                f"ws://{HOST}:{server.port}/", config=HeartbeatConfig(close_timeout=0.5)
            )
            block = b"z" * (1 << 20)
            stalled = False
            for _ in range(64):  # 64 MiB > the 16 MiB bound + every socket buffer
                try:
                    await asyncio.wait_for(conn.send(block), 0.5)
                except asyncio.TimeoutError:
                    stalled = True  # the server stopped reading: send() waits for the drain
                    break
            assert stalled, "the server read 64 MiB that nobody consumed"
            (server_conn,) = box
            assert server_conn.core.reading_paused
            # One read (256 KiB) and one assembled message past the bound at most.
            assert server_conn.queue.size <= (16 << 20) + (1 << 20) + (256 << 10)
            assert conn.is_open and server_conn.is_open
            # Our close frame waits behind megabytes the server does not read: the
            # close is bounded by close_timeout (then aborted).
            await asyncio.wait_for(conn.close(), 5.0)
            assert conn.close_code == 1000 and conn.closed_by == "local"

    run(main())


def test_closing_while_paused_reads_the_peers_close_frame() -> None:
    """A close started while reading is paused resumes reading (no more messages are
    delivered), so the peer's close frame is read at once instead of waiting for
    close_timeout (3 s here) and aborting."""
    config = HeartbeatConfig(interval=30.0, timeout=10.0, close_timeout=3.0)

    async def burst(conn: Connection) -> None:
        for i in range(40):  # more than max_queue (32)
            await conn.send(f"m{i}")
        await conn.wait_closed()

    async def main() -> None:
        async with await serve(burst, config=config) as server:
            conn = await connect(f"ws://{HOST}:{server.port}/", config=config)
            await async_wait_until(lambda: conn.core.reading_paused)
            loop = asyncio.get_running_loop()
            started = loop.time()
            await asyncio.wait_for(conn.close(), 5.0)
            took = loop.time() - started
            assert conn.close_code == 1000 and conn.closed_by == "local"
            assert took < 1.5, f"the close took {took:.2f} s: the peer's close frame was not read"

    run(main())


def test_send_waits_for_the_write_buffer_to_drain() -> None:
    sizes: list[int] = []

    async def main() -> None:
        stalled = asyncio.Event()

        async def producer(conn: Connection) -> None:
            transport = conn._transport
            assert transport is not None
            chunk = b"p" * 65536
            for _ in range(2000):  # 128 MiB at most: far more than the socket buffers hold
                try:
                    await asyncio.wait_for(conn.send(chunk), 0.3)
                except asyncio.TimeoutError:
                    stalled.set()  # the peer reads nothing: send() waits for the drain
                    break
                sizes.append(transport.get_write_buffer_size())
            await conn.wait_closed()

        config = HeartbeatConfig(interval=30, timeout=10)
        async with await serve(producer, config=config) as server:
            _reader, writer = await raw_client(server.port)  # reads nothing more
            await asyncio.wait_for(stalled.wait(), 10.0)
            writer.close()

    run(main())
    # The buffer never grew much past the transport's high-water mark (64 KiB by default).
    assert sizes and max(sizes) <= 256 * 1024


def test_tls_with_a_self_signed_certificate() -> None:
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    cert = ca.issue_cert(HOST)
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(server_ctx)
    client_ctx = ssl.create_default_context()
    ca.configure_trust(client_ctx)

    async def main() -> None:
        async with await serve(echo, ssl=server_ctx, config=FAST) as server:
            uri = f"wss://{HOST}:{server.port}/"
            async with connect(uri, ssl=client_ctx, config=FAST) as conn:
                await conn.send("secret")
                assert await conn.recv() == "secret"
                assert 0 < await conn.ping() < 1.0
                await async_wait_until(lambda: conn.stats.pongs_received >= 2)
            assert conn.close_code == 1000
            with pytest.raises(ssl.SSLError):
                await connect(uri, ssl=ssl.create_default_context(), open_timeout=5.0)

    run(main())


def test_handshake_errors() -> None:
    async def reject(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_head(reader)
        writer.write(b"HTTP/1.1 403 Forbidden\r\ncontent-length: 2\r\n\r\nno")
        await writer.drain()
        writer.close()

    async def main() -> None:
        raw = await asyncio.start_server(reject, HOST, 0)
        port = raw.sockets[0].getsockname()[1]
        with pytest.raises(HandshakeError) as info:
            await connect(f"ws://{HOST}:{port}/")
        assert info.value.status == 403
        raw.close()
        await raw.wait_closed()
        with pytest.raises(OSError):
            await connect(f"ws://{HOST}:{port}/")

    run(main())


def test_plain_http_requests() -> None:
    def http(target: str) -> tuple[int, list[tuple[str, str]], bytes] | None:
        return (200, [("content-type", "text/plain")], b"ok") if target == "/health" else None

    async def get(port: int, target: str) -> bytes:
        reader, writer = await asyncio.open_connection(HOST, port)
        writer.write(f"GET {target} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        data = await asyncio.wait_for(reader.read(), 5.0)
        writer.close()
        return data

    async def main() -> None:
        async with await serve(echo, http_handler=http) as server:
            ok = await get(server.port, "/health")
            assert ok.startswith(b"HTTP/1.1 200") and ok.endswith(b"ok")
            assert (await get(server.port, "/other")).startswith(b"HTTP/1.1 426")
        async with await serve(echo) as server:
            assert (await get(server.port, "/")).startswith(b"HTTP/1.1 426")

    run(main())


def test_handshake_timeout_drops_silent_clients() -> None:
    async def main() -> None:
        async with await serve(echo, handshake_timeout=0.2) as server:
            reader, writer = await asyncio.open_connection(HOST, server.port)
            started = time.monotonic()
            assert await asyncio.wait_for(reader.read(), 5.0) == b""
            took = time.monotonic() - started
            assert 0.15 < took < 1.5
            writer.close()

    run(main())


def test_tcp_keepalive_is_applied_when_given() -> None:
    keepalive = TcpKeepalive(idle=5, interval=2, count=3)
    seen: list[int] = []

    async def handler(conn: Connection) -> None:
        assert conn._transport is not None
        sock = conn._transport.get_extra_info("socket")
        seen.append(sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE))
        await conn.send("x")
        await conn.wait_closed()

    async def main() -> None:
        async with (
            await serve(handler, keepalive=keepalive) as server,
            connect(f"ws://{HOST}:{server.port}/", keepalive=keepalive) as conn,
        ):
            assert await conn.recv() == "x"
            assert conn._transport is not None
            sock = conn._transport.get_extra_info("socket")
            assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
            if hasattr(socket, "TCP_KEEPIDLE"):
                assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE) == 5
            async with connect(f"ws://{HOST}:{server.port}/") as plain:
                assert plain._transport is not None
                sock = plain._transport.get_extra_info("socket")
                assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 0

    run(main())
    assert seen and seen[0] == 1


def test_open_and_close_are_logged_at_info(caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> None:
        async with await serve(echo) as server, connect(f"ws://{HOST}:{server.port}/") as conn:
            await conn.send("x")
            await conn.recv()

    with caplog.at_level(logging.INFO, logger="heartbeat_asyncio"):
        run(main())
    messages = [r.getMessage() for r in caplog.records if r.name == "heartbeat_asyncio"]
    assert any(" open: " in m for m in messages)
    assert any("closed: code=1000" in m for m in messages)


def test_one_shared_timer_is_not_rearmed_per_inbound_message() -> None:
    from heartbeat_asyncio.loop import share_for

    config = HeartbeatConfig(interval=5.0, timeout=5.0)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        async with (
            await serve(echo, config=config) as server,
            connect(f"ws://{HOST}:{server.port}/", config=config) as conn,
        ):
            await conn.send("warm-up")
            await conn.recv()
            calls = 0
            real_call_at = loop.call_at

            def counting_call_at(*args: object, **kwargs: object) -> asyncio.TimerHandle:
                nonlocal calls
                calls += 1
                return real_call_at(*args, **kwargs)  # type: ignore[arg-type]

            loop.call_at = counting_call_at  # type: ignore[method-assign]
            try:
                for i in range(500):
                    await conn.send(f"m{i}")
                    assert await conn.recv() == f"m{i}"
            finally:
                loop.call_at = real_call_at  # type: ignore[method-assign]
            # 1,000 inbound messages (500 each way) and not one new loop timer.
            assert calls == 0
            # One filing per connection (the wheel moves a filing, never adds one).
            assert len(share_for(loop).wheel) <= 4

    run(main())


def test_a_cancelled_recv_loses_nothing() -> None:
    async def main() -> None:
        async with (
            await serve(echo) as server,
            connect(f"ws://{HOST}:{server.port}/") as conn,
        ):
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(conn.recv(), 0.05)
            await conn.send("after")
            assert await asyncio.wait_for(conn.recv(), 5.0) == "after"

    run(main())


def test_serve_forever_returns_after_close_and_closes_when_cancelled() -> None:
    async def main() -> None:
        server = await serve(echo)
        forever = asyncio.ensure_future(server.serve_forever())
        async with connect(f"ws://{HOST}:{server.port}/") as conn:
            await conn.send("x")
            assert await conn.recv() == "x"
        await server.close()
        await asyncio.wait_for(forever, 5.0)

        server = await serve(echo)
        conn = await connect(f"ws://{HOST}:{server.port}/")
        forever = asyncio.ensure_future(server.serve_forever())
        await asyncio.sleep(0)
        forever.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(forever, 5.0)
        await asyncio.wait_for(conn.wait_closed(), 5.0)
        assert conn.close_code == 1001

    run(main())
