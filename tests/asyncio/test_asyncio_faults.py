"""Issue 3's faults against the asyncio adapter, on loopback, every wait bounded.

Measured figures are printed (run with ``-s`` to see them) and kept in ``FIGURES``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import time
from typing import Any

import pytest
from heartbeat_asyncio import (
    Connected,
    Connection,
    Disconnected,
    ReconnectEvent,
    Retrying,
    connect,
    connect_forever,
    serve,
)

from heartbeat_core import BackoffPolicy, ConnectionEvent, HeartbeatConfig, PeerDead, RttSample
from tests.support.frames import ZERO_MASK, frame_header

from .helpers import (
    HOST,
    ThreadPeer,
    frozen_server,
    raw_client,
    read_frame,
    run,
)

FIGURES: dict[str, float] = {}


def record(name: str, value: float) -> None:
    FIGURES[name] = value
    print(f"[figure] {name}: {value:.3f} s")


def test_server_frees_a_half_open_peer_within_interval_plus_timeout() -> None:
    interval, timeout = 0.2, 0.2
    config = HeartbeatConfig(interval=interval, timeout=timeout, close_timeout=0.5)
    closed_at: list[float] = []
    opened_at: list[float] = []

    def on_event(conn: Connection, event: ConnectionEvent) -> None:
        if type(event).__name__ == "Closed":
            closed_at.append(time.monotonic())

    async def handler(conn: Connection) -> None:
        opened_at.append(time.monotonic())
        await conn.wait_closed()

    async def main() -> None:
        async with await serve(handler, config=config, on_event=on_event) as server:
            _reader, writer = await raw_client(server.port)  # then never reads nor answers
            while not closed_at:
                await asyncio.wait_for(asyncio.sleep(0.01), 1.0)
                assert time.monotonic() - opened_at[0] < 5.0
            assert not server.connections
            writer.close()

    run(main())
    took = closed_at[0] - opened_at[0]
    record("half-open peer freed by server (interval=timeout=0.2)", took)
    assert interval + timeout - 0.05 <= took <= interval + timeout + 1.0


def test_client_detects_a_frozen_server() -> None:
    interval, timeout = 0.2, 0.2
    config = HeartbeatConfig(interval=interval, timeout=timeout, close_timeout=0.5)

    async def main() -> None:
        opened: asyncio.Queue[Any] = asyncio.Queue()
        raw = await frozen_server(opened)
        port = raw.sockets[0].getsockname()[1]
        events: list[ConnectionEvent] = []
        conn = await connect(
            f"ws://{HOST}:{port}/", config=config, on_event=lambda c, e: events.append(e)
        )
        started = time.monotonic()
        await asyncio.wait_for(conn.wait_closed(), 5.0)
        took = time.monotonic() - started
        record("frozen server detected by client (interval=timeout=0.2)", took)
        assert interval + timeout - 0.05 <= took <= interval + timeout + 1.0
        assert conn.close_code == 1011 and conn.close_reason == "heartbeat-timeout"
        assert any(isinstance(e, PeerDead) for e in events)
        (await opened.get()).close()
        raw.close()
        await raw.wait_closed()

    run(main())


def _thread_server(config: HeartbeatConfig | None) -> ThreadPeer:
    async def main(stop: asyncio.Event, ready: concurrent.futures.Future[Any]) -> None:
        async def echo(conn: Connection) -> None:
            async for message in conn:
                await conn.send(message)

        async with await serve(echo, config=config) as server:
            ready.set_result(server.port)
            await stop.wait()

    return ThreadPeer(main)


def _thread_client(port: int) -> ThreadPeer:
    async def main(stop: asyncio.Event, ready: concurrent.futures.Future[Any]) -> None:
        async with connect(f"ws://{HOST}:{port}/") as conn:
            ready.set_result(None)
            await stop.wait()
            assert conn.is_open

    return ThreadPeer(main)


def _block_our_loop_repeatedly(
    conn: Connection, events: list[ConnectionEvent], timeout: float
) -> Any:
    async def body() -> None:
        loop = asyncio.get_running_loop()
        end = loop.time() + 5.0
        while sum(isinstance(e, RttSample) for e in events) < 2:
            assert loop.time() < end
            await asyncio.sleep(0.01)
        for offset in (0.0, 0.03, 0.07):
            await asyncio.sleep(offset)
            time.sleep(3 * timeout)  # our loop is blocked; the peer keeps answering
        before = conn.stats.pongs_received
        while conn.stats.pongs_received < before + 3:
            assert loop.time() < end + 3.0
            await asyncio.sleep(0.01)
        assert conn.is_open
        assert not any(isinstance(e, PeerDead) for e in events)

    return body()


def test_our_client_loop_blocked_for_three_timeouts_declares_nobody_dead() -> None:
    interval, timeout = 0.1, 0.2
    config = HeartbeatConfig(interval=interval, timeout=timeout)
    events: list[ConnectionEvent] = []
    with _thread_server(None) as peer:
        port = peer.ready.result()

        async def main() -> None:
            async with connect(
                f"ws://{HOST}:{port}/", config=config, on_event=lambda c, e: events.append(e)
            ) as conn:
                await _block_our_loop_repeatedly(conn, events, timeout)
                await conn.send("still here")
                assert await conn.recv() == "still here"

        run(main())


def test_our_server_loop_blocked_for_three_timeouts_declares_nobody_dead() -> None:
    interval, timeout = 0.1, 0.2
    config = HeartbeatConfig(interval=interval, timeout=timeout)
    events: list[ConnectionEvent] = []

    async def main() -> None:
        conns: asyncio.Queue[Connection] = asyncio.Queue()

        async def handler(conn: Connection) -> None:
            await conns.put(conn)
            await conn.wait_closed()

        server = await serve(handler, config=config, on_event=lambda c, e: events.append(e))
        loop = asyncio.get_running_loop()
        # The peer runs in its own thread and loop: our blocking cannot stop it.
        peer = _thread_client(server.port)
        await loop.run_in_executor(None, peer.__enter__)
        try:
            conn = await asyncio.wait_for(conns.get(), 5.0)
            await _block_our_loop_repeatedly(conn, events, timeout)
        finally:
            await loop.run_in_executor(None, peer.__exit__)
            await server.close()

    run(main())


def test_a_slow_20_mb_message_does_not_get_its_sender_declared_dead() -> None:
    config = HeartbeatConfig(interval=0.5, timeout=0.5)
    size, chunk, gap = 20 * 1024 * 1024, 320 * 1024, 0.04
    events: list[ConnectionEvent] = []

    async def handler(conn: Connection) -> None:
        message = await conn.recv()
        await conn.send(f"got {len(message)}")
        await conn.wait_closed()

    async def main() -> None:
        async with await serve(
            handler,
            config=config,
            max_size=32 * 1024 * 1024,
            on_event=lambda c, e: events.append(e),
        ) as server:
            reader, writer = await raw_client(server.port)
            writer.write(frame_header(0x2, size, mask=ZERO_MASK))
            started = time.monotonic()
            payload = b"\xab" * chunk
            sent = 0
            while sent < size:  # bytes keep arriving, well spaced: ~2.6 s in all
                part = payload[: min(chunk, size - sent)]
                writer.write(part)
                await asyncio.wait_for(writer.drain(), 5.0)
                sent += len(part)
                await asyncio.sleep(gap)
            took = time.monotonic() - started
            while True:
                opcode, data = await asyncio.wait_for(read_frame(reader), 10.0)
                if opcode == 0x1:
                    break
                assert opcode in (0x9, 0xA), (opcode, data[:40])  # a close is not fine
            assert data == f"got {size}".encode()
            record("20 MB message sent slowly (interval=timeout=0.5), transfer time", took)
            assert took > 1.0  # longer than interval + timeout: the rule was exercised
            assert not any(isinstance(e, PeerDead) for e in events)
            writer.close()

    run(main(), timeout=40.0)


def test_connect_forever_comes_back_after_a_server_restart() -> None:
    config = HeartbeatConfig(interval=0.1, timeout=0.3, close_timeout=0.5)
    policy = BackoffPolicy(initial=0.05, multiplier=2.0, maximum=0.2, full_jitter=False)
    states: list[tuple[float, ReconnectEvent]] = []

    async def echo(conn: Connection) -> None:
        async for message in conn:
            await conn.send(message)

    async def main() -> None:
        connected = asyncio.Queue[Connection]()
        server = await serve(echo, config=config)
        port = server.port
        uri = f"ws://{HOST}:{port}/"

        async def consume() -> None:
            async with contextlib.aclosing(
                connect_forever(
                    uri,
                    backoff=policy,
                    on_state=lambda e: states.append((time.monotonic(), e)),
                    config=config,
                    open_timeout=2.0,
                )
            ) as conns:
                async for conn in conns:
                    await conn.send("hello")
                    assert await conn.recv() == "hello"
                    await connected.put(conn)
                    async for _ in conn:
                        pass

        consumer = asyncio.ensure_future(consume())
        first = await asyncio.wait_for(connected.get(), 5.0)
        await server.close()
        await asyncio.wait_for(first.wait_closed(), 5.0)
        assert first.close_code == 1001
        await asyncio.sleep(0.5)  # down for a while: attempts fail and back off
        restarted = time.monotonic()
        server = await serve(echo, port=port, config=config)
        second = await asyncio.wait_for(connected.get(), 5.0)
        back = time.monotonic() - restarted
        assert second.is_open and second is not first
        record("reconnect delay after the server came back (backoff max 0.2)", back)
        assert back < 0.2 + 1.0
        consumer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(consumer, 5.0)
        await server.close()

    run(main())
    kinds = [type(e) for _, e in states]
    assert kinds[0] is Connected
    assert kinds[1] is Disconnected
    first_down = states[1][1]
    assert isinstance(first_down, Disconnected) and first_down.code == 1001
    failures = [e for _, e in states if isinstance(e, Disconnected) and e.error is not None]
    assert failures and all(isinstance(e.error, OSError) for e in failures)
    retries = [e for _, e in states if isinstance(e, Retrying)]
    assert len(retries) >= 3
    delays = [r.delay for r in retries]
    assert delays[:3] == pytest.approx([0.05, 0.1, 0.2])  # exponential, capped at 0.2
    assert kinds.count(Connected) == 2


def test_connect_forever_reconnects_when_the_heartbeat_declares_the_server_dead() -> None:
    config = HeartbeatConfig(interval=0.1, timeout=0.2, close_timeout=0.3)
    policy = BackoffPolicy(initial=0.05, maximum=0.1, full_jitter=False)
    states: list[ReconnectEvent] = []

    async def main() -> None:
        opened: asyncio.Queue[Any] = asyncio.Queue()
        raw = await frozen_server(opened)
        uri = f"ws://{HOST}:{raw.sockets[0].getsockname()[1]}/"
        conns = connect_forever(uri, backoff=policy, on_state=states.append, config=config)
        count = 0
        async with contextlib.aclosing(conns):
            async for conn in conns:
                count += 1
                await conn.wait_closed()  # the frozen server never answers: found dead
                assert conn.close_reason == "heartbeat-timeout"
                if count == 2:
                    break
        while not opened.empty():
            (await opened.get()).close()
        raw.close()
        await raw.wait_closed()

    run(main())
    down = [e for e in states if isinstance(e, Disconnected)]
    assert [e.code for e in down] == [1011]
    assert [type(e) for e in states[:3]] == [Connected, Disconnected, Retrying]
    assert states[3:] == [states[0]]  # connected again; the generator closed on break
