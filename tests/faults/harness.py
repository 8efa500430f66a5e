"""Servers under test (both adapters, behind one synchronous handle), a raw-socket
WebSocket client that can misbehave, process resource counters, and the results table.

Every wait is bounded: sockets carry timeouts, loops carry a count and a deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import itertools
import json
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from heartbeat_core import Closed, HeartbeatConfig, PeerDead
from tests.support.frames import CLOSE, PING, PONG, Frame, FrameReader, frame, upgrade_request
from tests.support.waiting import wait_until

ADAPTERS = ("asyncio", "threading")

#: The server configuration of the hostile-peer cases: fast heartbeats, short bounds.
FAST = HeartbeatConfig(
    interval=0.2,
    timeout=0.4,
    close_timeout=0.3,
    peer_ping_min_interval=0.05,
    peer_ping_max_strikes=100,
)


# ---------------------------------------------------------------- measurements


def rss_kib() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0  # pragma: no cover


def fd_count() -> int:
    return len(os.listdir("/proc/self/fd"))


# ---------------------------------------------------------------- the results table

_RESULTS: list[dict[str, str]] = []


def record(case: str, adapter: str, did: str, figure: str) -> None:
    """One row of docs/faults-results.md (written when HEARTBEAT_FAULTS_REPORT is set)."""
    _RESULTS.append({"case": case, "adapter": adapter, "did": did, "figure": figure})


def write_results(path: str) -> None:
    p = Path(path)
    rows = list(_RESULTS)
    if p.suffix == ".json":
        p.write_text(json.dumps(rows, indent=1))
        return
    lines = ["| case | adapter | what the server did | figure |", "|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['case']} | {r['adapter']} | {r['did']} | {r['figure']} |")
    p.write_text("\n".join(lines) + "\n")


# ---------------------------------------------------------------- servers


@dataclass
class ServerHandle:
    """A running echo server of either adapter, driven from the test's thread."""

    adapter: str
    port: int
    events: list[tuple[float, int, object]] = field(default_factory=list)
    _stop: Callable[[], None] | None = None
    _counts: Callable[[], dict[str, int]] | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _cond: threading.Condition | None = None

    def __post_init__(self) -> None:
        self._cond = threading.Condition(self._lock)

    def on_event(self, conn: object, event: object) -> None:
        assert self._cond is not None
        with self._cond:
            self.events.append((time.monotonic(), id(conn), event))
            self._cond.notify_all()

    def closed(self) -> list[tuple[float, Closed]]:
        with self._lock:
            return [(t, e) for t, _, e in self.events if isinstance(e, Closed)]

    def peer_dead(self) -> list[tuple[float, PeerDead]]:
        with self._lock:
            return [(t, e) for t, _, e in self.events if isinstance(e, PeerDead)]

    def wait_closed_count(self, n: int, timeout: float) -> list[tuple[float, Closed]]:
        """Wait (on the server's own events, no polling) for at least ``n`` Closed events."""
        assert self._cond is not None
        end = time.monotonic() + timeout
        with self._cond:
            while True:
                got = [(t, e) for t, _, e in self.events if isinstance(e, Closed)]
                left = end - time.monotonic()
                if len(got) >= n or left <= 0:
                    return got
                self._cond.wait(left)

    def counts(self) -> dict[str, int]:
        """Live resources: tasks/threads, timer entries, connections."""
        assert self._counts is not None
        return self._counts()

    def stop(self) -> None:
        if self._stop is not None:
            stop, self._stop = self._stop, None
            stop()


def _echo_asyncio() -> Callable[[Any], Any]:
    async def handler(conn: Any) -> None:
        async for message in conn:
            await conn.send(message)

    return handler


def _echo_threading(conn: Any) -> None:
    for message in conn:
        conn.send(message)


async def _never_reads_asyncio(conn: Any) -> None:
    await conn.wait_closed()  # a stuck application: never calls recv()


def _never_reads_threading(conn: Any) -> None:
    conn.wait_closed()


def _import_threading_serve() -> Callable[..., Any]:
    try:
        from heartbeat_threading import serve
    except ImportError:
        from heartbeat_threading.server import serve
    return serve


@contextlib.contextmanager
def running_server(
    adapter: str, config: HeartbeatConfig = FAST, *, app: str = "echo", **kwargs: Any
) -> Iterator[ServerHandle]:
    """A server on 127.0.0.1 for ``adapter`` running ``app`` ("echo", or "stuck": a
    handler that never reads); stopped (bounded) on exit."""
    if adapter == "asyncio":
        handler = _echo_asyncio() if app == "echo" else _never_reads_asyncio
        with _asyncio_server(config, handler, **kwargs) as handle:
            yield handle
    else:
        thandler = _echo_threading if app == "echo" else _never_reads_threading
        with _threading_server(config, thandler, **kwargs) as handle:
            yield handle


@contextlib.contextmanager
def _asyncio_server(config: HeartbeatConfig, handler: Any, **kwargs: Any) -> Iterator[ServerHandle]:
    from heartbeat_asyncio import loop as aloop
    from heartbeat_asyncio import serve

    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="faults-asyncio-server", daemon=True)
    thread.start()
    handle = ServerHandle("asyncio", 0)
    try:
        server = asyncio.run_coroutine_threadsafe(
            serve(handler, "127.0.0.1", 0, config=config, on_event=handle.on_event, **kwargs),
            loop,
        ).result(10)
        handle.port = server.port

        async def _counts() -> dict[str, int]:
            wheel = aloop.share_for(loop).wheel
            return {
                "tasks": len(asyncio.all_tasks()) - 1,
                "timer_entries": len(wheel),
                "live_timer_entries": len(wheel),  # (the wheel files each connection once)
                "loop_handles": len(loop._scheduled),  # type: ignore[attr-defined]
                "connections": len(server._all),
            }

        handle._counts = lambda: asyncio.run_coroutine_threadsafe(_counts(), loop).result(10)

        def stop() -> None:
            asyncio.run_coroutine_threadsafe(server.close(timeout=2.0), loop).result(15)

        handle._stop = stop
        yield handle
    finally:
        with contextlib.suppress(Exception):
            handle.stop()
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


@contextlib.contextmanager
def _threading_server(
    config: HeartbeatConfig, handler: Any, **kwargs: Any
) -> Iterator[ServerHandle]:
    serve = _import_threading_serve()
    handle = ServerHandle("threading", 0)
    server = serve(handler, "127.0.0.1", 0, config=config, on_event=handle.on_event, **kwargs)
    handle.port = server.port

    def counts() -> dict[str, int]:
        # The reactor's timer wheel unfiles a connection when its socket is released, so
        # every filing is a live one.
        filed = len(server._reactor.wheel)
        return {
            "threads": threading.active_count(),
            "timer_entries": filed,
            "live_timer_entries": filed,
            "connections": len(server._conns),
        }

    handle._counts = counts
    handle._stop = lambda: server.close(timeout=2.0)
    try:
        yield handle
    finally:
        with contextlib.suppress(Exception):
            handle.stop()
        gc.collect()


# ---------------------------------------------------------------- a raw client


class RawClient:
    """A WebSocket client made of a bare socket: it sends whatever it is told to."""

    def __init__(self, port: int, *, host: str = "127.0.0.1", timeout: float = 5.0) -> None:
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.reader = FrameReader(expect_masked=False)
        self.frames: list[Frame] = []
        self.head = b""
        self.eof = False
        self.seen: dict[int, int] = {}  # frames received, by opcode

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()

    def __enter__(self) -> RawClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def send_frame(self, opcode: int, payload: bytes = b"", **kw: Any) -> None:
        self.sock.sendall(frame(opcode, payload, **kw))

    def handshake(self, timeout: float = 5.0) -> None:
        self.send(upgrade_request())
        self.head = self.read_head(timeout)
        assert self.head.startswith(b"HTTP/1.1 101 "), self.head

    def read_head(self, timeout: float = 5.0) -> bytes:
        """Read an HTTP response head (leftover bytes go to the frame reader)."""
        buf = b""
        end = time.monotonic() + timeout
        while b"\r\n\r\n" not in buf:
            left = end - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no complete HTTP head in {timeout} s: {buf!r:.200}")
            self.sock.settimeout(left)
            chunk = self.sock.recv(65536)
            if not chunk:
                self.eof = True
                return buf
            buf += chunk
        head, _, rest = buf.partition(b"\r\n\r\n")
        self._got(rest)
        return head + b"\r\n\r\n"

    def _fill(self, deadline: float) -> bool:
        """Read once; False at EOF, reset or deadline."""
        left = deadline - time.monotonic()
        if left <= 0 or self.eof:
            return False
        self.sock.settimeout(left)
        try:
            chunk = self.sock.recv(262144)
        except TimeoutError:
            return False
        except ConnectionResetError:
            self.eof = True
            return False
        if not chunk:
            self.eof = True
            return False
        self._got(chunk)
        return True

    def _got(self, data: bytes) -> None:
        for f in self.reader.feed(data):
            self.seen[f.opcode] = self.seen.get(f.opcode, 0) + 1
            self.frames.append(f)

    def next_frame(self, timeout: float) -> Frame | None:
        end = time.monotonic() + timeout
        while not self.frames:
            if not self._fill(end):
                return None
        return self.frames.pop(0)

    def expect(self, pred: Callable[[Frame], bool], timeout: float) -> Frame | None:
        """The first frame matching ``pred`` within ``timeout`` (answering pings meanwhile)."""
        end = time.monotonic() + timeout
        while True:
            f = self.next_frame(max(0.0, end - time.monotonic()))
            if f is None:
                return None
            if pred(f):
                return f
            if f.opcode == PING:
                with contextlib.suppress(OSError):
                    self.send_frame(PONG, f.payload)

    def wait_close(self, timeout: float) -> tuple[int | None, bool]:
        """Wait for the server's close frame or EOF: (close code or None, saw EOF)."""
        f = self.expect(lambda f: f.opcode == CLOSE, timeout)
        if f is not None:
            return f.close_code, self.eof
        return None, self.eof

    def wait_eof(self, timeout: float) -> bool:
        end = time.monotonic() + timeout
        while not self.eof and time.monotonic() < end:
            self._fill(end)
            self.frames.clear()
        return self.eof


def probe(port: int, timeout: float = 3.0) -> float:
    """A fresh client: open, ping, get the pong; return the RTT. Asserts on failure."""
    with RawClient(port, timeout=timeout) as c:
        c.handshake(timeout)
        t0 = time.monotonic()
        c.send_frame(PING, b"probe")
        f = c.expect(lambda f: f.opcode == PONG and f.payload == b"probe", timeout)
        assert f is not None, "a fresh client got no heartbeat answer"
        rtt = time.monotonic() - t0
        c.send_frame(CLOSE, b"\x03\xe8")
        return rtt


class Bystander:
    """A well-behaved connection kept open during a case: answers pings, echoes data.

    Runs in a thread; records every server ping and when it came, so that the test can
    check that the server kept this connection's heartbeat on time while under attack.
    """

    def __init__(self, port: int) -> None:
        self.client = RawClient(port)
        self.client.handshake()
        self.pings: list[float] = []
        self.echoes: list[tuple[bytes, float]] = []
        self.close_code: int | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="faults-bystander", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        c = self.client
        while not self._stop.is_set():
            f = c.next_frame(0.05)
            if f is None:
                if c.eof:
                    return
                continue
            if f.opcode == PING:
                self.pings.append(time.monotonic())
                with contextlib.suppress(OSError):
                    c.send_frame(PONG, f.payload)
            elif f.opcode == CLOSE:
                self.close_code = f.close_code
                return
            else:
                self.echoes.append((f.payload, time.monotonic()))

    def echo(self, payload: bytes, timeout: float = 3.0) -> float:
        """Send a text message; return the time its echo took."""
        t0 = time.monotonic()
        n = len(self.echoes)
        self.client.send_frame(0x1, payload)
        wait_until(lambda: len(self.echoes) > n, timeout, "the bystander's message to be echoed")
        got, t1 = self.echoes[n]
        assert got == payload
        return t1 - t0

    def max_ping_gap(self, since: float) -> float:
        times = [t for t in self.pings if t >= since]
        return max((b - a for a, b in itertools.pairwise(times)), default=0.0)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.client.close()
