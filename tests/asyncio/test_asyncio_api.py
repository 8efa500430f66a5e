"""heartbeat_asyncio's public knobs: max_queue / max_queue_bytes on connect, serve and
connect_forever, and connect_forever as an async generator (``contextlib.aclosing``).

Real sockets on 127.0.0.1; every wait is bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import pytest
from heartbeat_asyncio import Connection, connect, connect_forever, serve

from heartbeat_core import BackoffPolicy, ConnectionEvent, HeartbeatConfig, Message
from heartbeat_core.errors import ConfigError
from tests.support.waiting import async_wait_until

from .helpers import HOST, run

# Slow heartbeats: these tests are about the receive queue, not liveness.
QUIET = HeartbeatConfig(interval=30.0, timeout=10.0, close_timeout=1.0)
COUNT = 10
#: Ten messages of 40 bytes each, text and binary mixed: order and type must survive.
MESSAGES: list[str | bytes] = [
    f"text message {i:02d} ".ljust(40, "t")
    if i % 2 == 0
    else f"bin {i:02d} ".encode().ljust(40, b"b")
    for i in range(COUNT)
]
#: Each bound makes a connection pause well before ten messages are queued.
SMALL_BOUNDS: list[dict[str, Any]] = [{"max_queue": 2}, {"max_queue_bytes": 64}]
BAD_VALUES: list[Any] = [0, -1, 1.5, True, False, "2", None]


class Counter:
    """Counts the messages a connection's core delivered (through ``on_event``) and
    wakes a waiter once ``target`` have arrived."""

    def __init__(self, target: int) -> None:
        self.target = target
        self.count = 0
        self.done = asyncio.Event()

    def __call__(self, conn: Connection, event: ConnectionEvent) -> None:
        if isinstance(event, Message):
            self.count += 1
            if self.count >= self.target:
                self.done.set()


async def send_all(conn: Connection) -> None:
    for message in MESSAGES:
        await conn.send(message)


async def recv_all(conn: Connection) -> list[str | bytes]:
    return [await asyncio.wait_for(conn.recv(), 5.0) for _ in range(COUNT)]


# ------------------------------------------------------------------ serve()


@pytest.mark.parametrize("bounds", SMALL_BOUNDS, ids=repr)
def test_serve_bound_pauses_reading_then_delivers_everything_in_order(
    bounds: dict[str, Any],
) -> None:
    """A handler that does not read yet: the server connection stops reading at the
    bound; once the handler reads, all ten messages arrive intact and in order, and
    reading resumes."""

    async def main() -> None:
        opened: asyncio.Queue[Connection] = asyncio.Queue()
        go = asyncio.Event()
        received: asyncio.Future[list[str | bytes]] = asyncio.get_running_loop().create_future()

        async def handler(conn: Connection) -> None:
            await opened.put(conn)
            await go.wait()
            received.set_result(await recv_all(conn))
            await conn.wait_closed()

        async with (
            await serve(handler, config=QUIET, **bounds) as server,
            connect(f"ws://{HOST}:{server.port}/", config=QUIET) as client,
        ):
            server_conn = await asyncio.wait_for(opened.get(), 5.0)
            await asyncio.wait_for(send_all(client), 5.0)
            await async_wait_until(lambda: server_conn.core.reading_paused)
            assert server_conn.is_open and client.is_open
            go.set()
            assert await asyncio.wait_for(received, 10.0) == MESSAGES
            assert not server_conn.core.reading_paused
            assert server_conn.is_open

    run(main())


def test_serve_default_bounds_do_not_pause_for_ten_messages() -> None:
    """The contrast: with the defaults (32 messages, 16 MiB) the same ten messages
    are all read without pausing."""

    async def main() -> None:
        counter = Counter(COUNT)
        opened: asyncio.Queue[Connection] = asyncio.Queue()
        go = asyncio.Event()
        received: asyncio.Future[list[str | bytes]] = asyncio.get_running_loop().create_future()

        async def handler(conn: Connection) -> None:
            await opened.put(conn)
            await go.wait()
            received.set_result(await recv_all(conn))
            await conn.wait_closed()

        async with (
            await serve(handler, config=QUIET, on_event=counter) as server,
            connect(f"ws://{HOST}:{server.port}/", config=QUIET) as client,
        ):
            server_conn = await asyncio.wait_for(opened.get(), 5.0)
            await asyncio.wait_for(send_all(client), 5.0)
            await asyncio.wait_for(counter.done.wait(), 5.0)
            assert not server_conn.core.reading_paused
            go.set()
            assert await asyncio.wait_for(received, 10.0) == MESSAGES

    run(main())


# ---------------------------------------------------------------- connect()


@pytest.mark.parametrize("bounds", SMALL_BOUNDS, ids=repr)
def test_connect_bound_pauses_reading_then_delivers_everything_in_order(
    bounds: dict[str, Any],
) -> None:
    """The server sends ten messages the client does not read yet: the client stops
    reading at the bound; then all ten arrive intact and in order."""

    async def flood(conn: Connection) -> None:
        await send_all(conn)
        await conn.wait_closed()

    async def main() -> None:
        async with (
            await serve(flood, config=QUIET) as server,
            connect(f"ws://{HOST}:{server.port}/", config=QUIET, **bounds) as client,
        ):
            await async_wait_until(lambda: client.core.reading_paused)
            assert client.is_open
            assert await recv_all(client) == MESSAGES
            assert not client.core.reading_paused
            assert client.is_open

    run(main())


def test_connect_default_bounds_do_not_pause_for_ten_messages() -> None:
    async def flood(conn: Connection) -> None:
        await send_all(conn)
        await conn.wait_closed()

    async def main() -> None:
        counter = Counter(COUNT)
        async with (
            await serve(flood, config=QUIET) as server,
            connect(f"ws://{HOST}:{server.port}/", config=QUIET, on_event=counter) as client,
        ):
            await asyncio.wait_for(counter.done.wait(), 5.0)
            assert not client.core.reading_paused
            assert await recv_all(client) == MESSAGES

    run(main())


# ---------------------------------------------------------- connect_forever()


def test_connect_forever_passes_the_bounds_on_and_closes_under_aclosing() -> None:
    """connect_forever forwards max_queue to every connect(); as an async generator it
    works with contextlib.aclosing, which closes the current connection on leaving."""

    async def flood(conn: Connection) -> None:
        await send_all(conn)
        await conn.wait_closed()

    async def main() -> None:
        async with await serve(flood, config=QUIET) as server:
            uri = f"ws://{HOST}:{server.port}/"
            async with contextlib.aclosing(
                connect_forever(uri, config=QUIET, max_queue=2)
            ) as conns:
                conn = await asyncio.wait_for(anext(conns), 5.0)
                await async_wait_until(lambda: conn.core.reading_paused)
                assert await recv_all(conn) == MESSAGES
            # aclosing ran the generator's finally: the connection closed with 1000.
            await asyncio.wait_for(conn.wait_closed(), 5.0)
            assert conn.close_code == 1000 and conn.closed_by == "local"

    run(main())


@pytest.mark.parametrize("name", ["max_queue", "max_queue_bytes"])
def test_connect_forever_raises_a_bad_bound_instead_of_retrying(name: str) -> None:
    """A ConfigError is a mistake, not a network failure: no Retrying is reported."""
    states: list[object] = []

    async def main() -> None:
        # Nothing listens on this URI: the error must come before any attempt.
        forever = connect_forever(
            f"ws://{HOST}:9/",
            backoff=BackoffPolicy(initial=0.01, maximum=0.01),
            on_state=states.append,
            **{name: 0},
        )
        with pytest.raises(ConfigError, match=name):
            await asyncio.wait_for(anext(forever), 5.0)

    run(main())
    assert states == []


# ------------------------------------------------------------- bad values


@pytest.mark.parametrize("value", BAD_VALUES, ids=repr)
@pytest.mark.parametrize("name", ["max_queue", "max_queue_bytes"])
def test_connect_rejects_a_bad_bound_at_call_time(name: str, value: Any) -> None:
    # No server and no event loop needed: connect() validates before it returns.
    with pytest.raises(ConfigError, match=rf"{name} must be a positive int.*got {value!r}"):
        connect(f"ws://{HOST}:9/", **{name: value})


@pytest.mark.parametrize("value", BAD_VALUES, ids=repr)
@pytest.mark.parametrize("name", ["max_queue", "max_queue_bytes"])
def test_serve_rejects_a_bad_bound_before_listening(name: str, value: Any) -> None:
    async def handler(conn: Connection) -> None:
        raise AssertionError("never called")

    async def main() -> None:
        with pytest.raises(ConfigError, match=rf"{name} must be a positive int.*got {value!r}"):
            await serve(handler, **{name: value})

    run(main(), timeout=5.0)


def test_the_smallest_bounds_are_accepted() -> None:
    """1 is a valid bound for both (every message pauses reading; all still arrive)."""

    async def flood(conn: Connection) -> None:
        await send_all(conn)
        await conn.wait_closed()

    async def main() -> None:
        async with (
            await serve(flood, config=QUIET, max_queue=1, max_queue_bytes=1) as server,
            connect(
                f"ws://{HOST}:{server.port}/", config=QUIET, max_queue=1, max_queue_bytes=1
            ) as client,
        ):
            await async_wait_until(lambda: client.core.reading_paused)
            assert await recv_all(client) == MESSAGES

    run(main())
