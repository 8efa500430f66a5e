"""Issue 18, finding 2: fragment amplification, on both roles.

One message in 2-byte continuation frames, just under the 1 MiB max size (524,000
frames, 4.2 MB on the wire), from eight peers at once. Before the fix each frame was
kept as its own object (27.7 MiB and ~3.5 s of CPU per connection) and healthy
connections' heartbeats waited seconds. Now a message may come in at most
``MAX_FRAGMENTS`` frames: the server counts them in its header walk and fails the
connection (1009) before parsing the read; a client fails the same way after
wsproto's parse; a message's pieces are assembled in one buffer.
"""

from __future__ import annotations

import contextlib
import itertools
import socket
import struct
import threading
import time

import pytest

from heartbeat_core import HeartbeatConfig, PeerDead
from heartbeat_core.frames import MAX_FRAGMENTS
from tests.support.frames import (
    BINARY,
    CLOSE,
    CONT,
    ZERO_MASK,
    FrameReader,
    accept_key,
    frame,
    websocket_key,
)
from tests.support.waiting import wait_until

from .harness import Bystander, RawClient, record
from .procs import server_process

INTERVAL, TIMEOUT = 0.2, 0.4
ATTACKERS = 8
FRAGMENTS = 524_000  # 2-byte fragments: 1,048,000 bytes, just under max_size (1 MiB)


def _fragmented(masked: bool) -> bytes:
    mask = ZERO_MASK if masked else None  # (a zero key: the payload goes as is)
    first = frame(BINARY, b"ab", fin=False, mask=mask)
    middle = frame(CONT, b"ab", fin=False, mask=mask)
    return first + middle * (FRAGMENTS - 2) + frame(CONT, b"ab", mask=mask)


def _acked(sock: socket.socket) -> int:
    """Bytes of ours the peer's TCP acknowledged: what the server host received
    (``tcpi_bytes_acked`` of Linux's ``struct tcp_info``)."""
    info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 256)
    return int(struct.unpack_from("Q", info, 120)[0])


def _attack(
    port: int, blob: bytes, start: threading.Barrier, results: list[tuple[int | None, int]]
) -> None:
    """Open, then send the fragmented message; record the close code the server sent
    and the bytes it received."""
    with RawClient(port, timeout=10.0) as c:
        c.handshake()
        start.wait(10)
        with contextlib.suppress(OSError):  # the server hangs up mid-send: EPIPE / reset
            c.sock.sendall(blob)
        code, _ = c.wait_close(10.0)
        results.append((code, _acked(c.sock)))


def test_fragment_attackers_get_1009_and_cost_the_server_nothing(adapter: str) -> None:
    blob = _fragmented(masked=True)
    with server_process(adapter, INTERVAL, TIMEOUT) as server:
        healthy = [Bystander(server.port) for _ in range(2)]
        ours = _OurClient(server.port)
        try:
            wait_until(lambda: all(len(b.pings) >= 3 for b in healthy), 5.0, "baseline pings")
            rss0, cpu0 = server.rss_kib(), server.cpu_seconds()
            start = threading.Barrier(ATTACKERS + 1)
            results: list[tuple[int | None, int]] = []
            threads = [
                threading.Thread(target=_attack, args=(server.port, blob, start, results))
                for _ in range(ATTACKERS)
            ]
            for t in threads:
                t.start()
            start.wait(10)
            t0 = time.monotonic()
            peak = rss0
            while any(t.is_alive() for t in threads) and time.monotonic() - t0 < 20:
                peak = max(peak, server.rss_kib())
                time.sleep(0.01)
            for t in threads:
                t.join(5)
            took = time.monotonic() - t0
            # Watch the healthy connections for a while after the attack, too.
            time.sleep(max(0.0, 1.0 - took))
            peak = max(peak, server.rss_kib())
            cpu = server.cpu_seconds() - cpu0
            growth = peak - rss0
            gaps = [_max_gap(b.pings, t0 - INTERVAL) for b in healthy]
            closed = [b.close_code for b in healthy]
            dead = server.events("PeerDead") + ours.dead
        finally:
            for b in healthy:
                b.stop()
            ours.close()
    codes = [code for code, _ in results]
    received = sum(acked for _, acked in results)
    figures = (
        f"RSS +{growth} KiB for {received} bytes received, CPU {cpu:.2f} s, healthy "
        f"heartbeat gaps {gaps} (interval {INTERVAL}), {len(dead)} PeerDead, codes {codes}"
    )
    assert growth * 1024 <= 2 * received, figures
    assert max(gaps) <= INTERVAL + 0.1, figures
    assert closed == [None, None] and not dead, (closed, dead, figures)
    assert codes == [1009] * ATTACKERS, figures
    record(
        f"fragment amplification: {ATTACKERS} peers at once, each one message of "
        f"{FRAGMENTS:,} 2-byte fragments (4.2 MB)",
        adapter,
        f"close 1009 after {MAX_FRAGMENTS} fragments, before parsing; healthy unaffected",
        f"server received {received / 1024:.0f} KiB, RSS +{growth} KiB, CPU {cpu * 1000:.0f} ms; "
        f"healthy max gap {max(gaps) * 1000:.0f} ms (interval {INTERVAL * 1000:.0f} ms); "
        f"no PeerDead; attack over in {took:.2f} s",
    )


class _OurClient:
    """A heartbeat client of our own (threading) beside the attack: it must never
    declare the server dead."""

    def __init__(self, port: int) -> None:
        from heartbeat_threading import connect

        self.dead: list[object] = []
        self.conn = connect(
            f"ws://127.0.0.1:{port}/",
            config=HeartbeatConfig(interval=INTERVAL, timeout=TIMEOUT),
            on_event=self._event,
        )

    def _event(self, conn: object, event: object) -> None:
        if isinstance(event, PeerDead):
            self.dead.append(event)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.conn.close()


def _max_gap(times: list[float], since: float) -> float:
    kept = [t for t in times if t >= since]
    return max((b - a for a, b in itertools.pairwise(kept)), default=0.0)


# ---------------------------------------------------------------- the client's role


def _hostile_server(blob: bytes, sent: list[int]) -> tuple[socket.socket, threading.Thread]:
    """A server that accepts one upgrade, then sends ``blob`` (unmasked frames)."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(10)

    def run() -> None:
        with contextlib.suppress(OSError):
            sock, _ = listener.accept()
            with sock:
                sock.settimeout(10)
                head = b""
                while b"\r\n\r\n" not in head:
                    head += sock.recv(4096)
                key = websocket_key(head)
                sock.sendall(
                    b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                    b"Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n"
                    % accept_key(key).encode()
                )
                with contextlib.suppress(OSError):
                    sock.sendall(blob)
                    sent.append(len(blob))
                reader = FrameReader(expect_masked=True)
                end = time.monotonic() + 10
                while time.monotonic() < end:
                    data = sock.recv(65536)
                    if not data:
                        break
                    for f in reader.feed(data):
                        if f.opcode == CLOSE:
                            sent.append(f.close_code or 0)

    thread = threading.Thread(target=run, name="hostile-server", daemon=True)
    thread.start()
    return listener, thread


@pytest.mark.parametrize("client", ["asyncio", "threading"])
def test_a_client_fails_a_fragmented_message_with_1009(client: str) -> None:
    pytest.importorskip(f"heartbeat_{client}")
    blob = _fragmented(masked=False)
    sent: list[int] = []
    listener, thread = _hostile_server(blob, sent)
    uri = f"ws://127.0.0.1:{listener.getsockname()[1]}/"
    try:
        t0 = time.thread_time(), time.monotonic()
        if client == "threading":
            from heartbeat_threading import connect

            with connect(uri) as conn:
                wait_until(lambda: conn.close_code is not None, 10.0, "the client to close")
                code, reason = conn.close_code, conn.close_reason
        else:
            import asyncio

            from heartbeat_asyncio import connect as aconnect

            async def run() -> tuple[int | None, str | None]:
                async with aconnect(uri) as conn:
                    await asyncio.wait_for(conn.wait_closed(), 10.0)
                    return conn.close_code, conn.close_reason

            code, reason = asyncio.run(run())
        took = time.monotonic() - t0[1]
        thread.join(10)
    finally:
        listener.close()
    assert (code, reason) == (1009, "message in too many fragments")
    assert 1009 in sent, sent  # the close frame reached the server
    record(
        f"fragment amplification against our {client} client: one message of "
        f"{FRAGMENTS:,} 2-byte fragments",
        client,
        f"client closes 1009 after {MAX_FRAGMENTS} fragments",
        f"closed in {took * 1000:.0f} ms",
    )
