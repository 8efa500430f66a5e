"""Hostile or broken peers against both servers, over real loopback sockets.

For every case: the server answers as RFC 6455 and the core's rules say (close code),
within a bound (time), keeps serving (a fresh client still gets its ping answered), and
keeps its memory and resources bounded. Each case records a row of
docs/faults-results.md (see ``harness.record``).
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from heartbeat_core import HeartbeatConfig, HeartbeatStyle, Liveness
from tests.support.frames import (
    BINARY,
    CLOSE,
    CONT,
    PING,
    PONG,
    TEXT,
    Frame,
    frame,
    upgrade_request,
)
from tests.support.waiting import poll, wait_until

from .harness import (
    FAST,
    Bystander,
    RawClient,
    ServerHandle,
    probe,
    record,
    rss_kib,
    running_server,
)

SLACK = 2.0  # generous: other test suites share these two cores


def closes_with(c: RawClient, code: int, timeout: float = 3.0) -> float:
    """Assert the server sends close ``code`` and drops the socket; return the time taken."""
    t0 = time.monotonic()
    got, _ = c.wait_close(timeout)
    assert got == code, f"expected close {code}, got {got}"
    assert c.wait_eof(timeout), "the server did not release the socket after its close frame"
    return time.monotonic() - t0


def test_garbage_instead_of_upgrade(server: ServerHandle, adapter: str) -> None:
    with RawClient(server.port) as c:
        t0 = time.monotonic()
        c.send(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03garbage\r\n\r\n")
        head = c.read_head(3.0)
        assert head.startswith(b"HTTP/1.1 400 "), head
        assert c.wait_eof(3.0)
        took = time.monotonic() - t0
    record(
        "garbage instead of HTTP upgrade",
        adapter,
        "HTTP 400, socket closed",
        f"{took * 1000:.1f} ms",
    )
    probe(server.port)


def test_slowloris_upgrade_is_bounded_by_the_handshake_timeout(
    server: ServerHandle, adapter: str
) -> None:
    request = upgrade_request()
    with RawClient(server.port) as c:
        t0 = time.monotonic()
        # One byte every 50 ms: the request would take ~8 s; the timeout is 0.5 s.
        for i in range(len(request) - 1):
            try:
                c.send(request[i : i + 1])
            except OSError:
                break
            if c.wait_eof(0.05):
                break
        assert c.wait_eof(3.0), "a slow upgrade was never dropped"
        took = time.monotonic() - t0
    assert took < 0.5 + SLACK
    record(
        "slowloris upgrade (1 byte / 50 ms)",
        adapter,
        "dropped at the handshake timeout (0.5 s)",
        f"dropped after {took:.2f} s",
    )
    probe(server.port)


@pytest.mark.parametrize(
    ("case", "data"),
    [
        ("control frame > 125 bytes", frame(PING, b"x" * 126)),
        ("fragmented ping", frame(PING, b"ab", fin=False) + frame(CONT, b"cd")),
        ("ping with RSV1 set", frame(PING, b"x", rsv=4)),
        ("reserved opcode 0x3", frame(0x3, b"x")),
        ("unmasked client frame", frame(TEXT, b"hi", mask=None)),
    ],
)
def test_protocol_violations_close_1002(
    server: ServerHandle, adapter: str, case: str, data: bytes
) -> None:
    with RawClient(server.port) as c:
        c.handshake()
        c.send(data)
        took = closes_with(c, 1002)
    record(case, adapter, "close 1002, socket released", f"{took * 1000:.1f} ms")
    probe(server.port)


FLOOD = str(Path(__file__).with_name("flood_client.py"))


def _flood_with_bystander(
    port: int, args: list[str], seconds: float
) -> tuple[dict[str, Any], list[float], float, Bystander, int]:
    """Run the flood client (its own process) while a bystander connection keeps
    talking: returns (flood result, bystander echo times, worst heartbeat gap, bystander,
    RSS growth in KiB)."""
    bystander = Bystander(port)
    idle = Bystander(port)  # sends nothing: only the server's heartbeat keeps it alive
    rss0 = rss_kib()
    start = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, FLOOD, str(port), *args], stdout=subprocess.PIPE, text=True
    )
    echoes: list[float] = []
    rss_peak = rss0
    try:
        while proc.poll() is None and time.monotonic() - start < seconds + 10:
            echoes.append(bystander.echo(b"bystander", timeout=5.0))
            rss_peak = max(rss_peak, rss_kib())
            time.sleep(0.02)  # sampling period of the bystander's echo latency
        out, _ = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
    gap = idle.max_ping_gap(start)
    idle_closed = idle.close_code
    idle.stop()
    assert idle_closed is None, f"an idle healthy connection was closed with {idle_closed}"
    assert len(idle.pings) >= 2, "the idle connection got no heartbeats during the flood"
    return json.loads(out), echoes, gap, bystander, rss_peak - rss0


def test_ping_flood_is_closed_1008_without_hurting_others(
    server: ServerHandle, adapter: str
) -> None:
    result, echoes, gap, bystander, growth = _flood_with_bystander(
        server.port, ["ping", "1.5", "30000"], 1.5
    )
    try:
        codes = result["codes"]
        assert codes.get("1008", 0) >= 1, result
        assert set(codes) <= {"1008", "None"}, result  # None: reset before the close frame
        assert bystander.close_code is None, "the bystander was closed during the flood"
        assert len(echoes) >= 5
        assert gap < FAST.interval + FAST.timeout + SLACK, f"heartbeat gap {gap:.3f} s"
        assert growth < 64 * 1024, f"RSS grew by {growth} KiB under a ping flood"
        assert server.wait_closed_count(result["connections"], 5.0)
    finally:
        bystander.stop()
    record(
        f"ping flood: {result['connections']} connections in 1.5 s, each bursting 30,000 "
        "pings (own process)",
        adapter,
        f"close 1008 (strikes) on every one ({codes.get('1008', 0)} close frames read, "
        "the rest reset first); bystander unaffected",
        f"{result['pongs']} pongs sent in all; close <= {result['max_close_ms']:.0f} ms; "
        f"bystander echo median {statistics.median(echoes) * 1000:.1f} ms, "
        f"max {max(echoes) * 1000:.1f} ms; heartbeat gap <= {gap * 1000:.0f} ms "
        f"(interval 200 ms); RSS peak +{growth} KiB",
    )
    probe(server.port)


def test_stray_pong_flood_is_closed_1008_without_hurting_others(
    server: ServerHandle, adapter: str
) -> None:
    """Unsolicited pongs are legal (a unidirectional heartbeat) and ignored, but a stream
    of them falls under the flood rule: strikes, then 1008."""
    result, echoes, gap, bystander, growth = _flood_with_bystander(
        server.port, ["pong", "1.5"], 1.5
    )
    try:
        assert result["code"] == 1008, result
        assert bystander.close_code is None
        assert echoes, "the bystander's messages got no echo during the flood"
        assert gap < FAST.interval + FAST.timeout + SLACK, f"heartbeat gap {gap:.3f} s"
        assert growth < 64 * 1024
    finally:
        bystander.stop()
    record(
        f"stray pong flood: {result['connections']} connections bursting random pongs "
        "for 1.5 s (own process)",
        adapter,
        "close 1008 'too many pongs' (strikes); bystander unaffected",
        f"bystander echo median {statistics.median(echoes) * 1000:.1f} ms, "
        f"max {max(echoes) * 1000:.1f} ms; heartbeat gap <= {gap * 1000:.0f} ms; "
        f"RSS peak +{growth} KiB",
    )
    probe(server.port)


def test_unsolicited_pongs_are_ignored(server: ServerHandle, adapter: str) -> None:
    """Bursts of stray pongs below the flood rule's strike limit (100) are ignored; the
    connection stays open and its heartbeat keeps working."""
    rnd = os.urandom(125 * 300)
    with RawClient(server.port) as c:
        c.handshake()
        for burst in range(3):
            c.send(
                b"".join(
                    frame(PONG, rnd[i * 125 : i * 125 + (i % 126)])
                    for i in range(burst * 90, burst * 90 + 90)
                )
            )
            # A server heartbeat in between spaces the bursts (and must be answered).
            ping = c.expect(lambda f: f.opcode == PING, 3.0)
            assert ping is not None, "no heartbeat from the server after a burst of pongs"
            c.send_frame(PONG, ping.payload)
        c.send_frame(TEXT, b"after the pongs")
        f = c.expect(lambda f: f.opcode == TEXT, 3.0)
        assert f is not None and f.payload == b"after the pongs"
        c.send_frame(PING, b"alive?")
        assert c.expect(lambda f: f.opcode == PONG and f.payload == b"alive?", 3.0)
        assert not c.eof
    record(
        "unsolicited pongs, random payloads (3 bursts of 90)",
        adapter,
        "ignored; connection stays open, heartbeats continue",
        "echo and ping answered afterwards",
    )
    probe(server.port)


def test_replayed_pongs_do_not_keep_a_dead_peer_alive(adapter: str) -> None:
    """With pong-only liveness, replaying the first ping's payload must not count:
    the server declares the peer dead (1011) one timeout after its next ping."""
    cfg = HeartbeatConfig(interval=0.2, timeout=0.3, close_timeout=0.3, liveness=Liveness.PONG_ONLY)
    with running_server(adapter, cfg) as srv, RawClient(srv.port) as c:
        c.handshake()
        first = c.expect(lambda f: f.opcode == PING, 3.0)
        assert first is not None
        c.send_frame(PONG, first.payload)
        second = c.expect(lambda f: f.opcode == PING, 3.0)
        assert second is not None and second.payload != first.payload
        t0 = time.monotonic()
        code = None
        for _ in range(200):  # replay every 10 ms until the server gives up
            c.send_frame(PONG, first.payload)
            f = c.next_frame(0.01)
            if f is not None and f.opcode == CLOSE:
                code = f.close_code
                break
            if c.eof:
                break
        took = time.monotonic() - t0
        assert code == 1011, f"expected 1011 heartbeat-timeout, got {code}"
        assert took < cfg.timeout + SLACK
        record(
            "replayed pongs (pong-only liveness)",
            adapter,
            "close 1011 heartbeat-timeout",
            f"dead {took * 1000:.0f} ms after the unanswered ping (timeout 300 ms)",
        )
        probe(srv.port)


@pytest.mark.parametrize("style", [HeartbeatStyle.PROTOCOL, HeartbeatStyle.APP])
def test_app_mode_inputs(adapter: str, style: HeartbeatStyle) -> None:
    """Application-level heartbeat traffic, with protocol heartbeats (app pings answered
    anyway) and with app-level heartbeats (the server's own pings are JSON messages)."""
    app_ping = b'{"type":"ping"}'

    def reply(f: Frame) -> bool:  # a text frame that is not the server's own heartbeat
        return f.opcode == TEXT and f.payload != app_ping

    with running_server(adapter, replace(FAST, style=style)) as srv:
        with RawClient(srv.port) as c:
            c.handshake()
            # The seed's app-level ping is answered, not delivered.
            c.send_frame(TEXT, app_ping)
            f = c.expect(reply, 3.0)
            assert f is not None and f.payload == b'{"type":"pong"}'
            # Malformed JSON and a nested ping are ordinary messages (echoed back).
            for text in (b'{"type": "ping"', b'{"data":{"type":"ping"}}', b"[1,2"):
                c.send_frame(TEXT, text)
                f = c.expect(reply, 3.0)
                assert f is not None and f.payload == text, (text, f)
        record(
            f'{style.value} heartbeats: malformed JSON, nested {{"type":"ping"}}',
            adapter,
            'delivered as messages (echoed), not answered; {"type":"ping"} answered',
            "connection stays open",
        )
        with RawClient(srv.port) as c:
            c.handshake()
            c.send_frame(TEXT, b"caf\xc3")
            took = closes_with(c, 1007)
        record(
            f"{style.value} heartbeats: invalid UTF-8 text",
            adapter,
            "close 1007",
            f"{took * 1000:.1f} ms",
        )
        probe(srv.port)


def test_16_mib_text_message_closes_1009(server: ServerHandle, adapter: str) -> None:
    data = frame(TEXT, b"a" * (16 << 20))
    rss0 = rss_kib()
    with RawClient(server.port) as c:
        c.handshake()
        t0 = time.monotonic()
        with contextlib.suppress(OSError):  # the server closes (and resets) mid-message
            for i in range(0, len(data), 1 << 20):
                c.sock.sendall(data[i : i + (1 << 20)])
        code, _ = c.wait_close(5.0)
        took = time.monotonic() - t0
    growth = rss_kib() - rss0
    assert code == 1009, f"expected 1009, got {code}"
    assert growth < 16 * 1024, f"RSS grew {growth} KiB"
    record(
        "app mode: 16 MiB text message (max_size 1 MiB)",
        adapter,
        "close 1009 'message too big'",
        f"{took * 1000:.0f} ms; RSS +{max(0, growth)} KiB",
    )
    probe(server.port)


def test_client_that_never_reads_stays_bounded(server: ServerHandle, adapter: str) -> None:
    """Messages echo back to a client that never reads: the server must pause or close,
    not buffer without limit."""
    rss0 = rss_kib()
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(5.0)
    sock.connect(("127.0.0.1", server.port))
    with contextlib.closing(sock):
        sock.sendall(upgrade_request())
        head = b""
        while b"\r\n\r\n" not in head:
            head += sock.recv(4096)
        assert head.startswith(b"HTTP/1.1 101 ")
        msg = frame(BINARY, b"z" * 65536)
        sock.settimeout(1.0)  # a send that stalls for 1 s means the server stopped reading
        sent = 0
        t0 = time.monotonic()
        outcome = "paused"
        while sent < (256 << 20) and time.monotonic() - t0 < 20:
            try:
                sock.sendall(msg)
            except TimeoutError:
                outcome = "paused"
                break
            except OSError:
                outcome = "closed"
                break
            sent += len(msg)
        growth = rss_kib() - rss0
        took = time.monotonic() - t0
    assert sent < (256 << 20), "the server read 256 MiB from a client that reads nothing"
    assert growth < 96 * 1024, f"RSS grew {growth} KiB"
    if outcome == "closed":
        closed = server.wait_closed_count(1, 5.0)
        assert closed, "the client's send failed but the server reports no close"
        did = f"closed {closed[0][1].code} {closed[0][1].reason!r}"
    else:
        did = "stopped reading (paused)"
    record(
        "client that never reads (64 KiB echoes)",
        adapter,
        did,
        f"accepted {sent >> 20} MiB in {took:.1f} s before that; RSS +{max(growth, 0) >> 10} MiB",
    )
    probe(server.port)


def test_connection_churn_leaks_nothing(server: ServerHandle, adapter: str) -> None:
    import threading as _threading

    probe(server.port)  # warm up: the loop's timer, buffers, first thread
    wait_until(lambda: server.counts()["connections"] == 0, 5.0)
    before = server.counts()
    fds0 = len(os.listdir("/proc/self/fd"))
    threads0 = _threading.active_count()
    rss0 = rss_kib()
    n_clean = n_abort = n_half = 0
    t0 = time.monotonic()
    for i in range(300):
        if time.monotonic() - t0 > 20:
            break
        c = RawClient(server.port)
        try:
            if i % 3 == 0:  # clean close
                c.handshake()
                c.send_frame(CLOSE, b"\x03\xe8")
                c.wait_eof(3.0)
                n_clean += 1
            elif i % 3 == 1:  # reset in the middle of the session
                c.handshake()
                c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\0\0\0\0\0\0\0")
                n_abort += 1
            else:  # gone during the opening handshake
                c.send(upgrade_request()[:40])
                n_half += 1
        finally:
            c.close()
    wait_until(
        lambda: server.counts()["connections"] == 0,
        10.0,
        lambda: f"every connection released: {server.counts()}",
    )
    # Stale heap entries are allowed until their deadline passes; live ones are not.
    wait_until(
        lambda: server.counts()["live_timer_entries"] == 0,
        5.0,
        lambda: f"no live timer entry: {server.counts()}",
    )
    wait_until(
        lambda: server.counts()["timer_entries"] <= before["timer_entries"] + 1,
        5.0,
        lambda: f"timer entries back to at most {before['timer_entries'] + 1}: {server.counts()}",
    )
    wait_until(lambda: len(os.listdir("/proc/self/fd")) <= fds0, 5.0)
    wait_until(lambda: _threading.active_count() <= threads0, 5.0)
    after = server.counts()
    if adapter == "asyncio":
        assert after["tasks"] <= before["tasks"], (before, after)
        assert after["loop_handles"] <= before["loop_handles"] + 1, (before, after)
    fds1 = len(os.listdir("/proc/self/fd"))
    rss1 = rss_kib()
    record(
        f"churn: {n_clean} clean, {n_abort} reset, {n_half} half-handshake connections",
        adapter,
        "all released",
        f"fds {fds0} -> {fds1}; threads {threads0} -> {_threading.active_count()}; "
        + ", ".join(f"{k} {before[k]} -> {after[k]}" for k in before if k != "threads")
        + f"; RSS +{max(rss1 - rss0, 0)} KiB",
    )
    probe(server.port)


def test_a_stuck_application_does_not_get_a_healthy_peer_declared_dead(adapter: str) -> None:
    """The server's handler never reads while a healthy client (answering every ping)
    sends 100 messages. The server stops reading at ``max_queue`` (backpressure), so the
    client's pongs wait unread in the kernel: rule paused-reading says no verdict while
    we do not read (no 1011 heartbeat-timeout), and the heartbeat still goes out."""
    window = 5 * (FAST.interval + FAST.timeout)  # 3 s: five times the dead-peer bound
    with running_server(adapter, FAST, app="stuck") as srv:
        client = Bystander(srv.port)
        try:
            for i in range(100):
                client.client.send_frame(TEXT, b"message %d" % i)
            # A heartbeat goes out (proxies keep seeing traffic) although its pong
            # cannot be read ...
            wait_until(lambda: len(client.pings) >= 1, 5.0, "a heartbeat to be sent")
            # ... and it gets no deadline: nothing happens for many timeouts.
            t0 = time.monotonic()
            poll(lambda: client.close_code is not None or srv.peer_dead(), window)
            took = time.monotonic() - t0
            code = client.close_code
            pings = len(client.pings)
        finally:
            client.stop()
        assert code is None, f"a healthy peer of a stuck handler was closed with {code}"
        assert not srv.peer_dead(), srv.peer_dead()
        assert took >= window - 0.05
    record(
        "stuck handler (never reads), healthy client sends 100 messages",
        adapter,
        "reading paused at max_queue; no false heartbeat-timeout (paused-reading)",
        f"{pings} heartbeat(s) sent while paused; no verdict in {took:.1f} s "
        f"(interval + timeout = {FAST.interval + FAST.timeout:.1f} s)",
    )
