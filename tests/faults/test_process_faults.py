"""Faults of whole processes and of the network: frozen peers (SIGSTOP on a client
process), a frozen-then-resumed server (SIGSTOP/SIGCONT on the server process), and two
network namespaces joined by a veth pair (delay, loss, a cut-off peer).

Every child process is started here, bounded by its own lifetime, and killed by its pid
at the end of its test.
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import shutil
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from heartbeat_core import Closed, HeartbeatConfig, PeerDead, RttSample
from tests.support.waiting import wait_until

from .harness import Bystander, probe, record, running_server

HERE = Path(__file__).parent
SLACK = 2.0


class Child:
    """A child process whose stdout carries JSON lines; every read is bounded."""

    def __init__(self, argv: list[str]) -> None:
        self.proc = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        assert self.proc.stdout is not None
        os.set_blocking(self.proc.stdout.fileno(), False)
        self._sel = selectors.DefaultSelector()
        self._sel.register(self.proc.stdout, selectors.EVENT_READ)
        self._buf = b""
        self.lines: list[dict[str, Any]] = []

    def _pump(self, timeout: float) -> bool:
        if not self._sel.select(timeout):
            return False
        assert self.proc.stdout is not None
        chunk = self.proc.stdout.read() or b""
        self._buf += chunk
        *whole, self._buf = self._buf.split(b"\n")
        self.lines.extend(json.loads(line) for line in whole if line.strip())
        return bool(chunk)

    def wait_for(self, pred: Any, timeout: float) -> list[dict[str, Any]]:
        """Read until ``pred(lines)`` is true or ``timeout``; return the lines read."""
        end = time.monotonic() + timeout
        while not pred(self.lines):
            left = end - time.monotonic()
            if left <= 0:
                break
            if not self._pump(left) and self.proc.poll() is not None:
                break
        return self.lines

    def events(self, name: str) -> list[dict[str, Any]]:
        return [line for line in self.lines if line.get("event") == name]

    def stop(self) -> None:
        """Resume (if frozen) and end the process, by its pid; bounded."""
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.proc.pid, signal.SIGCONT)
        with contextlib.suppress(OSError):
            assert self.proc.stdin is not None
            self.proc.stdin.close()
        try:
            self.proc.wait(3)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        with contextlib.suppress(Exception):
            self._pump(0.1)
        self._sel.close()
        assert self.proc.stdout is not None and self.proc.stderr is not None
        self.proc.stdout.close()
        self.proc.stderr.close()


@contextlib.contextmanager
def child(argv: list[str]) -> Iterator[Child]:
    c = Child(argv)
    try:
        yield c
    finally:
        c.stop()


# ---------------------------------------------------------------- frozen peers


@pytest.mark.parametrize("n", [50])
def test_frozen_peers_are_detected_within_interval_plus_timeout(adapter: str, n: int) -> None:
    cfg = HeartbeatConfig(interval=0.2, timeout=0.4, close_timeout=0.3)
    with (
        running_server(adapter, cfg) as srv,
        child(
            [
                sys.executable,
                str(HERE / "peer_process.py"),
                "127.0.0.1",
                str(srv.port),
                str(n),
                "30",
            ]
        ) as peers,
    ):
        peers.wait_for(lambda lines: any("ready" in x for x in lines), 10.0)
        assert any("ready" in x for x in peers.lines), peers.proc.stderr

        # Every connection has had a heartbeat answered: all are healthy.
        def answered() -> int:
            return len({c for _, c, e in list(srv.events) if isinstance(e, RttSample)})

        wait_until(lambda: answered() >= n, 5.0, lambda: f"{n} answered peers, got {answered()}")
        os.kill(peers.proc.pid, signal.SIGSTOP)
        t0 = time.monotonic()
        closed = srv.wait_closed_count(n, cfg.interval + cfg.timeout + cfg.close_timeout + SLACK)
        dead = srv.peer_dead()
        assert len(closed) == n, f"only {len(closed)} of {n} frozen peers were released"
        assert len(dead) == n
        detect = [t - t0 for t, _ in dead]
        release = [t - t0 for t, _ in closed]
        assert all(isinstance(e, Closed) and e.code == 1011 for _, e in closed)
        assert all(isinstance(e, PeerDead) for _, e in dead)
        assert max(detect) <= cfg.interval + cfg.timeout + SLACK
        assert min(detect) >= cfg.timeout * 0.9  # nobody was declared dead before a timeout
        record(
            f"{n} half-open peers (client process SIGSTOPped)",
            adapter,
            "close 1011 heartbeat-timeout, sockets released",
            f"detected {min(detect) * 1000:.0f}-{max(detect) * 1000:.0f} ms after the freeze "
            f"(median {statistics.median(detect) * 1000:.0f}; bound interval+timeout = 600 ms); "
            f"released <= {max(release) * 1000:.0f} ms",
        )
        probe(srv.port)


def test_suspended_server_does_not_kill_healthy_clients(adapter: str) -> None:
    """SIGSTOP the server process for 3 x timeout, then SIGCONT: its timers all fire late;
    the late-timer rule reads the pongs that waited in the kernel before judging anyone."""
    interval, timeout = 0.2, 0.4
    with child(
        [
            sys.executable,
            str(HERE / "server_process.py"),
            adapter,
            "127.0.0.1",
            str(interval),
            str(timeout),
            "30",
        ]
    ) as server:
        server.wait_for(lambda lines: any("port" in x for x in lines), 10.0)
        port = next(x["port"] for x in server.lines if "port" in x)
        clients = [Bystander(port) for _ in range(5)]
        try:
            wait_until(lambda: all(len(c.pings) >= 2 for c in clients), 5.0)
            os.kill(server.proc.pid, signal.SIGSTOP)
            frozen_at = time.monotonic()
            time.sleep(3 * timeout)  # the fault itself: the server is frozen this long
            os.kill(server.proc.pid, signal.SIGCONT)
            resumed = time.monotonic()
            # Heartbeats resume on every connection, and nobody is closed.
            wait_until(
                lambda: all(sum(t > resumed for t in c.pings) >= 3 for c in clients),
                5.0,
                lambda: f"3 pings after the resume each: {[c.pings[-3:] for c in clients]}",
            )
            echo = max(c.echo(b"after the freeze") for c in clients)
            first = max(min(t for t in c.pings if t > resumed) - resumed for c in clients)
            assert all(c.close_code is None and not c.client.eof for c in clients)
        finally:
            for c in clients:
                c.stop()
        server.wait_for(lambda lines: len(server.events("Closed")) >= 5, 5.0)
        assert server.events("PeerDead") == [], server.events("PeerDead")
        codes = {x["code"] for x in server.events("Closed")}
        assert codes <= {1000, 1005, 1006}, codes  # closed by the clients, not by heartbeats
    record(
        "server process SIGSTOPped for 3 x timeout (1.2 s), then resumed",
        adapter,
        "no healthy client declared dead (late-timer rule); heartbeats resume",
        f"frozen {resumed - frozen_at:.2f} s; first heartbeat after resume <= "
        f"{first * 1000:.0f} ms; echo {echo * 1000:.1f} ms",
    )


# ---------------------------------------------------------------- network namespaces


def _run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)


def _netns_unavailable() -> str | None:
    if os.geteuid() != 0:
        return "network namespaces need root"
    if shutil.which("ip") is None:
        return "iproute2 (ip) is not installed"
    return None


def _netem_works(ns: str, dev: str) -> str | None:
    if shutil.which("tc") is None:
        return "tc (iproute2) is not installed"
    r = _run(
        "ip", "netns", "exec", ns, "tc", "qdisc", "add", "dev", dev, "root", "netem", "delay", "0ms"
    )
    if r.returncode != 0:
        return f"tc netem is unavailable here (kernel without sch_netem?): {r.stderr.strip()}"
    _run("ip", "netns", "exec", ns, "tc", "qdisc", "del", "dev", dev, "root")
    return None


class NetPair:
    """Two namespaces joined by a veth pair: server side 10.77.X.1, client side 10.77.X.2."""

    def __init__(self) -> None:
        tag = os.getpid() % 100_000
        self.a, self.b = f"hbfa{tag}", f"hbfb{tag}"
        self.va, self.vb = f"hbva{tag}", f"hbvb{tag}"
        sub = tag % 250 + 1
        self.ip_a, self.ip_b = f"10.77.{sub}.1", f"10.77.{sub}.2"

    def up(self) -> str | None:
        steps = [
            ("ip", "netns", "add", self.a),
            ("ip", "netns", "add", self.b),
            ("ip", "link", "add", self.va, "type", "veth", "peer", "name", self.vb),
            ("ip", "link", "set", self.va, "netns", self.a),
            ("ip", "link", "set", self.vb, "netns", self.b),
            ("ip", "-n", self.a, "addr", "add", f"{self.ip_a}/24", "dev", self.va),
            ("ip", "-n", self.b, "addr", "add", f"{self.ip_b}/24", "dev", self.vb),
            ("ip", "-n", self.a, "link", "set", self.va, "up"),
            ("ip", "-n", self.b, "link", "set", self.vb, "up"),
            ("ip", "-n", self.a, "link", "set", "lo", "up"),
            ("ip", "-n", self.b, "link", "set", "lo", "up"),
        ]
        for step in steps:
            r = _run(*step)
            if r.returncode != 0:
                return f"cannot set up network namespaces ({' '.join(step)}): {r.stderr.strip()}"
        return None

    def down(self) -> None:
        _run("ip", "netns", "del", self.a)
        _run("ip", "netns", "del", self.b)
        _run("ip", "link", "del", self.va)

    def netem(self, *args: str) -> None:
        for ns, dev in ((self.a, self.va), (self.b, self.vb)):
            r = _run(
                "ip",
                "netns",
                "exec",
                ns,
                "tc",
                "qdisc",
                "replace",
                "dev",
                dev,
                "root",
                "netem",
                *args,
            )
            assert r.returncode == 0, r.stderr

    def cut_with_link_down(self) -> None:
        r = _run("ip", "-n", self.b, "link", "set", self.vb, "down")
        assert r.returncode == 0, r.stderr

    def in_a(self, argv: list[str]) -> list[str]:
        return ["ip", "netns", "exec", self.a, *argv]

    def in_b(self, argv: list[str]) -> list[str]:
        return ["ip", "netns", "exec", self.b, *argv]


@pytest.fixture
def netpair() -> Iterator[NetPair]:
    reason = _netns_unavailable()
    if reason:
        pytest.skip(reason)
    pair = NetPair()
    pair.down()  # leftovers of a killed run with the same pid
    try:
        reason = pair.up()
        if reason:
            pytest.skip(reason)
        yield pair
    finally:
        pair.down()


def _serve_and_connect(
    pair: NetPair, adapter: str, interval: float, timeout: float, n: int, lifetime: float
) -> tuple[list[str], list[str]]:
    server = pair.in_a(
        [
            sys.executable,
            str(HERE / "server_process.py"),
            adapter,
            pair.ip_a,
            str(interval),
            str(timeout),
            str(lifetime),
        ]
    )
    return server, [
        sys.executable,
        str(HERE / "peer_process.py"),
        pair.ip_a,
        "{port}",
        str(n),
        str(lifetime),
    ]


def test_netns_cut_off_peer_is_detected(netpair: NetPair, adapter: str) -> None:
    """A peer behind a link that drops everything (netem loss 100 %, or the link taken
    down where netem is missing) is declared dead within interval + timeout."""
    interval, timeout, n = 0.2, 0.4, 10
    netem_missing = _netem_works(netpair.a, netpair.va)
    server_argv, peer_argv = _serve_and_connect(netpair, adapter, interval, timeout, n, 20)
    with child(server_argv) as server:
        server.wait_for(lambda lines: any("port" in x for x in lines), 10.0)
        port = next(x["port"] for x in server.lines if "port" in x)
        peer_argv = [a.replace("{port}", str(port)) for a in peer_argv]
        with child(netpair.in_b(peer_argv)) as peers:
            peers.wait_for(lambda lines: any("ready" in x for x in lines), 10.0)
            assert any("ready" in x for x in peers.lines)
            server.wait_for(lambda lines: len(server.events("RttSample")) >= 2 * n, 5.0)
            assert len(server.events("RttSample")) >= 2 * n
            if netem_missing:
                netpair.cut_with_link_down()
                how = "link down (netem unavailable)"
            else:
                netpair.netem("loss", "100%")
                how = "netem loss 100 %"
            t0 = time.monotonic()
            server.wait_for(
                lambda lines: len(server.events("PeerDead")) >= n, interval + timeout + SLACK
            )
            dead = [x["t"] - t0 for x in server.events("PeerDead")]
            assert len(dead) == n, f"{len(dead)} of {n} cut-off peers detected"
            assert max(dead) <= interval + timeout + SLACK
    record(
        f"{n} peers cut off in another network namespace ({how})",
        adapter,
        "close 1011 heartbeat-timeout",
        f"detected {min(dead) * 1000:.0f}-{max(dead) * 1000:.0f} ms after the cut "
        f"(bound interval+timeout = {(interval + timeout) * 1000:.0f} ms)",
    )


def test_netns_delay_and_loss_never_kill_a_healthy_peer(netpair: NetPair, adapter: str) -> None:
    """100 ms delay each way and 5 % loss: with timeout well above the RTT, no healthy
    peer is declared dead over a long run; then 100 % loss is detected within the bound."""
    reason = _netem_works(netpair.a, netpair.va)
    if reason:
        pytest.skip(reason)
    interval, timeout, n, run = 0.5, 2.0, 10, 12.0
    netpair.netem("delay", "100ms", "loss", "5%")
    server_argv, peer_argv = _serve_and_connect(netpair, adapter, interval, timeout, n, 40)
    with child(server_argv) as server:
        server.wait_for(lambda lines: any("port" in x for x in lines), 10.0)
        port = next(x["port"] for x in server.lines if "port" in x)
        peer_argv = [a.replace("{port}", str(port)) for a in peer_argv]
        with child(netpair.in_b(peer_argv)) as peers:
            peers.wait_for(lambda lines: any("ready" in x for x in lines), 15.0)
            assert any("ready" in x for x in peers.lines)
            t_start = time.monotonic()
            # The long run: read the server's verdicts as they come, for `run` seconds.
            server.wait_for(lambda lines: bool(server.events("PeerDead")), run)
            assert server.events("PeerDead") == [], "a healthy peer was declared dead"
            rtts = [x["rtt"] for x in server.events("RttSample") if x["t"] >= t_start]
            netpair.netem("loss", "100%")
            t0 = time.monotonic()
            server.wait_for(
                lambda lines: len(server.events("PeerDead")) >= n, interval + timeout + SLACK
            )
            dead = [x["t"] - t0 for x in server.events("PeerDead")]
            assert len(dead) == n
            assert max(dead) <= interval + timeout + SLACK
    record(
        "netem 100 ms delay + 5 % loss, then 100 % loss",
        adapter,
        f"no false verdict in {run:.0f} s ({len(rtts)} heartbeats); cut peers closed 1011",
        f"RTT median {statistics.median(rtts) * 1000:.0f} ms, max {max(rtts) * 1000:.0f} ms; "
        f"detected <= {max(dead) * 1000:.0f} ms after the cut",
    )
