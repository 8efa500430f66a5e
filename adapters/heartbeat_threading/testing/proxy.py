"""A TCP proxy on loopback that makes a link slow, stalling, narrow or dead, in user space.

For tests that need delay, jitter and loss on a machine without ``tc netem``:

.. fragment: three lines of a test (server_port and connect are the test's); the page
   "Testing your heartbeat" shows a whole test with the proxy, and the tests run it

.. code-block:: python

    with LinkProxy(server_port, up=Direction(delay=0.15), down=Direction(delay=0.15)) as proxy:
        connect(proxy.url("/chat"))     # a 300 ms round trip
        proxy.blackhole()               # from now on nothing passes either way

Each direction (``up``: client to server, ``down``: server to client) has its own
:class:`Direction`: a delay (spread by ``jitter``), a bandwidth cap, periodic stalls
(every ``stall_every`` seconds nothing is delivered for ``stall`` seconds, then
everything held back arrives at once and in order: what a lost segment and its
retransmission look like to the application), and a blackhole (bytes are swallowed;
the connections stay open: a peer cut off, not closed). Settings can change while
connections run; bytes read afterwards follow the new ones. With ``idle_limit``
the proxy also closes a connection through which nothing passed for that long, as a
load balancer does, and records when.

Bytes are read as soon as they arrive (the sender's TCP is never slowed) and kept
until their time comes; one thread serves every connection, each wait bounded.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import random
import selectors
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass

__all__ = ["Direction", "LinkProxy"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Direction:
    """How one direction of the proxied link behaves. Times in seconds."""

    #: Added to every chunk's journey.
    delay: float = 0.0
    #: Each chunk's delay is spread uniformly by ``± jitter`` (order is kept).
    jitter: float = 0.0
    #: Bytes per second (``None``: unlimited).
    bandwidth: float | None = None
    #: Every this many seconds (``None``: never) the direction stalls ...
    stall_every: float | None = None
    #: ... for this long; what was held back then arrives at once, in order.
    stall: float = 0.0
    #: Swallow everything (the connection stays open).
    blackhole: bool = False

    def __post_init__(self) -> None:
        for name in ("delay", "jitter", "stall"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be a finite number of seconds >= 0, got {value!r}")
        for name in ("bandwidth", "stall_every"):
            value = getattr(self, name)
            if value is not None and not (
                isinstance(value, (int, float)) and math.isfinite(value) and value > 0
            ):
                raise ValueError(f"{name} must be a number > 0 or None, got {value!r}")
        if self.stall_every is not None and self.stall >= self.stall_every:
            raise ValueError(f"stall ({self.stall}) must be shorter than stall_every")


class _Pipe:
    """One direction of one proxied connection: bytes read from ``src`` wait in
    ``queue`` for their release time, then go to ``dst``."""

    __slots__ = ("dst", "eof", "free_at", "last_release", "name", "out", "queue", "shut", "src")

    def __init__(self, name: str, src: socket.socket, dst: socket.socket, now: float) -> None:
        self.name = name
        self.src = src
        self.dst = dst
        self.queue: deque[tuple[float, bytes]] = deque()
        self.last_release = now
        self.free_at = now
        self.out = b""  # written partly: the rest waits for the socket to drain
        self.eof = False  # src reached EOF: shut dst's writing down once the queue is empty
        self.shut = False


class _Conn:
    __slots__ = ("client", "closed", "last_activity", "pipes", "server")

    def __init__(self, client: socket.socket, server: socket.socket, now: float) -> None:
        self.client = client
        self.server = server
        self.pipes = (_Pipe("up", client, server, now), _Pipe("down", server, client, now))
        self.last_activity = now
        self.closed = False


class LinkProxy:
    """Listens on ``127.0.0.1`` (a free port: :attr:`port`) and forwards every
    connection to ``target_host:target_port`` through the link described by
    :attr:`up` and :attr:`down` (assign new :class:`Direction` objects at any time).
    ``seed`` makes the jitter reproducible. Use as a context manager, or call
    :meth:`close`."""

    def __init__(
        self,
        target_port: int,
        target_host: str = "127.0.0.1",
        *,
        up: Direction | None = None,
        down: Direction | None = None,
        idle_limit: float | None = None,
        seed: int = 0,
    ) -> None:
        self.target: tuple[str, int] = (target_host, target_port)
        self.up: Direction = up or Direction()
        self.down: Direction = down or Direction()
        self.idle_limit: float | None = idle_limit
        #: ``time.monotonic()`` of each idle cut, in order.
        self.cuts: list[float] = []
        #: Connections accepted so far.
        self.accepted: int = 0
        self._random = random.Random(seed)
        self._started = time.monotonic()
        self._listener = socket.create_server(("127.0.0.1", 0), backlog=64)
        self._listener.setblocking(False)
        self.host: str = "127.0.0.1"
        self.port: int = self._listener.getsockname()[1]
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._conns: list[_Conn] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="link-proxy", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ control

    def url(self, path: str = "/") -> str:
        """``ws://127.0.0.1:PORT/path``: where clients should connect."""
        return f"ws://{self.host}:{self.port}{path}"

    def blackhole(self, on: bool = True) -> float:
        """Swallow everything both ways from now on (or stop, with ``on=False``);
        returns the ``time.monotonic()`` at which it took effect."""
        with self._lock:
            self.up = dataclasses.replace(self.up, blackhole=on)
            self.down = dataclasses.replace(self.down, blackhole=on)
            now = time.monotonic()
        self._wake()
        return now

    @property
    def connections(self) -> int:
        """Connections open through the proxy now."""
        with self._lock:
            return sum(not c.closed for c in self._conns)

    def close(self) -> None:
        """Stop the proxy and close every connection through it (bounded)."""
        self._stop.set()
        self._wake()
        self._thread.join(5.0)
        with self._lock:
            for conn in self._conns:
                _close(conn)
        self._listener.close()
        self._wake_r.close()
        self._wake_w.close()

    def __enter__(self) -> LinkProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _wake(self) -> None:
        with contextlib.suppress(OSError):
            self._wake_w.send(b"x")

    # ------------------------------------------------------------------ the loop

    def _run(self) -> None:
        sel = selectors.DefaultSelector()
        try:
            sel.register(self._listener, selectors.EVENT_READ, None)
            sel.register(self._wake_r, selectors.EVENT_READ, None)
            while not self._stop.is_set():
                now = time.monotonic()
                timeout = self._due(sel, now)
                for key, events in sel.select(timeout):
                    obj = key.fileobj
                    if obj is self._listener:
                        self._accept(sel)
                    elif obj is self._wake_r:
                        with contextlib.suppress(OSError):
                            self._wake_r.recv(4096)
                    elif events & selectors.EVENT_READ:
                        self._read(sel, key.data, obj)  # type: ignore[arg-type]
                    if events & selectors.EVENT_WRITE and key.data is not None:
                        self._write(sel, key.data, obj)  # type: ignore[arg-type]
        finally:
            sel.close()

    def _accept(self, sel: selectors.BaseSelector) -> None:
        try:
            client, _ = self._listener.accept()
        except OSError:
            return
        try:
            server = socket.create_connection(self.target, timeout=5.0)
        except OSError:
            client.close()
            return
        now = time.monotonic()
        conn = _Conn(client, server, now)
        for sock in (client, server):
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sel.register(sock, selectors.EVENT_READ, conn)
        with self._lock:
            self._conns.append(conn)
            self.accepted += 1

    def _read(self, sel: selectors.BaseSelector, conn: _Conn, sock: socket.socket) -> None:
        pipe = conn.pipes[0] if sock is conn.client else conn.pipes[1]
        try:
            data = sock.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        now = time.monotonic()
        with self._lock:
            setting = self.up if pipe.name == "up" else self.down
        if not data:
            # Forward what is queued, then pass the EOF on; into a blackhole the FIN (or
            # reset) vanishes too, and the other end keeps waiting.
            pipe.eof = True
            pipe.shut = setting.blackhole
            self._watch(sel, conn)
            return
        if setting.blackhole:
            return
        release = now + setting.delay
        if setting.jitter:
            release += setting.jitter * (2.0 * self._random.random() - 1.0)
        release = max(release, pipe.last_release)  # in order: it waits behind earlier bytes
        if setting.bandwidth is not None:
            release = max(release, pipe.free_at) + len(data) / setting.bandwidth
            pipe.free_at = release
        if setting.stall_every is not None:
            into = (release - self._started) % setting.stall_every
            if into < setting.stall:
                release += setting.stall - into  # held until the stall ends
        pipe.last_release = release
        pipe.queue.append((release, data))

    def _due(self, sel: selectors.BaseSelector, now: float) -> float:
        """Forward what is due, apply the idle limit; the time until the next thing."""
        wait = 0.05
        for conn in list(self._conns):
            if conn.closed:
                continue
            for pipe in conn.pipes:
                while pipe.queue and pipe.queue[0][0] <= now and not pipe.out:
                    _, data = pipe.queue.popleft()
                    conn.last_activity = now
                    self._send(sel, conn, pipe, data)
                    if conn.closed:
                        break
                if conn.closed:
                    break
                if pipe.queue:
                    wait = min(wait, pipe.queue[0][0] - now)
                elif pipe.eof and not pipe.out and not pipe.shut:
                    pipe.shut = True
                    with contextlib.suppress(OSError):
                        pipe.dst.shutdown(socket.SHUT_WR)
            if conn.closed:
                continue
            if all(p.eof and not p.queue and not p.out and p.shut for p in conn.pipes):
                self._drop(sel, conn)
            elif self.idle_limit is not None:
                left = conn.last_activity + self.idle_limit - now
                if left <= 0:
                    self.cuts.append(now)
                    self._drop(sel, conn)
                else:
                    wait = min(wait, left)
        return max(wait, 0.0)

    def _send(self, sel: selectors.BaseSelector, conn: _Conn, pipe: _Pipe, data: bytes) -> None:
        try:
            sent = pipe.dst.send(data)
        except BlockingIOError:
            sent = 0
        except OSError:
            self._drop(sel, conn)
            return
        if sent < len(data):
            pipe.out = data[sent:]
            self._watch(sel, conn)

    def _write(self, sel: selectors.BaseSelector, conn: _Conn, sock: socket.socket) -> None:
        for pipe in conn.pipes:
            if pipe.dst is sock and pipe.out:
                data, pipe.out = pipe.out, b""
                self._send(sel, conn, pipe, data)
        self._watch(sel, conn)

    def _watch(self, sel: selectors.BaseSelector, conn: _Conn) -> None:
        if conn.closed:
            return
        for sock in (conn.client, conn.server):
            mask = 0
            if any(p.src is sock and not p.eof for p in conn.pipes):
                mask |= selectors.EVENT_READ
            if any(p.dst is sock and p.out for p in conn.pipes):
                mask |= selectors.EVENT_WRITE
            with contextlib.suppress(KeyError, ValueError):
                if mask:
                    try:
                        sel.modify(sock, mask, conn)
                    except KeyError:
                        sel.register(sock, mask, conn)
                else:
                    sel.unregister(sock)

    def _drop(self, sel: selectors.BaseSelector, conn: _Conn) -> None:
        for sock in (conn.client, conn.server):
            with contextlib.suppress(KeyError, ValueError):
                sel.unregister(sock)
        with self._lock:
            _close(conn)


def _close(conn: _Conn) -> None:
    conn.closed = True
    for sock in (conn.client, conn.server):
        with contextlib.suppress(OSError):
            sock.close()

