"""``heartbeat_asyncio.serve(on_message=...)``: what only asyncio has. An idle connection
holds no task; a call that does not wait runs in the read, without a task, and one that
waits goes on in a task, in order; a call that starts at once runs in a fresh context;
``Server.close()`` cancels a delivery that does not finish in time; the receive queue's
bounds pause reading while ``on_message`` is slow. (What both adapters do alike is
pinned in tests/adapters/test_contract.py.)

Real sockets on 127.0.0.1; every wait is bounded.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from typing import Any

import pytest
from heartbeat_asyncio import Connection, connect, serve

from heartbeat_core import HeartbeatConfig
from tests.support.docblocks import doc_block
from tests.support.waiting import async_wait_until

from .helpers import HOST, run

QUIET = HeartbeatConfig(interval=30.0, timeout=10.0, close_timeout=1.0)


async def echo(conn: Connection, message: str | bytes) -> None:
    await conn.send(message)


def tasks() -> set[asyncio.Task[object]]:
    return asyncio.all_tasks()


def test_an_idle_connection_holds_no_task() -> None:
    """Five open connections that send nothing: no task at all; a message starts one,
    which ends once the message is handled."""

    async def main() -> None:
        before = tasks()  # (this test's own)
        async with await serve(on_message=echo, config=QUIET) as server:
            clients = [await connect(f"ws://{HOST}:{server.port}/", config=QUIET) for _ in range(5)]
            await async_wait_until(lambda: len(server.connections) == 5)
            assert tasks() == before
            for client in clients:
                await client.send("hello")
            for client in clients:
                assert await asyncio.wait_for(client.recv(), 5.0) == "hello"
            await async_wait_until(lambda: tasks() == before, what="the delivery tasks to end")
            assert server._tasks == set()
            await clients[0].send("again")  # a later message starts a new one
            assert await asyncio.wait_for(clients[0].recv(), 5.0) == "again"
            for client in clients:
                await client.close()

    run(main())


def test_an_on_message_that_does_not_wait_runs_in_the_read_without_a_task() -> None:
    """An echo finishes in the read that brought its message: no task runs it."""
    current: list[asyncio.Task[object] | None] = []

    async def recording_echo(conn: Connection, message: str | bytes) -> None:
        current.append(asyncio.current_task())
        await conn.send(message)

    async def main() -> None:
        server = await serve(on_message=recording_echo, config=QUIET)
        async with server, connect(f"ws://{HOST}:{server.port}/", config=QUIET) as client:
            for i in range(5):
                await client.send(f"m{i}")
                assert await asyncio.wait_for(client.recv(), 5.0) == f"m{i}"
            assert server._tasks == set()

    run(main())
    assert current == [None] * 5


def _loops() -> list[Any]:
    try:
        import uvloop  # noqa: F401
    except ImportError:  # pragma: no cover (uvloop is in the test group)
        return ["asyncio", pytest.param("uvloop", marks=pytest.mark.skip(reason="no uvloop"))]
    return ["asyncio", "uvloop"]


@pytest.mark.parametrize("loop", _loops())
def test_calls_that_wait_go_on_in_a_task_and_keep_the_order(loop: str) -> None:
    """Every third call waits (a sleep, or giving way once): it goes on in a task, the
    messages queued meanwhile wait for it, and every call still sees its message in
    order, one at a time; the replies come back in order. On both loops: what goes on
    in the task is handed over by hand (the future the call waits for)."""
    got: list[str | bytes] = []
    busy: list[bool] = []
    overlaps = 0

    async def sometimes_waits(conn: Connection, message: str | bytes) -> None:
        nonlocal overlaps
        overlaps += bool(busy)
        busy.append(True)
        got.append(message)
        i = int(message)
        if i % 6 == 0:
            await asyncio.sleep(0.005)
        elif i % 3 == 0:
            await asyncio.sleep(0)  # (a bare yield to the loop)
        busy.pop()
        await conn.send(message)

    messages = [str(i) for i in range(30)]

    async def main() -> None:
        server = await serve(on_message=sometimes_waits, config=QUIET)
        async with server, connect(f"ws://{HOST}:{server.port}/", config=QUIET) as client:
            for message in messages:
                await client.send(message)
            assert [await asyncio.wait_for(client.recv(), 5.0) for _ in messages] == messages
            await async_wait_until(lambda: server._tasks == set(), what="the task to end")

    if loop == "uvloop":
        import uvloop

        uvloop.run(asyncio.wait_for(main(), 20.0))
    else:
        run(main())
    assert got == messages and overlaps == 0


def test_an_on_message_that_cancels_itself_at_once_changes_nothing_else(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A call that raises CancelledError before it waits ends quietly, as a task
    cancelled would: nothing is logged, the connection stays open, the next message is
    delivered."""

    async def cancels_on_x(conn: Connection, message: str | bytes) -> None:
        if message == "x":
            raise asyncio.CancelledError
        await conn.send(message)

    async def main() -> None:
        server = await serve(on_message=cancels_on_x, config=QUIET)
        async with server, connect(f"ws://{HOST}:{server.port}/", config=QUIET) as client:
            await client.send("x")
            await client.send("y")
            assert await asyncio.wait_for(client.recv(), 5.0) == "y"
            assert client.is_open

    run(main())
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []


def test_a_call_that_starts_at_once_runs_in_a_context_of_its_own() -> None:
    """What a call sets in a context variable it sees after it waited, and the next
    call, which starts at once too, does not see it (as if each ran in a task of its
    own)."""
    var: contextvars.ContextVar[str | None] = contextvars.ContextVar("var", default=None)
    seen: list[tuple[object, object]] = []

    async def uses_context(conn: Connection, message: str | bytes) -> None:
        before = var.get()
        var.set(str(message))
        if message == "wait":
            await asyncio.sleep(0.001)
        seen.append((before, var.get()))
        await conn.send(message)

    async def main() -> None:
        server = await serve(on_message=uses_context, config=QUIET)
        async with server, connect(f"ws://{HOST}:{server.port}/", config=QUIET) as client:
            for message in ["a", "wait", "b"]:
                await client.send(message)
                assert await asyncio.wait_for(client.recv(), 5.0) == message

    run(main())
    assert seen == [(None, "a"), (None, "wait"), (None, "b")]


def test_an_on_message_may_return_any_awaitable() -> None:
    """A plain def that returns an awaitable other than a coroutine (an object with
    ``__await__``): a task awaits it, and the reply goes out."""

    class Reply:
        def __init__(self, conn: Connection, message: str | bytes) -> None:
            self.conn, self.message = conn, message

        def __await__(self):  # type: ignore[no-untyped-def]
            yield from asyncio.sleep(0).__await__()
            return (yield from self.conn.send(self.message).__await__())

    async def main() -> None:
        server = await serve(on_message=Reply, config=QUIET)  # type: ignore[arg-type]
        async with server, connect(f"ws://{HOST}:{server.port}/", config=QUIET) as client:
            await client.send("hi")
            assert await asyncio.wait_for(client.recv(), 5.0) == "hi"
            assert client.is_open

    run(main())


def test_close_cancels_an_on_message_that_does_not_return_in_time() -> None:
    cancelled: list[str | bytes] = []

    async def main() -> None:
        started = asyncio.Event()

        async def stuck(conn: Connection, message: str | bytes) -> None:
            started.set()
            try:
                await asyncio.Event().wait()  # never set
            except asyncio.CancelledError:
                cancelled.append(message)
                raise

        before = tasks()
        server = await serve(on_message=stuck, config=QUIET)
        async with connect(f"ws://{HOST}:{server.port}/", config=QUIET) as client:
            await client.send("stuck")
            await asyncio.wait_for(started.wait(), 5.0)
            loop = asyncio.get_running_loop()
            began = loop.time()
            await asyncio.wait_for(server.close(timeout=0.3), 5.0)
            took = loop.time() - began
            assert client.close_code == 1001  # the close went out first
        assert 0.25 <= took < 1.3, took  # the timeout, then the cancel (no second wait)
        assert server._tasks == set() and tasks() == before

    run(main())
    assert cancelled == ["stuck"]


def test_a_slow_on_message_pauses_reading_at_max_queue_and_reading_resumes() -> None:
    """40 messages of 32 KB (several reads) while on_message is held: the connection
    stops reading once max_queue messages wait; released, it reads again and every
    message arrives, in order, with no heartbeat missed meanwhile."""
    messages = [f"{i:02d}".encode() * 16384 for i in range(40)]

    async def main() -> None:
        go = asyncio.Event()
        got: list[str | bytes] = []
        conns: list[Connection] = []

        async def slow(conn: Connection, message: str | bytes) -> None:
            conns.append(conn)
            await go.wait()
            got.append(message)
            if len(got) == len(messages):
                await conn.send("done")

        async with (
            await serve(on_message=slow, config=QUIET, max_queue=4) as server,
            connect(f"ws://{HOST}:{server.port}/", config=QUIET) as client,
        ):

            async def send_all() -> None:
                for message in messages:
                    await client.send(message)

            sending = asyncio.ensure_future(send_all())  # (TCP may hold it back: not awaited yet)
            await async_wait_until(lambda: conns and conns[0].core.reading_paused)
            conn = conns[0]
            assert len(conn.queue) >= 4 and conn.queue.paused
            assert len(got) == 0 and len(server._tasks) == 1
            go.set()
            await asyncio.wait_for(sending, 10.0)
            assert await asyncio.wait_for(client.recv(), 10.0) == "done"
            assert got == messages
            assert not conn.core.reading_paused and not conn.queue.paused
            assert conn.stats.misses == 0 and conn.is_open

    run(main())


def test_an_on_message_that_is_no_coroutine_function_closes_with_1011(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A plain def (what heartbeat_threading takes) returns no awaitable: the error says
    so, and the connection closes as when on_message raises."""

    def plain(conn: Connection, message: str | bytes) -> None:
        pass

    async def main() -> None:
        async with (
            await serve(on_message=plain, config=QUIET) as server,  # type: ignore[arg-type]
            connect(f"ws://{HOST}:{server.port}/", config=QUIET) as client,
        ):
            await client.send("hi")
            await asyncio.wait_for(client.wait_closed(), 5.0)
            assert client.close_code == 1011

    run(main())
    (record,) = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert record.name == "heartbeat_asyncio" and record.exc_info is not None
    assert "define it with async def" in str(record.exc_info[1])


def test_the_reference_page_example_runs() -> None:
    exec(doc_block("docs/reference/asyncio.rst", "asyncio-on-message"), {})
