"""The simulator agrees with reality: four scenarios, run for real on loopback against
each adapter's server and then simulated, must give the same outcome (a verdict or
none, a proxy cut or none) at the same time, within 50 ms.

1. A vanished peer (FrozenPeer: it never answers after the upgrade).
2. A peer process frozen (SIGSTOP) and resumed (SIGCONT): briefly (it survives) and
   past the timeout (a false positive, at the time the simulation says).
3. Latency added by a delaying loopback proxy (LinkProxy): the round trip measured
   matches, and a timeout below it kills the peer when the simulation says.
4. A proxy with an idle limit: it cuts an idle connection when the simulation says,
   and keeps a busy one.

The server sends heartbeats; the peer only answers (a raw answering process, or a
threading client whose own interval never comes), as the scenarios' ``client=None``
says. Times are measured from the server's ``Accepted`` event (the simulation's
``start``).
"""

from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from heartbeat_threading import connect
from heartbeat_threading.testing import Direction, FrozenPeer, LinkProxy

from heartbeat_core import Accepted, HeartbeatConfig, HeartbeatStyle, RttSample
from heartbeat_core.testing import (
    Ending,
    Link,
    Proxy,
    Scenario,
    Side,
    SimResult,
    Stall,
    Vanish,
    simulate,
)
from tests.faults.harness import ServerHandle, running_server
from tests.support.waiting import poll, wait_until

ADAPTERS = ["asyncio", "threading"]
#: How close reality must come to the simulation (the timer wheel's tick is 1 ms).
#: How far reality and the simulation may disagree on a verdict. The simulation runs
#: this much past the moment reality's verdict was seen: a real heartbeat goes out up to
#: timer_slack early (rule early-timer: from its grid point, which the simulation's, opened
#: at 0, sits exactly on), so reality's verdict may come first.
AGREE = 0.05
PEER_PROCESS = Path(__file__).resolve().parents[1] / "faults" / "peer_process.py"
#: A client that answers but never sends a heartbeat of its own.
ANSWER_ONLY = HeartbeatConfig(interval=3600, timeout=10)


def opened_at(server: ServerHandle) -> float:
    return wait_until(
        lambda: next((t for t, _, e in list(server.events) if isinstance(e, Accepted)), None),
        10,
        "the server's Accepted",
    )


def first_verdict(server: ServerHandle) -> float | None:
    dead = server.peer_dead()
    return dead[0][0] if dead else None


def agree(real: float | None, sim: SimResult, *, what: str) -> None:
    """Reality (seconds after the open, or None) against the simulation's verdict."""
    simulated = None if sim.verdict is None else sim.verdict.at
    assert (real is None) == (simulated is None), f"{what}: real {real}, simulated {simulated}"
    if real is not None and simulated is not None:
        print(f"{what}: real {real:.4f} s, simulated {simulated:.4f} s")  # (shown with -s)
        assert abs(real - simulated) <= AGREE, (
            f"{what}: real {real:.3f} s, simulated {simulated:.3f} s"
        )


@pytest.mark.parametrize("style", list(HeartbeatStyle))
@pytest.mark.parametrize("adapter", ADAPTERS)
def test_a_vanished_peer(adapter: str, style: HeartbeatStyle) -> None:
    cfg = HeartbeatConfig(interval=0.5, timeout=0.5, style=style)
    with running_server(adapter, cfg) as server:
        peer = FrozenPeer("127.0.0.1", server.port)
        try:
            t0 = opened_at(server)
            wait_until(lambda: first_verdict(server), 5, "the verdict")
        finally:
            peer.close()
    real = first_verdict(server)
    assert real is not None
    sim = simulate(
        Scenario(client=None, server=cfg, faults=(Vanish(side=Side.CLIENT, at=0.0),), duration=5)
    )
    assert not sim.false_positive and sim.detection == pytest.approx(1.0)
    agree(real - t0, sim, what="vanished peer")


class AnsweringProcess:
    """tests/faults/peer_process.py: one connection whose pings a separate process
    answers, so that SIGSTOP freezes it as a whole (stopped by its PID)."""

    def __init__(self, port: int) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(PEER_PROCESS), "127.0.0.1", str(port), "1", "30"],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert self.proc.stdout is not None
        with selectors.DefaultSelector() as sel:
            sel.register(self.proc.stdout, selectors.EVENT_READ)
            assert sel.select(15), "the peer process never became ready"
        assert json.loads(self.proc.stdout.readline()) == {"ready": 1}

    def freeze(self, seconds: float) -> tuple[float, float]:
        """SIGSTOP, wait, SIGCONT: the monotonic times of both signals."""
        os.kill(self.proc.pid, signal.SIGSTOP)
        stopped = time.monotonic()
        time.sleep(seconds)
        os.kill(self.proc.pid, signal.SIGCONT)
        return stopped, time.monotonic()

    def close(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGCONT)
            self.proc.kill()
        self.proc.wait(10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


@pytest.mark.parametrize("freeze", [0.3, 1.5])
@pytest.mark.parametrize("adapter", ADAPTERS)
def test_a_frozen_then_resumed_peer(adapter: str, freeze: float) -> None:
    """Frozen 0.3 s: every pong is at most 0.3 s late, inside the 0.5 s timeout. Frozen
    1.5 s: the ping sent meanwhile goes unanswered, and the verdict comes 0.5 s after
    it, when the simulation puts it."""
    cfg = HeartbeatConfig(interval=0.5, timeout=0.5)
    with running_server(adapter, cfg) as server:
        peer = AnsweringProcess(server.port)
        try:
            t0 = opened_at(server)
            time.sleep(1.2)
            stopped, resumed = peer.freeze(freeze)
            poll(lambda: first_verdict(server), 1.5)
            end = time.monotonic()
        finally:
            peer.close()
    verdict = first_verdict(server)
    real = None if verdict is None else verdict - t0
    sim = simulate(
        Scenario(
            client=None,
            server=cfg,
            faults=(Stall(side=Side.CLIENT, at=stopped - t0, duration=resumed - stopped),),
            duration=end - t0 + AGREE,  # (the horizon: see AGREE)
        )
    )
    assert sim.false_positive == (freeze > cfg.timeout)
    agree(real, sim, what=f"frozen {freeze} s")


@pytest.mark.parametrize("timeout", [0.5, 0.15])
@pytest.mark.parametrize("adapter", ADAPTERS)
def test_latency_added_by_a_delaying_proxy(adapter: str, timeout: float) -> None:
    """100 ms each way: a 200 ms round trip. With a 0.5 s timeout nobody dies and the
    RTTs agree; with 0.15 s the first heartbeat's verdict comes at 0.65 s in both."""
    cfg = HeartbeatConfig(interval=0.5, timeout=timeout)
    one_way = Direction(delay=0.1)
    with (
        running_server(adapter, cfg) as server,
        LinkProxy(server.port, up=one_way, down=one_way) as proxy,
        connect(proxy.url(), config=ANSWER_ONLY),
    ):
        t0 = opened_at(server)
        poll(lambda: first_verdict(server), 2.0)
        end = time.monotonic()
    verdict = first_verdict(server)
    real = None if verdict is None else verdict - t0
    sim = simulate(
        Scenario(
            client=None, server=cfg, link=Link.symmetric(rtt=0.2), duration=end - t0 + AGREE
        )  # (the horizon: see AGREE)
    )
    agree(real, sim, what=f"timeout {timeout} behind a 200 ms round trip")
    if sim.verdict is None:
        rtts = [e.rtt for _, _, e in server.events if isinstance(e, RttSample)]
        assert sim.server.stats is not None and sim.server.stats.last_rtt is not None
        assert len(rtts) >= 2
        simulated = sim.server.stats.last_rtt
        print(f"RTT: real {min(rtts):.4f}-{max(rtts):.4f} s, simulated {simulated:.4f} s")
        assert all(abs(r - sim.server.stats.last_rtt) <= AGREE for r in rtts), rtts


@pytest.mark.parametrize(("interval", "limit"), [(1.0, 0.6), (0.5, 1.5)])
@pytest.mark.parametrize("adapter", ADAPTERS)
def test_a_proxy_that_cuts_idle_connections(adapter: str, interval: float, limit: float) -> None:
    """Heartbeats every 1 s behind a 0.6 s idle limit: cut 0.6 s after the upgrade.
    Every 0.5 s behind 1.5 s: never cut."""
    cfg = HeartbeatConfig(interval=interval, timeout=0.5)
    with (
        running_server(adapter, cfg) as server,
        LinkProxy(server.port, idle_limit=limit) as proxy,
        connect(proxy.url(), config=ANSWER_ONLY),
    ):
        t0 = opened_at(server)
        poll(lambda: proxy.cuts, 2.0)
    sim = simulate(Scenario(client=None, server=cfg, proxy=Proxy(idle_limit=limit), duration=2.0))
    assert (sim.ending is Ending.PROXY_CUT) == bool(proxy.cuts), (sim.ending, proxy.cuts)
    if proxy.cuts:
        assert sim.proxy_cut_at is not None
        print(f"proxy cut: real {proxy.cuts[0] - t0:.4f} s, simulated {sim.proxy_cut_at:.4f} s")
        assert abs((proxy.cuts[0] - t0) - sim.proxy_cut_at) <= AGREE, proxy.cuts[0] - t0
    assert server.peer_dead() == [] and sim.verdict is None
