"""The core never reads a clock or a random source, and imports no I/O module.

Every clock function (and ``random``) is patched to raise, then a whole life runs
through ``HeartbeatState`` and through a client/server ``HeartbeatConnection``
pair: handshake, messages, heartbeats, pongs, a dead peer, a close.
"""

from __future__ import annotations

import ast
import importlib
import pkgutil
import random
import sys
import time
from pathlib import Path

import pytest

import heartbeat_core
from heartbeat_core import (
    Abort,
    BytesReceived,
    Closed,
    CloseReceived,
    CloseRequested,
    ConnectionClosed,
    HeartbeatConfig,
    HeartbeatPhase,
    Message,
    PeerDead,
    PongReceived,
    RttSample,
    SendPing,
    TimerFired,
)

from .helpers import Pair, opened

FORBIDDEN_MODULES = {"socket", "threading", "asyncio", "time", "random", "select", "selectors"}
CLOCKS = [
    "time",
    "monotonic",
    "perf_counter",
    "monotonic_ns",
    "time_ns",
    "perf_counter_ns",
    "process_time",
    "sleep",
]


@pytest.fixture
def no_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*args: object, **kwargs: object) -> float:
        raise AssertionError("the core read a clock or a random source")

    for name in CLOCKS:
        monkeypatch.setattr(time, name, boom)
    for name in ("random", "uniform", "randint", "getrandbits", "randbytes"):
        monkeypatch.setattr(random, name, boom)


@pytest.mark.usefixtures("no_clock")
def test_state_full_life_without_a_clock() -> None:
    cfg = HeartbeatConfig(
        interval=1, timeout=1, close_timeout=1, jitter=0.2, adaptive_timeout=True, min_timeout=0.5
    )
    draws = iter([0.5] * 100)
    hb = opened(cfg, random=lambda: next(draws))
    now = 0.0
    for _ in range(5):
        now = hb.deadline or now
        (ping,) = hb.handle(TimerFired(now=now))
        assert isinstance(ping, SendPing)
        now += 0.1
        (sample,) = hb.handle(PongReceived(now=now, payload=ping.payload))
        assert isinstance(sample, RttSample)
        hb.handle(BytesReceived(now=now))
    now = hb.deadline or now
    hb.handle(TimerFired(now=now))
    now = hb.deadline or now
    dead = hb.handle(TimerFired(now=now))
    assert isinstance(dead[0], PeerDead)
    assert hb.handle(TimerFired(now=hb.deadline or now)) == (Abort(),)
    hb.handle(ConnectionClosed(now=now + 5))
    # and a polite close on another one
    hb2 = opened(cfg, random=lambda: 0.5)
    hb2.handle(CloseRequested(now=1.0))
    hb2.handle(CloseReceived(now=1.5, code=1000))
    hb2.handle(ConnectionClosed(now=1.6))
    assert hb2.phase is HeartbeatPhase.CLOSED


@pytest.mark.usefixtures("no_clock")
def test_connection_full_life_without_a_clock() -> None:
    cfg = HeartbeatConfig(interval=1, timeout=1, close_timeout=1)
    p = Pair(cfg, cfg)
    p.handshake(subprotocols=["chat"], accept_subprotocol="chat")
    p.client.send("hello")
    p.server.send(b"world")
    client_events, server_events = p.pump()
    assert server_events == [Message(data="hello")]
    assert client_events == [Message(data=b"world")]
    # Heartbeats both ways, answered.
    p.now = 1.0
    p.client.timer_fired(p.now)
    p.server.timer_fired(p.now)
    p.now = 1.2
    client_events, server_events = p.pump()
    assert [e for e in client_events if isinstance(e, RttSample)] == [
        RttSample(seq=1, rtt=1.2 - 1.0)
    ]
    assert [e for e in server_events if isinstance(e, RttSample)] == [
        RttSample(seq=1, rtt=1.2 - 1.0)
    ]
    # The server freezes: the client finds it dead.
    p.now = p.client.deadline or 0.0
    p.client.timer_fired(p.now)
    p.client.data_to_send()  # lost
    p.now = p.client.deadline or 0.0
    events = p.client.timer_fired(p.now)
    assert isinstance(events[0], PeerDead)
    assert p.client.connection_lost(p.now)[0] == Closed(
        code=1011, reason="heartbeat-timeout", by="local"
    )
    # A second pair closes politely.
    q = Pair(cfg, cfg)
    q.handshake()
    q.now = 0.5
    q.server.close(q.now, 1001, "restart")
    q.pump()
    assert q.client.connection_lost(0.6) == [Closed(code=1001, reason="restart", by="remote")]
    assert q.server.connection_lost(0.6) == [Closed(code=1001, reason="restart", by="local")]


def _core_modules() -> list[str]:
    return [
        f"heartbeat_core.{info.name}" for info in pkgutil.iter_modules(heartbeat_core.__path__)
    ] + ["heartbeat_core"]


@pytest.mark.parametrize("module", _core_modules())
def test_no_io_or_clock_imports(module: str) -> None:
    mod = importlib.import_module(module)
    path = Path(mod.__file__ or "")
    tree = ast.parse(path.read_text(encoding="utf-8"))
    imported: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            imported.add(node.module.split(".")[0])
    assert not imported & FORBIDDEN_MODULES, (module, imported & FORBIDDEN_MODULES)
    # Nothing reachable as a module attribute either (e.g. ``import time as _t``).
    for value in vars(mod).values():
        name = getattr(value, "__name__", None)
        if type(value) is type(sys):
            assert name not in FORBIDDEN_MODULES, (module, name)


def test_tcp_names_socket_options_as_strings() -> None:
    source = Path(heartbeat_core.__file__).with_name("tcp.py").read_text(encoding="utf-8")
    assert "import socket" not in source
    assert '"TCP_KEEPIDLE"' in source
