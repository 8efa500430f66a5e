"""The cast of ``heartbeat demo``: its settings, its clients and its closing summary."""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass, field

from heartbeat_asyncio import Connection

from heartbeat_cli.ping import PingStats
from heartbeat_core import BackoffPolicy, HeartbeatStyle

__all__ = [
    "BACKOFF",
    "CLIENT_INTERVAL",
    "COLORS",
    "DOWN_FOR",
    "SERVER_INTERVAL",
    "SERVER_TIMEOUT",
    "DemoClient",
    "DemoFailed",
    "child_env",
    "summary",
]

SERVER_INTERVAL = 0.5
SERVER_TIMEOUT = 1.0
CLIENT_INTERVAL = 1.0
DOWN_FOR = 1.5
BACKOFF = BackoffPolicy(
    initial=0.25, multiplier=2.0, maximum=2.0, reset_after=60.0, full_jitter=False
)


COLORS = {"server": "green", "alice": "cyan", "bob": "magenta", "carol": "yellow"}


class DemoFailed(Exception):
    """A step of the demo did not happen in time."""


@dataclass
class DemoClient:
    name: str
    style: HeartbeatStyle
    connected: asyncio.Event = field(default_factory=asyncio.Event)
    conn: Connection | None = None
    task: asyncio.Task[None] | None = None
    stopping: bool = False
    down_since: float | None = None
    retries: list[float] = field(default_factory=list)
    back_after: float | None = None
    rtts: list[float] = field(default_factory=list)

    @property
    def label(self) -> str:
        return "ping frames" if self.style is HeartbeatStyle.PROTOCOL else '{"type":"ping"}'


def child_env() -> dict[str, str]:
    """The environment for the child ``heartbeat ping``: ours, without colour."""
    env = dict(os.environ)
    env["NO_COLOR"] = "1"
    return env


def summary(
    carol_rtts: list[float],
    clients: list[DemoClient],
    server_rtts: int,
    detect: float,
    limit: float,
) -> list[str]:
    """The closing lines of the demo."""
    lines = []
    stats = PingStats(rtts=carol_rtts + [r for c in clients for r in c.rtts])
    if stats.rtts:
        assert stats.min is not None and stats.avg is not None and stats.max is not None
        lines.append(
            f"live RTT: {stats.received} answered heartbeats from 3 clients (ping frames and "
            f'{{"type":"ping"}} messages), min/avg/max {stats.min * 1000:.2f}/'
            f"{stats.avg * 1000:.2f}/{stats.max * 1000:.2f} ms; the server's own "
            f"heartbeats answered: {server_rtts}"
        )
    lines.append(
        f"half-open: carol froze; the server declared it dead after {detect:.2f} s "
        f"(interval {SERVER_INTERVAL:g} s + timeout {SERVER_TIMEOUT:g} s = "
        f"{limit:g} s) and released its socket"
    )
    back = ", ".join(
        f"{c.name} back after {c.back_after:.2f} s ({len(c.retries)} waits)"
        for c in clients
        if c.back_after is not None
    )
    lines.append(f"restart: server down {DOWN_FOR:g} s; {back}")
    lines.append(
        "try it: heartbeat serve   and, in another terminal,   heartbeat ping ws://127.0.0.1:8765/"
    )
    return lines
