"""Delay, stalls and a blackhole without netem: every case through LinkProxy
(heartbeat_threading.testing), on both adapters and in both heartbeat styles.

* A healthy peer behind a 300 ms round trip whose link stalls for 0.6 s every few
  seconds (both directions at once, as a retransmission looks to TCP), with a 1 s
  timeout: nobody is declared dead for two minutes. The worst round trip is 0.9 s,
  0.1 s inside the timeout.
* Then each link becomes a blackhole: the peer cut off is declared dead, by the server
  and by the client, within interval + timeout + 50 ms of the cut.

The four adapter/style pairs run at the same time, each through its own proxy, so
both cases together cost two minutes and a few seconds of the fault suite.

The netem cases (test_process_faults) stay, for kernels that have sch_netem.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from heartbeat_threading.testing import Direction, LinkProxy

from heartbeat_core import HeartbeatConfig, HeartbeatStyle, PeerDead, RttSample
from tests.support.waiting import wait_until

from .harness import record, running_server

PAIRS = [(a, s) for a in ("asyncio", "threading") for s in HeartbeatStyle]
#: The healthy case's length: two minutes (HEARTBEAT_PROXY_SECONDS shortens it locally).
HEALTHY_SECONDS = float(os.environ.get("HEARTBEAT_PROXY_SECONDS", "120"))


class Peer:
    """One client of ``adapter`` through a proxy, in a thread of its own, recording its
    heartbeat events; closed by ``stop``."""

    def __init__(self, adapter: str, url: str, config: HeartbeatConfig) -> None:
        self.events: list[tuple[float, object]] = []
        self.ready = threading.Event()
        self._stop = threading.Event()
        self.error: BaseException | None = None
        target: Callable[[], None] = self._asyncio if adapter == "asyncio" else self._threading
        self._url, self._config = url, config
        self._thread = threading.Thread(target=target, name=f"peer-{adapter}", daemon=True)
        self._thread.start()

    def on_event(self, conn: object, event: object) -> None:
        self.events.append((time.monotonic(), event))

    def _threading(self) -> None:
        from heartbeat_threading import connect

        try:
            with connect(self._url, config=self._config, on_event=self.on_event):
                self.ready.set()
                self._stop.wait(HEALTHY_SECONDS + 60)
        except BaseException as exc:  # reported by the test
            self.error = exc
            self.ready.set()

    def _asyncio(self) -> None:
        from heartbeat_asyncio import connect

        async def main() -> None:
            async with connect(self._url, config=self._config, on_event=self.on_event):
                self.ready.set()
                while not self._stop.is_set():
                    await asyncio.sleep(0.05)

        try:
            asyncio.run(main())
        except BaseException as exc:
            self.error = exc
            self.ready.set()

    def dead(self) -> list[float]:
        return [t for t, e in list(self.events) if isinstance(e, PeerDead)]

    def rtts(self) -> list[float]:
        return [e.rtt for _, e in list(self.events) if isinstance(e, RttSample)]

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)


@pytest.mark.timeout(HEALTHY_SECONDS + 60)
def test_a_healthy_peer_survives_delay_and_stalls_and_a_cut_off_one_is_found() -> None:
    """Four adapter/style pairs side by side, each through its own proxy. For two
    minutes: RTT 300 ms plus 0.6 s link stalls every 4 s, timeout 1 s: no verdict on
    either side. Then every proxy turns into a blackhole at once: each server and each
    client declares its peer dead within interval + timeout + 50 ms of the cut."""
    interval, timeout = 1.0, 1.0
    stalling = Direction(delay=0.15, stall_every=4.0, stall=0.6)
    setups: list[tuple[str, HeartbeatStyle, Any, Any, LinkProxy, Peer]] = []
    try:
        for adapter, style in PAIRS:
            config = HeartbeatConfig(interval=interval, timeout=timeout, style=style)
            server_cm = running_server(adapter, config)
            server = server_cm.__enter__()
            proxy = LinkProxy(server.port, up=stalling, down=stalling)
            peer = Peer(adapter, proxy.url(), config)
            setups.append((adapter, style, server_cm, server, proxy, peer))
        for *_, peer in setups:
            assert peer.ready.wait(15) and peer.error is None, peer.error
        time.sleep(HEALTHY_SECONDS)
        healthy: list[tuple[str, HeartbeatStyle, list[float]]] = []
        for adapter, style, _, server, proxy, peer in setups:
            assert peer.error is None, peer.error
            server_rtts = [e.rtt for _, _, e in list(server.events) if isinstance(e, RttSample)]
            assert server.peer_dead() == [], f"{adapter}/{style.value}: the server gave a verdict"
            assert peer.dead() == [], f"{adapter}/{style.value}: the client gave a verdict"
            assert proxy.connections == 1
            rtts = server_rtts + peer.rtts()
            # Heartbeats ran all along (about one a second each way) and met the stalls.
            assert len(rtts) >= HEALTHY_SECONDS / 2, len(rtts)
            assert min(rtts) >= 0.29, rtts
            if HEALTHY_SECONDS >= 60:  # (30 stalls: some heartbeats were held by one)
                assert max(rtts) >= 0.35, max(rtts)
            healthy.append((adapter, style, rtts))

        # The cut-off case: every link a blackhole at once.
        cuts = [proxy.blackhole() for *_, proxy, _ in setups]
        bound = interval + timeout + 0.05
        wait_until(
            lambda: all(server.peer_dead() and peer.dead() for *_, server, _, peer in setups),
            10,
            "every verdict after the cut",
        )
        for (adapter, style, _, server, _, peer), cut, (_, _, rtts) in zip(
            setups, cuts, healthy, strict=True
        ):
            server_after = server.peer_dead()[0][0] - cut
            client_after = peer.dead()[0] - cut
            assert 0 < server_after <= bound, (adapter, style, server_after)
            assert 0 < client_after <= bound, (adapter, style, client_after)
            record(
                f"LinkProxy: RTT 300 ms, 0.6 s stalls every 4 s, timeout 1 s, "
                f"{HEALTHY_SECONDS:.0f} s, then a blackhole ({style.value})",
                adapter,
                "no false verdict; after the cut close 1011 heartbeat-timeout, both sides",
                f"{len(rtts)} heartbeats answered, RTT {min(rtts) * 1000:.0f}-"
                f"{max(rtts) * 1000:.0f} ms; cut found by the server in "
                f"{server_after * 1000:.0f} ms, the client in {client_after * 1000:.0f} ms "
                f"(bound {bound * 1000:.0f} ms)",
            )
    finally:
        for *_, server_cm, _, proxy, peer in reversed(setups):
            peer.stop()
            proxy.close()
            server_cm.__exit__(None, None, None)
