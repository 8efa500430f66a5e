"""Exhausted resources: no thread for a handler, no file descriptor for a connection, a
flood of abandoned handshakes. The server runs in a child process (tests/faults/
limits_server.py), so that its limits, CPU time, memory and log are its own.

Issue 18, findings 1, 3 and 4: each test fails on d061d09.
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import signal
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.frames import CLOSE, TEXT, upgrade_request
from tests.support.waiting import wait_until

from .harness import Bystander, RawClient, probe, record

HERE = Path(__file__).parent
SERVER = str(HERE / "limits_server.py")
INTERVAL = 0.2


def _uvloop_params() -> list[Any]:
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return [pytest.param("asyncio-uvloop", marks=pytest.mark.skip(reason="no uvloop"))]
    return ["asyncio-uvloop"]


ALL_LOOPS = ["asyncio", *_uvloop_params(), "threading"]


class LimitedServer:
    """limits_server.py in a child process: commands on stdin, JSON answers on stdout,
    its log on stderr (read without blocking). Every wait is bounded."""

    def __init__(self, adapter: str, *extra: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, SERVER, adapter, *extra],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        assert self.proc.stdout is not None and self.proc.stderr is not None
        os.set_blocking(self.proc.stderr.fileno(), False)
        self._sel = selectors.DefaultSelector()
        self._sel.register(self.proc.stdout, selectors.EVENT_READ)
        self.log = b""
        self.port = int(self._read(10.0)["port"])

    def _read(self, timeout: float) -> dict[str, Any]:
        assert self.proc.stdout is not None
        if not self._sel.select(timeout):
            raise AssertionError(f"the server said nothing for {timeout} s; log: {self.logged()}")
        line = self.proc.stdout.readline()
        if not line:
            raise AssertionError(f"the server exited ({self.proc.poll()}); log: {self.logged()}")
        result: dict[str, Any] = json.loads(line)
        return result

    def command(self, text: str, timeout: float = 10.0) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(text.encode() + b"\n")
        self.proc.stdin.flush()
        return self._read(timeout)

    def stats(self) -> dict[str, Any]:
        return self.command("stats")

    def logged(self) -> str:
        """Everything the server logged so far."""
        assert self.proc.stderr is not None
        with contextlib.suppress(BlockingIOError, TypeError):
            self.log += self.proc.stderr.read() or b""
        return self.log.decode(errors="replace")

    def log_lines(self) -> int:
        return self.logged().count("\n")

    def terminate(self, timeout: float = 8.0) -> int:
        """SIGTERM, by pid; the exit status (bounded)."""
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
        self._sel.close()
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()


@contextlib.contextmanager
def limited_server(adapter: str, *extra: str) -> Iterator[LimitedServer]:
    server = LimitedServer(adapter, *extra)
    try:
        yield server
    finally:
        server.stop()


def echoes(port: int, payload: bytes = b"hello", timeout: float = 3.0) -> bool:
    """A fresh client opens, sends a text message and gets it back."""
    with RawClient(port, timeout=timeout) as c:
        c.handshake(timeout)
        c.send_frame(TEXT, payload)
        got = c.expect(lambda f: f.opcode in (TEXT, CLOSE), timeout)
        return got is not None and got.opcode == TEXT and got.payload == payload


# ---------------------------------------------------------------- finding 1


def test_a_handler_thread_that_cannot_start_refuses_its_connection_and_serving_goes_on() -> None:
    """Under a task limit ``thread.start()`` raises: that connection is closed 1013 (try
    again later), the server keeps serving, answers everyone again once threads are
    available, and SIGTERM still shuts it down cleanly (exit status 0)."""
    with limited_server("threading") as server:
        assert echoes(server.port)
        bystander = Bystander(server.port)
        try:
            assert server.command("threads off")["ok"] == "threads off"
            t0 = time.monotonic()
            codes = []
            for _ in range(20):
                with RawClient(server.port) as c:
                    c.handshake()
                    codes.append(c.wait_close(3.0)[0])
            assert codes == [1013] * 20, codes
            assert bystander.echo(b"still here") < 1.0  # its handler thread runs on
            assert server.command("threads on")["ok"] == "threads on"
            assert all(echoes(server.port, b"again %d" % i) for i in range(5))
            wait_until(
                lambda: len([t for t in bystander.pings if t >= t0]) >= 5,
                5.0,
                "five heartbeats of the bystander since the refusals began",
            )
            gap = bystander.max_ping_gap(t0)
        finally:
            bystander.stop()
        assert gap <= INTERVAL + 0.1, gap
        refusals = server.logged().count("cannot start a handler thread")
        assert 1 <= refusals <= 2, server.logged()  # one line a second at most
        assert server.terminate() == 0, server.logged()
        assert "Traceback" not in server.logged(), server.logged()
    record(
        "no thread for the handler (thread.start() fails, 20 connections)",
        "threading",
        "close 1013 on each, serving on; echo again once threads are back; SIGTERM exit 0",
        f"bystander heartbeat gap <= {gap * 1000:.0f} ms; {refusals} log line(s)",
    )


# ---------------------------------------------------------------- finding 3


def _cpu_and_lines(server: LimitedServer, seconds: float) -> tuple[float, float]:
    s0, l0, t0 = server.stats()["cpu_s"], server.log_lines(), time.monotonic()
    time.sleep(seconds)
    s1, l1, t1 = server.stats()["cpu_s"], server.log_lines(), time.monotonic()
    return (s1 - s0) / (t1 - t0), (l1 - l0) / (t1 - t0)


@pytest.mark.parametrize("adapter", ALL_LOOPS)
def test_out_of_file_descriptors_the_accept_loop_backs_off(adapter: str) -> None:
    """RLIMIT_NOFILE 64 and 150 connections: accept() fails with EMFILE. The server
    pauses accepting instead of spinning (CPU <= 10 %), logs at most one line a second,
    keeps its healthy connection's heartbeats on time, and accepts again soon after
    descriptors are freed."""
    with limited_server(adapter, "--nofile", "64") as server:
        bystander = Bystander(server.port)
        flood: list[socket.socket] = []
        try:
            request = upgrade_request()
            for _ in range(150):
                s = socket.create_connection(("127.0.0.1", server.port), timeout=5)
                s.sendall(request)
                flood.append(s)
            wait_until(lambda: "accept failed" in server.logged(), 5.0, "an accept failure")
            t0 = time.monotonic()
            cpu, lines = _cpu_and_lines(server, 3.0)
            gap = bystander.max_ping_gap(t0)
            for s in flood:
                s.close()
            flood.clear()
            t1 = time.monotonic()
            probe(server.port, timeout=5.0)
            recovery = time.monotonic() - t1
        finally:
            for s in flood:
                s.close()
            bystander.stop()
        assert cpu <= 0.10, f"{cpu:.1%} CPU while out of descriptors"
        assert lines <= 1.5, f"{lines:.1f} log lines a second: {server.logged()[-2000:]}"
        assert gap <= INTERVAL + 0.1, gap
        assert recovery < 1.0, recovery
        assert server.terminate() == 0, server.logged()
    record(
        "out of descriptors: RLIMIT_NOFILE 64, 150 connections (EMFILE)",
        adapter,
        "accepts paused (<= 20 ms at a time), one log line a second, served again",
        f"CPU {cpu:.1%}; {lines:.1f} log lines/s; bystander heartbeat gap <= "
        f"{gap * 1000:.0f} ms; a new client served {recovery * 1000:.0f} ms after the "
        "150 closed",
    )


# ---------------------------------------------------------------- finding 4


def _abandon(port: int, i: int) -> None:
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # reset
    try:
        s.connect(("127.0.0.1", port))
        if i % 2:
            s.sendall(upgrade_request()[:40])  # gone in the middle of the request
    finally:
        s.close()


@pytest.mark.parametrize("adapter", ["asyncio", "threading"])
def test_abandoned_handshakes_are_released_at_once(adapter: str) -> None:
    """A flood of connections dropped before their handshake (the handshake timeout is
    the default 10 s): none is kept until its deadline, memory stays at its baseline."""
    with limited_server(adapter) as server:
        assert echoes(server.port)
        server.command("collect")  # (the warm-up connection, closed, waits in a cycle)
        wait_until(lambda: server.stats()["conns"] == 0, 5.0, "the warm-up connection freed")
        before = server.stats()
        n, t0 = 0, time.monotonic()
        while time.monotonic() - t0 < 2.0 and n < 20_000:
            _abandon(server.port, n)
            n += 1
        after = wait_until(
            lambda: (s := server.stats())["conns"] == 0 and s,
            1.0,
            lambda: f"every abandoned connection freed within 1 s: {server.stats()}",
            interval=0.1,
        )
        # Threading: within 10 % (the bound). asyncio keeps a few MiB of
        # high-water mark from the burst (accept tasks, transports; a second and a third
        # flood add next to nothing), as it did on d061d09.
        slack = 0 if adapter == "threading" else 4096
        assert after["rss_kib"] <= before["rss_kib"] * 1.10 + slack, (before, after)
        assert echoes(server.port)
    record(
        f"abandoned handshakes: {n} connections reset before or during the upgrade in 2 s",
        adapter,
        "each released at once (none kept until the 10 s handshake timeout)",
        f"live connections 0 within 1 s; RSS {before['rss_kib']} -> {after['rss_kib']} KiB",
    )
