"""A TCP proxy on loopback that makes a link slow, stalling, narrow or dead, in user space.

For tests that need delay, jitter and loss on a machine without ``tc netem``:

.. fragment: three lines of a test (server_port and connect are the test's); the page
   "Testing your heartbeat" shows a whole test with the proxy, and the tests run it

.. code-block:: python

    with LinkProxy(server_port, up=Direction(delay=0.15), down=Direction(delay=0.15)) as proxy:
        connect(proxy.url("/chat"))     # a 300 ms round trip
        proxy.blackhole()               # from now on nothing passes either way

Each direction (``up``: client to server, ``down``: server to client) has its own
:class:`~heartbeat_core.testing.Direction`: a delay (spread by ``jitter``), a
bandwidth cap, periodic stalls (every ``stall_every`` seconds nothing is delivered for
``stall`` seconds, then everything held back arrives at once and in order: what a
lost segment and its retransmission look like to the application), and a blackhole
(bytes, and the end of the stream, are swallowed; the connections stay open: a peer
cut off, not closed). Settings can change while connections run; bytes read
afterwards follow the new ones. With ``idle_limit`` the proxy also closes a
connection through which nothing passed for that long, as a load balancer does, and
records when.

Bytes are read as soon as they arrive (the sender's TCP is never slowed) and kept
until their time comes. When that is, and when a connection has idled too long, the
core decides (:class:`~heartbeat_core.testing.LinkShaper`,
:class:`~heartbeat_core.testing.IdleWatch`, a :class:`~heartbeat_core.TimerWheel`);
one thread carries it out for every connection, each wait bounded.
"""

from __future__ import annotations

import contextlib
import dataclasses
import random
import selectors
import socket
import threading
import time
from collections import deque

from heartbeat_core import TimerItem, TimerWheel
from heartbeat_core.testing import Direction, IdleWatch, LinkShaper

__all__ = ["Direction", "LinkProxy"]


class _Pipe(TimerItem):
    """One direction of one proxied connection: chunks read from ``src`` wait in
    ``queue`` (filed in the wheel at the first one's release), then go to ``dst``."""

    __slots__ = ("conn", "dst", "eof", "name", "out", "queue", "shaper", "shut", "src")

    def __init__(
        self, name: str, src: socket.socket, dst: socket.socket, shaper: LinkShaper
    ) -> None:
        super().__init__()
        self.name = name
        self.src = src
        self.dst = dst
        self.shaper = shaper
        self.queue: deque[tuple[float, bytes]] = deque()
        self.out = b""  # written partly: the rest waits for the socket to drain
        self.eof = False  # src reached EOF: shut dst's writing down once all is sent
        self.shut = False
        self.conn: _Conn | None = None


class _Conn(TimerItem):
    __slots__ = ("client", "closed", "idle", "pipes", "server")

    def __init__(
        self, client: socket.socket, server: socket.socket, pipes: tuple[_Pipe, _Pipe]
    ) -> None:
        super().__init__()
        self.client = client
        self.server = server
        self.pipes = pipes
        self.idle: IdleWatch | None = None
        self.closed = False


class LinkProxy:
    """Listens on ``127.0.0.1`` (a free port: :attr:`port`) and forwards every
    connection to ``target_host:target_port`` through the link described by
    :attr:`up` and :attr:`down` (assign new :class:`~heartbeat_core.testing.Direction`
    objects at any time). ``seed`` makes the jitter reproducible. Use as a context
    manager, or call :meth:`close`."""

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
        if idle_limit is not None:
            IdleWatch(idle_limit, 0.0)  # (checks the limit now, where it is given)
        #: ``time.monotonic()`` of each idle cut, in order.
        self.cuts: list[float] = []
        #: Connections accepted so far.
        self.accepted: int = 0
        self._random = random.Random(seed).random
        self._origin = time.monotonic()  # every connection's stalls on one grid
        self._wheel: TimerWheel[_Pipe | _Conn] = TimerWheel()
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
                self._due(sel, time.monotonic())
                timeout = self._wheel.timeout(time.monotonic())
                for key, events in sel.select(0.05 if timeout is None else min(timeout, 0.05)):
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
        pipes = (
            _Pipe("up", client, server, LinkShaper(self._origin, self._random)),
            _Pipe("down", server, client, LinkShaper(self._origin, self._random)),
        )
        conn = _Conn(client, server, pipes)
        for pipe in pipes:
            pipe.conn = conn
        if self.idle_limit is not None:
            conn.idle = IdleWatch(self.idle_limit, now)
            self._wheel.file(conn, conn.idle.deadline)
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
            self._settle(sel, pipe)
            return
        release = pipe.shaper.release(setting, len(data), now)
        if release is None:
            return  # swallowed
        if not pipe.queue and not pipe.out:
            self._wheel.file(pipe, release)
        pipe.queue.append((release, data))

    def _due(self, sel: selectors.BaseSelector, now: float) -> None:
        """Carry out what the wheel says is due: a chunk to forward, an idle cut."""
        for item in self._wheel.pop_due(now):
            if isinstance(item, _Conn):
                if item.closed or item.idle is None:
                    continue
                if item.idle.expired(now):
                    self.cuts.append(now)
                    self._drop(sel, item)
                else:  # (woken early: bytes passed since it was filed)
                    self._wheel.file(item, item.idle.deadline)
                continue
            conn = item.conn
            if conn is None or conn.closed or not item.queue:
                continue
            _, data = item.queue.popleft()
            if conn.idle is not None:
                conn.idle.activity(now)
                self._wheel.file(conn, conn.idle.deadline)
            self._send(sel, conn, item, data)
            self._settle(sel, item)

    def _settle(self, sel: selectors.BaseSelector, pipe: _Pipe) -> None:
        """After a chunk went (or the source ended): file the next chunk, or pass the
        EOF on once everything is out, or drop the connection once both ends are done."""
        conn = pipe.conn
        if conn is None or conn.closed or pipe.out:
            return
        if pipe.queue:
            self._wheel.file(pipe, pipe.queue[0][0])
            return
        if pipe.eof and not pipe.shut:
            pipe.shut = True
            with contextlib.suppress(OSError):
                pipe.dst.shutdown(socket.SHUT_WR)
        if all(p.eof and p.shut and not p.queue and not p.out for p in conn.pipes):
            self._drop(sel, conn)

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
                self._settle(sel, pipe)
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
        for item in (conn, *conn.pipes):
            if item in self._wheel:
                self._wheel.unfile(item)
        with self._lock:
            _close(conn)


def _close(conn: _Conn) -> None:
    conn.closed = True
    for sock in (conn.client, conn.server):
        with contextlib.suppress(OSError):
            sock.close()
