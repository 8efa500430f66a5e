"""The core never reads a clock or a random source, and imports no I/O module.

Every clock function (and ``random``) is patched to raise, then a whole life runs
through ``HeartbeatState`` and through a client/server ``HeartbeatConnection``
pair: handshake, messages, heartbeats, pongs, a dead peer, a close; and the
drivers' helpers (receive queue, timer wheel, URI parser) run too.

No core module imports a clock, thread, event loop, selector, ``socket`` or
``random``, with exactly two exceptions (``ALLOWED_IMPORTS``):

* ``random`` in ``heartbeat_core.randomness``, the one module that makes a
  random source (:func:`~heartbeat_core.randomness.default_random`), for
  drivers to pass in;
* ``socket`` inside ``heartbeat_core.tcp.apply_keepalive`` only, for the names
  of its option constants (it calls ``setsockopt`` on the driver's socket and
  does no I/O); not at module level, so importing the core never imports it.
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
    Backoff,
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
    ReceiveQueue,
    RttSample,
    SendPing,
    TimerFired,
    TimerItem,
    TimerWheel,
    default_random,
    parse_uri,
)

from .helpers import Pair, opened

FORBIDDEN_MODULES = {"socket", "threading", "asyncio", "time", "random", "select", "selectors"}
#: The only imports of forbidden modules: (core module, module imported, enclosing
#: function's qualified name, or None at module level).
ALLOWED_IMPORTS = {
    ("heartbeat_core.randomness", "random", None),
    ("heartbeat_core.tcp", "socket", "apply_keepalive"),
}
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
    # Subpackages too (heartbeat_core.testing and its modules).
    return [
        info.name
        for info in pkgutil.walk_packages(heartbeat_core.__path__, prefix="heartbeat_core.")
    ] + ["heartbeat_core"]


def _imports(tree: ast.AST) -> set[tuple[str, str | None]]:
    """``(top-level module, enclosing scope)`` of every absolute import in ``tree``; the
    scope is the qualified name of the enclosing function or class, None at module level."""
    found: set[tuple[str, str | None]] = set()

    def visit(node: ast.AST, scope: str | None) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                visit(child, child.name if scope is None else f"{scope}.{child.name}")
                continue
            if isinstance(child, ast.Import):
                found.update((alias.name.split(".")[0], scope) for alias in child.names)
            elif isinstance(child, ast.ImportFrom) and child.module and child.level == 0:
                found.add((child.module.split(".")[0], scope))
            visit(child, scope)

    visit(tree, None)
    return found


@pytest.mark.parametrize("module", _core_modules())
def test_no_io_or_clock_imports(module: str) -> None:
    mod = importlib.import_module(module)
    path = Path(mod.__file__ or "")
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for name, scope in _imports(tree):
        if name in FORBIDDEN_MODULES:
            assert (module, name, scope) in ALLOWED_IMPORTS, (module, name, scope)
    # Nothing reachable as a module attribute either (e.g. ``import time as _t``).
    for value in vars(mod).values():
        attribute = getattr(value, "__name__", None)
        if type(value) is type(sys) and attribute in FORBIDDEN_MODULES:
            assert (module, attribute, None) in ALLOWED_IMPORTS, (module, attribute)


@pytest.mark.parametrize(("module", "name", "scope"), sorted(ALLOWED_IMPORTS, key=str))
def test_each_allowed_import_is_where_it_is_allowed(
    module: str, name: str, scope: str | None
) -> None:
    """The exceptions are exact: each import exists, in that scope and no other."""
    path = Path(importlib.import_module(module).__file__ or "")
    scopes = {s for n, s in _imports(ast.parse(path.read_text(encoding="utf-8"))) if n == name}
    assert scopes == {scope}


def test_imports_are_found_in_every_scope() -> None:
    tree = ast.parse(
        "import a.b\n"
        "from c import d\n"
        "from . import e\n"
        "def f():\n    import g\n    if x:\n        from h.i import j\n"
        "class K:\n    def m(self):\n        import n\n"
    )
    assert _imports(tree) == {("a", None), ("c", None), ("g", "f"), ("h", "f"), ("n", "K.m")}


def test_tcp_names_socket_options_as_strings() -> None:
    import heartbeat_core.tcp as tcp

    source = Path(tcp.__file__).read_text(encoding="utf-8")
    assert '"TCP_KEEPIDLE"' in source
    assert "socket" not in vars(tcp)  # imported inside apply_keepalive only


@pytest.mark.usefixtures("no_clock")
def test_driver_helpers_without_a_clock() -> None:
    queue = ReceiveQueue(max_queue=2)
    queue.push("a")
    assert queue.push(b"b")
    assert queue.pop() == ("a", True)
    wheel: TimerWheel[TimerItem] = TimerWheel()
    conn = TimerItem()
    assert wheel.file(conn, 1.0)
    assert wheel.timeout(0.5) == pytest.approx(0.501)
    assert wheel.pop_due(2.0) == [conn]
    assert parse_uri("wss://[::1]:8443/chat").host_header == "[::1]:8443"
    delays = Backoff(random=default_random(3))  # the driver's seeded source, not the module's
    assert 0 <= delays.next_delay(0.0) < 0.5
