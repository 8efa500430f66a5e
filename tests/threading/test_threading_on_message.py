"""``heartbeat_threading.serve(on_message=...)``: messages delivered by worker threads
started as needed, so that an idle connection holds no thread.

Real sockets on 127.0.0.1; every wait is bounded.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from typing import Any

import pytest
from heartbeat_threading import Connection, connect, serve

from heartbeat_core import HeartbeatConfig
from heartbeat_core.errors import ConfigError
from tests.support.docblocks import doc_block
from tests.support.waiting import wait_until

QUIET = HeartbeatConfig(interval=30.0, timeout=10.0, close_timeout=1.0)
MESSAGES: list[str | bytes] = [
    f"text {i:02d}" if i % 2 == 0 else f"bin {i:02d}".encode() for i in range(40)
]


def uri(port: int) -> str:
    return f"ws://127.0.0.1:{port}/"


def echo(conn: Connection, message: str | bytes) -> None:
    conn.send(message)


def threads_named(prefix: str) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith(prefix) and t.is_alive()]


def test_echo_in_order_text_and_binary() -> None:
    with (
        serve(on_message=echo, config=QUIET) as server,
        connect(uri(server.port), config=QUIET) as client,
    ):
        for message in MESSAGES:
            client.send(message)
        assert [client.recv(timeout=5.0) for _ in MESSAGES] == MESSAGES


def test_idle_connections_hold_no_thread() -> None:
    """Twenty open connections that send nothing: no handler thread, no worker; the
    first message starts one worker, which stays for the next ones."""
    with serve(on_message=echo, config=QUIET) as server:
        clients = [connect(uri(server.port), config=QUIET) for _ in range(20)]
        try:
            wait_until(lambda: len(server.connections) == 20)
            assert threads_named("heartbeat-handler") == []
            assert threads_named("heartbeat-worker") == []
            clients[0].send("hello")
            assert clients[0].recv(timeout=5.0) == "hello"
            assert len(threads_named("heartbeat-worker")) == 1
            assert threads_named("heartbeat-handler") == []
        finally:
            for client in clients:
                client.close()


def test_one_at_a_time_and_in_order_per_connection_across_workers() -> None:
    """Six connections, two workers, forty messages each: every connection's messages
    arrive in order and never two at once, while connections are served in parallel."""
    lock = threading.Lock()
    busy: dict[int, int] = defaultdict(int)
    seen: dict[int, list[str | bytes]] = defaultdict(list)
    overlaps: list[int] = []
    both = threading.Barrier(2, timeout=5.0)
    parallel = threading.Event()

    def on_message(conn: Connection, message: str | bytes) -> None:
        key = id(conn)
        with lock:
            busy[key] += 1
            if busy[key] > 1:
                overlaps.append(key)
            seen[key].append(message)
        if message == "meet" and not parallel.is_set():
            both.wait()  # two connections at once: both workers are in on_message
            parallel.set()
        with lock:
            busy[key] -= 1
        if message == MESSAGES[-1]:
            conn.send("done")

    with serve(on_message=on_message, config=QUIET, max_workers=2) as server:
        clients = [connect(uri(server.port), config=QUIET) for _ in range(6)]
        try:
            clients[0].send("meet")
            clients[1].send("meet")
            assert parallel.wait(5.0)
            for client in clients:
                for message in MESSAGES:
                    client.send(message)
            for client in clients:
                assert client.recv(timeout=10.0) == "done"
            assert len(threads_named("heartbeat-worker")) == 2
        finally:
            for client in clients:
                client.close()
    assert overlaps == []
    assert sorted(len(v) for v in seen.values()) == [40] * 4 + [41] * 2
    for messages in seen.values():
        assert [m for m in messages if m != "meet"] == MESSAGES


def test_a_raising_on_message_closes_with_1011_and_gets_nothing_more() -> None:
    calls: list[str | bytes] = []

    def on_message(conn: Connection, message: str | bytes) -> None:
        calls.append(message)
        raise ValueError("boom")

    with (
        serve(on_message=on_message, config=QUIET) as server,
        connect(uri(server.port), config=QUIET) as client,
    ):
        client.send("first")
        client.send("second")
        client.wait_closed()
        assert client.close_code == 1011
    assert calls == ["first"]


def test_a_slow_on_message_pauses_reading_then_gets_everything() -> None:
    """The receive-queue bound applies as for recv(): while on_message is stuck the
    connection stops reading; afterwards every message arrives, in order."""
    go = threading.Event()
    got: list[str | bytes] = []
    opened: list[Connection] = []

    def on_message(conn: Connection, message: str | bytes) -> None:
        opened.append(conn)
        go.wait(10.0)
        got.append(message)
        if len(got) == len(MESSAGES):
            conn.send("done")

    try:
        with (
            serve(on_message=on_message, config=QUIET, max_queue=2) as server,
            connect(uri(server.port), config=QUIET) as client,
        ):
            for message in MESSAGES:
                client.send(message)
            wait_until(lambda: opened and opened[0].core.reading_paused)
            go.set()
            assert client.recv(timeout=10.0) == "done"
            assert got == MESSAGES
            assert not opened[0].core.reading_paused and opened[0].stats.misses == 0
    finally:
        go.set()


def test_close_delivers_what_was_received() -> None:
    """Server.close() while messages wait: on_message still gets them all."""
    go = threading.Event()
    got: list[str | bytes] = []

    def on_message(conn: Connection, message: str | bytes) -> None:
        go.wait(5.0)
        got.append(message)

    server = serve(on_message=on_message, config=QUIET)
    with connect(uri(server.port), config=QUIET) as client:
        for message in MESSAGES[:5]:
            client.send(message)
        wait_until(lambda: [len(conn.queue) for conn in server.connections] == [4])
        threading.Timer(0.2, go.set).start()
        server.close()
    assert got == MESSAGES[:5]
    assert threads_named("heartbeat-worker") == []


def test_close_from_on_message_does_not_wait_for_itself() -> None:
    closed = threading.Event()
    holder: list[Any] = []

    def on_message(conn: Connection, message: str | bytes) -> None:
        holder[0].close(timeout=2.0)
        closed.set()

    server = serve(on_message=on_message, config=QUIET)
    holder.append(server)
    with connect(uri(server.port), config=QUIET) as client:
        client.send("stop")
        assert closed.wait(5.0)
        client.wait_closed()
        assert client.close_code == 1001
    server.wait_closed()


@pytest.mark.parametrize(
    "kwargs", [{}, {"handler": echo, "on_message": echo}], ids=["neither", "both"]
)
def test_serve_needs_exactly_one_of_handler_and_on_message(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ConfigError, match="exactly one"):
        serve(**kwargs)


@pytest.mark.parametrize("value", [0, -1, 1.5, True, "2", None], ids=repr)
def test_serve_rejects_a_bad_max_workers_before_listening(value: Any) -> None:
    with pytest.raises(ConfigError, match=rf"max_workers must be a positive int.*got {value!r}"):
        serve(on_message=echo, max_workers=value)


def test_the_reference_page_example_runs() -> None:
    exec(doc_block("docs/reference/threading.rst", "threading-on-message"), {})
