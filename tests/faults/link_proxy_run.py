"""The LinkProxy case of the fault suite, as a process of its own (test_link_proxy.py).

    python link_proxy_run.py SECONDS

Four adapter/style pairs side by side (a server of the adapter, a client of the same
adapter through its own LinkProxy, heartbeats 1 s / timeout 1 s on both sides, in one
style). For SECONDS: a 300 ms round trip whose link stalls for 0.6 s every 4 s, both
directions at once. Then every link becomes a blackhole at once. Prints one JSON line
per pair: the verdicts given while healthy (none expected), the RTT samples, and how
long after the cut the server and the client declared their peer dead.

A process of its own, so that the fault suite's other cases run meanwhile (the
conftest starts it when the test is collected, and runs the test last) without
sharing its interpreter: its heartbeats never wait for another test's threads.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

# Run as a script: the checkout (and its adapters) on the path.
_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path[:0] = [_ROOT, os.path.join(_ROOT, "adapters")]

from heartbeat_threading.testing import Direction, LinkProxy  # noqa: E402

from heartbeat_core import HeartbeatConfig, HeartbeatStyle, PeerDead, RttSample  # noqa: E402
from tests.faults.harness import running_server  # noqa: E402

PAIRS = [(a, s) for a in ("asyncio", "threading") for s in HeartbeatStyle]
INTERVAL = TIMEOUT = 1.0
STALLING = Direction(delay=0.15, stall_every=4.0, stall=0.6)


class Peer:
    """One client of ``adapter`` in a thread of its own, recording its events."""

    def __init__(self, adapter: str, url: str, config: HeartbeatConfig, hold: float) -> None:
        self.events: list[tuple[float, object]] = []
        self.ready = threading.Event()
        self.error: str | None = None
        self._stop = threading.Event()
        self._url, self._config, self._hold = url, config, hold
        target: Callable[[], None] = self._asyncio if adapter == "asyncio" else self._threading
        self._thread = threading.Thread(target=target, name=f"peer-{adapter}", daemon=True)
        self._thread.start()

    def on_event(self, conn: object, event: object) -> None:
        self.events.append((time.monotonic(), event))

    def _threading(self) -> None:
        from heartbeat_threading import connect

        try:
            with connect(self._url, config=self._config, on_event=self.on_event):
                self.ready.set()
                self._stop.wait(self._hold)
        except Exception as exc:
            self.error = repr(exc)
            self.ready.set()

    def _asyncio(self) -> None:
        from heartbeat_asyncio import connect

        async def main() -> None:
            async with connect(self._url, config=self._config, on_event=self.on_event):
                self.ready.set()
                end = time.monotonic() + self._hold
                while not self._stop.is_set() and time.monotonic() < end:
                    await asyncio.sleep(0.05)

        try:
            asyncio.run(main())
        except Exception as exc:
            self.error = repr(exc)
            self.ready.set()

    def dead(self) -> list[float]:
        return [t for t, e in list(self.events) if isinstance(e, PeerDead)]

    def rtts(self) -> list[float]:
        return [e.rtt for _, e in list(self.events) if isinstance(e, RttSample)]

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)


def run(seconds: float) -> list[dict[str, Any]]:
    setups: list[tuple[str, HeartbeatStyle, Any, Any, LinkProxy, Peer]] = []
    results: list[dict[str, Any]] = []
    try:
        for adapter, style in PAIRS:
            config = HeartbeatConfig(interval=INTERVAL, timeout=TIMEOUT, style=style)
            server_cm = running_server(adapter, config)
            server = server_cm.__enter__()
            proxy = LinkProxy(server.port, up=STALLING, down=STALLING)
            peer = Peer(adapter, proxy.url(), config, seconds + 30)
            setups.append((adapter, style, server_cm, server, proxy, peer))
        for *_, peer in setups:
            peer.ready.wait(15)
        time.sleep(seconds)
        healthy = []
        for _, _, _, server, proxy, peer in setups:
            server_rtts = [e.rtt for _, _, e in list(server.events) if isinstance(e, RttSample)]
            healthy.append(
                {
                    "server_verdicts": len(server.peer_dead()),
                    "client_verdicts": len(peer.dead()),
                    "connections": proxy.connections,
                    "rtts": server_rtts + peer.rtts(),
                }
            )
        cuts = [proxy.blackhole() for *_, proxy, _ in setups]
        end = time.monotonic() + 10
        while time.monotonic() < end and not all(
            server.peer_dead() and peer.dead() for *_, server, _, peer in setups
        ):
            time.sleep(0.01)
        for (adapter, style, _, server, _, peer), cut, seen in zip(
            setups, cuts, healthy, strict=True
        ):
            server_dead, client_dead = server.peer_dead(), peer.dead()
            results.append(
                {
                    "adapter": adapter,
                    "style": style.value,
                    "error": peer.error,
                    **seen,
                    "server_after_cut": server_dead[0][0] - cut if server_dead else None,
                    "client_after_cut": client_dead[0] - cut if client_dead else None,
                }
            )
    finally:
        for *_, server_cm, _, proxy, peer in reversed(setups):
            peer.stop()
            proxy.close()
            server_cm.__exit__(None, None, None)
    return results


if __name__ == "__main__":
    for row in run(float(sys.argv[1])):
        sys.stdout.write(json.dumps(row) + "\n")
    sys.stdout.flush()
