"""heartbeat_threading's receive-queue bounds: max_queue / max_queue_bytes on connect,
serve and connect_forever, with the same rule and validation as heartbeat_asyncio's.

Real sockets on 127.0.0.1; every wait is bounded.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from typing import Any

import pytest
from heartbeat_threading import Connection, connect, connect_forever, serve

from heartbeat_core import BackoffPolicy, ConnectionEvent, HeartbeatConfig, Message
from heartbeat_core.errors import ConfigError, ConnectionClosedError
from tests.support.waiting import wait_until

from .helpers import SLACK

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
NAMES = ["max_queue", "max_queue_bytes"]
#: Nothing listens here: a connect() that got past validation would fail with OSError.
NOWHERE = "ws://127.0.0.1:9/"


class Counter:
    """on_event hook (I/O thread): counts delivered messages, sets ``done`` at ``target``."""

    def __init__(self, target: int) -> None:
        self.target = target
        self.count = 0
        self.done = threading.Event()

    def __call__(self, conn: Connection, event: ConnectionEvent) -> None:
        if isinstance(event, Message):
            self.count += 1
            if self.count >= self.target:
                self.done.set()


def send_all(conn: Connection) -> None:
    for message in MESSAGES:
        conn.send(message)


def recv_all(conn: Connection) -> list[str | bytes]:
    return [conn.recv(timeout=5.0) for _ in range(COUNT)]


def flood(conn: Connection) -> None:
    """Server handler: send the ten messages, then stay until the client leaves."""
    send_all(conn)
    conn.wait_closed()


def barrier(conn: Connection) -> None:
    """Wait until the connection's I/O thread has run everything queued before now
    (its calls run in order), e.g. a resume that a ``recv()`` just asked for."""
    done = threading.Event()
    assert conn._reactor.call_soon(done.set)
    assert done.wait(5.0), "the I/O thread did not answer"


class WaitingHandler:
    """A server handler that does not read until ``go`` is set, then reads the ten
    messages (``received``) and stays until the client leaves."""

    def __init__(self) -> None:
        self.opened: queue.Queue[Connection] = queue.Queue()
        self.go = threading.Event()
        self.received: queue.Queue[list[str | bytes]] = queue.Queue()

    def __call__(self, conn: Connection) -> None:
        self.opened.put(conn)
        if not self.go.wait(10.0):
            return
        self.received.put(recv_all(conn))
        with contextlib.suppress(ConnectionClosedError):
            conn.recv(timeout=10.0)  # returns when the client closes


# ------------------------------------------------------------------ serve()


@pytest.mark.parametrize("bounds", SMALL_BOUNDS, ids=repr)
def test_serve_bound_pauses_reading_then_delivers_everything_in_order(
    bounds: dict[str, Any],
) -> None:
    """A handler that does not read yet: the server connection stops reading at the
    bound; once the handler reads, all ten messages arrive intact and in order, and
    reading resumes."""
    handler = WaitingHandler()
    try:
        with (
            serve(handler, config=QUIET, **bounds) as server,
            connect(f"ws://127.0.0.1:{server.port}/", config=QUIET) as client,
        ):
            server_conn = handler.opened.get(timeout=5.0)
            send_all(client)
            wait_until(lambda: server_conn.core.reading_paused)
            assert server_conn.is_open and client.is_open
            handler.go.set()
            assert handler.received.get(timeout=10.0) == MESSAGES
            wait_until(lambda: not server_conn.core.reading_paused)  # resumed by the I/O thread
            assert server_conn.is_open and server_conn.stats.misses == 0
    finally:
        handler.go.set()  # a failed test must not leave the handler waiting


def test_serve_default_bounds_do_not_pause_for_ten_messages() -> None:
    """The contrast: with the defaults (32 messages, 16 MiB) the same ten messages
    are all read without pausing."""
    handler = WaitingHandler()
    counter = Counter(COUNT)
    try:
        with (
            serve(handler, config=QUIET, on_event=counter) as server,
            connect(f"ws://127.0.0.1:{server.port}/", config=QUIET) as client,
        ):
            server_conn = handler.opened.get(timeout=5.0)
            send_all(client)
            assert counter.done.wait(5.0)
            assert not server_conn.core.reading_paused
            handler.go.set()
            assert handler.received.get(timeout=10.0) == MESSAGES
    finally:
        handler.go.set()


# ---------------------------------------------------------------- connect()


@pytest.mark.parametrize("bounds", SMALL_BOUNDS, ids=repr)
def test_connect_bound_pauses_reading_then_delivers_everything_in_order(
    bounds: dict[str, Any],
) -> None:
    """The server sends ten messages the client does not read yet: the client stops
    reading at the bound; then all ten arrive intact and in order."""
    with (
        serve(flood, config=QUIET) as server,
        connect(f"ws://127.0.0.1:{server.port}/", config=QUIET, **bounds) as client,
    ):
        wait_until(lambda: client.core.reading_paused)
        assert client.is_open
        assert recv_all(client) == MESSAGES
        wait_until(lambda: not client.core.reading_paused)
        assert client.is_open and client.stats.misses == 0


def test_connect_default_bounds_do_not_pause_for_ten_messages() -> None:
    counter = Counter(COUNT)
    with (
        serve(flood, config=QUIET) as server,
        connect(f"ws://127.0.0.1:{server.port}/", config=QUIET, on_event=counter) as client,
    ):
        assert counter.done.wait(5.0)
        assert not client.core.reading_paused
        assert recv_all(client) == MESSAGES


def test_the_byte_bound_caps_what_large_messages_queue() -> None:
    """The point of max_queue_bytes: 40 messages of 100 kB would fill the default 32
    message slots (3.2 MB); with max_queue_bytes=200_000 reading stops after a few.
    Once paused, what waits is at most the bound + one read (256 KiB) + one message
    already buffered; the 40 still arrive intact and in order."""
    size, total, bound = 100_000, 40, 200_000

    def big(conn: Connection) -> None:
        for i in range(total):
            conn.send(b"%03d " % i + b"m" * (size - 4))
        conn.wait_closed()

    with (
        serve(big, config=QUIET) as server,
        connect(f"ws://127.0.0.1:{server.port}/", config=QUIET, max_queue_bytes=bound) as client,
    ):
        wait_until(lambda: client.core.reading_paused)
        limit = bound + 256 * 1024 + size
        window = time.monotonic() + 0.2
        while time.monotonic() < window:  # observe: the queue does not grow while paused
            with client._cond:  # (the queue is shared with the I/O thread under this lock)
                queued = client.queue.size
                count = len(client.queue)
            assert queued <= limit and count < 32, (count, queued)
            time.sleep(0.01)
        got = [client.recv(timeout=SLACK + 4.0) for _ in range(total)]
        assert [m[:3] for m in got] == [b"%03d" % i for i in range(total)]
        assert all(len(m) == size for m in got)
        assert client.is_open and client.stats.misses == 0


# ---------------------------------------------- the rule, step by step


@pytest.mark.parametrize(
    ("max_queue", "max_queue_bytes", "size", "pause_after", "resume_at"),
    [
        # Messages bind: pause at 4 queued; resume once at most 2 (and <= 500 bytes) wait.
        (4, 1000, 10, 4, 2),
        # Bytes bind: pause once more than 1000 bytes wait; resume at <= 500 bytes.
        (100, 1000, 300, 4, 1),
        # Exactly max_queue_bytes waiting is still allowed (as in heartbeat_asyncio).
        (100, 1000, 250, 5, 2),
        # Both halves are needed: 2 messages (<= 4 // 2) of 800 bytes (> 500) keep it paused.
        (4, 1000, 400, 3, 1),
    ],
)
def test_pause_at_either_bound_resume_at_half_of_both(
    max_queue: int, max_queue_bytes: int, size: int, pause_after: int, resume_at: int
) -> None:
    """Messages are handed to the connection on its I/O thread one at a time (as the
    core delivers them) so each step is exact: reading pauses at the message that
    fills max_queue or goes past max_queue_bytes, and resumes only at the recv()
    that leaves at most half of both bounds queued. The core is told each time
    (``core.reading_paused``)."""
    opened: queue.Queue[Connection] = queue.Queue()

    def silent(conn: Connection) -> None:  # sends nothing: only injected messages arrive
        opened.put(conn)
        conn.wait_closed()  # until the client leaves

    with (
        serve(silent, config=QUIET) as server,
        connect(
            f"ws://127.0.0.1:{server.port}/",
            config=QUIET,
            max_queue=max_queue,
            max_queue_bytes=max_queue_bytes,
        ) as client,
    ):
        opened.get(timeout=5.0)
        for i in range(pause_after):
            assert not client.core.reading_paused, f"paused before message {i + 1}"
            data = b"%d" % i + b"x" * (size - len(b"%d" % i))

            def deliver(data: bytes = data) -> None:
                client._process([Message(data=data)], client._rt_now())

            assert client._reactor.call_soon(deliver)
            barrier(client)
        assert client.core.reading_paused, f"not paused after {pause_after} messages"
        for i in range(pause_after):
            assert client.recv(timeout=1.0)[:1] == b"%d" % i
            barrier(client)  # a resume asked for by recv() has run by now
            left = pause_after - i - 1
            assert client.core.reading_paused is (left > resume_at), left
        assert client.is_open and client.stats.misses == 0


def test_a_resume_overtaken_by_a_new_pause_leaves_reading_paused() -> None:
    """recv() takes the message that lets reading resume, but before the I/O thread acts
    on it a push pauses the queue again: the later pause stands (transport, core and
    queue agree), and the next resume the queue gives is carried out."""
    opened: queue.Queue[Connection] = queue.Queue()

    def silent(conn: Connection) -> None:
        opened.put(conn)
        conn.wait_closed()

    with (
        serve(silent, config=QUIET) as server,
        connect(f"ws://127.0.0.1:{server.port}/", config=QUIET, max_queue=2) as client,
    ):
        opened.get(timeout=5.0)

        def deliver(*items: bytes) -> None:  # on the I/O thread
            client._process([Message(data=d) for d in items], client._rt_now())

        assert client._reactor.call_soon(lambda: deliver(b"a", b"b"))
        barrier(client)
        assert client.queue.paused and client.core.reading_paused
        held, go = threading.Event(), threading.Event()

        def hold_then_push() -> None:  # the I/O thread, busy while recv() asks to resume
            held.set()
            go.wait(5.0)
            deliver(b"c")  # 2 queued again: pause

        assert client._reactor.call_soon(hold_then_push)
        assert held.wait(5.0)
        assert client.recv(timeout=1.0) == b"a"  # 1 left: resume, queued behind the hold
        go.set()
        barrier(client)
        assert client.queue.paused and client.core.reading_paused
        assert not client._transport.reading
        assert client.recv(timeout=1.0) == b"b"  # 1 left: resume, carried out
        barrier(client)
        assert not client.queue.paused and not client.core.reading_paused
        assert client._transport.reading
        assert client.recv(timeout=1.0) == b"c"
        assert client.is_open


# ---------------------------------------------------------- connect_forever()


def test_connect_forever_passes_the_bounds_on_and_closes_under_closing() -> None:
    """connect_forever forwards max_queue_bytes to every connect(); leaving
    contextlib.closing closes the current connection."""
    with serve(flood, config=QUIET) as server:
        uri = f"ws://127.0.0.1:{server.port}/"
        with contextlib.closing(connect_forever(uri, config=QUIET, max_queue_bytes=64)) as conns:
            conn = next(conns)
            wait_until(lambda: conn.core.reading_paused)
            assert recv_all(conn) == MESSAGES
        conn.wait_closed()  # closing() ran the generator's finally
        assert conn.close_code == 1000 and conn.closed_by == "local"


@pytest.mark.parametrize("name", NAMES)
def test_connect_forever_raises_a_bad_bound_instead_of_retrying(name: str) -> None:
    """A ConfigError is a mistake, not a network failure: nothing is attempted and no
    Retrying is reported. (Run in a thread: a retry loop must fail the test, not hang it.)"""
    states: list[object] = []
    raised: list[BaseException] = []

    def first() -> None:
        forever = connect_forever(
            NOWHERE,
            backoff=BackoffPolicy(initial=0.01, maximum=0.01),
            on_state=states.append,
            **{name: 0},
        )
        try:
            next(forever)
        except BaseException as exc:
            raised.append(exc)

    runner = threading.Thread(target=first, daemon=True)
    runner.start()
    runner.join(5.0)
    assert raised and isinstance(raised[0], ConfigError), (raised, states)
    assert name in str(raised[0])
    assert states == []


# ------------------------------------------------------------- bad values


@pytest.mark.parametrize("value", BAD_VALUES, ids=repr)
@pytest.mark.parametrize("name", NAMES)
def test_connect_rejects_a_bad_bound_before_connecting(name: str, value: Any) -> None:
    # Nothing listens on NOWHERE: without validation this would be an OSError.
    with pytest.raises(ConfigError, match=rf"{name} must be a positive int.*got {value!r}"):
        connect(NOWHERE, **{name: value})


@pytest.mark.parametrize("value", BAD_VALUES, ids=repr)
@pytest.mark.parametrize("name", NAMES)
def test_serve_rejects_a_bad_bound_before_listening(name: str, value: Any) -> None:
    def handler(conn: Connection) -> None:
        raise AssertionError("never called")

    # The no_leaks fixture checks that no socket or thread was left behind.
    with pytest.raises(ConfigError, match=rf"{name} must be a positive int.*got {value!r}"):
        serve(handler, **{name: value})


def test_the_error_says_what_to_pass() -> None:
    with pytest.raises(ConfigError) as info:
        connect(NOWHERE, max_queue_bytes=1.5)
    assert "pass an int >= 1" in str(info.value) and str(16 * 1024 * 1024) in str(info.value)


def test_the_smallest_bounds_are_accepted() -> None:
    """1 is a valid bound for both (every message pauses reading; all still arrive)."""
    with (
        serve(flood, config=QUIET, max_queue=1, max_queue_bytes=1) as server,
        connect(
            f"ws://127.0.0.1:{server.port}/", config=QUIET, max_queue=1, max_queue_bytes=1
        ) as client,
    ):
        wait_until(lambda: client.core.reading_paused)
        assert recv_all(client) == MESSAGES
