"""pytest fixtures for real-socket tests of WebSocket code (a pytest plugin).

Load it in the ``conftest.py`` at the root of your tests with
``pytest_plugins = ["heartbeat_threading.testing.plugin"]`` (it is not loaded by
itself: a project that installs heartbeat-core gets no fixtures it did not ask
for). Each fixture is a factory, so a test can make several, and everything made is
closed when the test ends:

* ``heartbeat_link_proxy(target_port, **options)`` -> :class:`LinkProxy`
* ``heartbeat_frozen_peer(port, path="/")`` -> :class:`FrozenPeer` (on 127.0.0.1)
* ``heartbeat_frozen_server(**options)`` -> :class:`FrozenServer` (a server that
  stops answering)
* ``heartbeat_slow_reader(port, path="/", **options)`` -> :class:`SlowReader`
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any, Protocol

import pytest

from heartbeat_threading.testing.peers import FrozenPeer, FrozenServer, SlowReader
from heartbeat_threading.testing.proxy import LinkProxy

__all__ = [
    "heartbeat_frozen_peer",
    "heartbeat_frozen_server",
    "heartbeat_link_proxy",
    "heartbeat_slow_reader",
]


class _Closeable(Protocol):
    def close(self) -> None: ...


@contextlib.contextmanager
def _closing_all() -> Iterator[list[_Closeable]]:
    made: list[_Closeable] = []
    try:
        yield made
    finally:
        for thing in reversed(made):
            with contextlib.suppress(Exception):
                thing.close()


@pytest.fixture
def heartbeat_link_proxy() -> Iterator[Callable[..., LinkProxy]]:
    """Make a :class:`LinkProxy` to a port on 127.0.0.1: ``make(port, up=..., down=...,
    idle_limit=..., seed=...)``."""
    with _closing_all() as made:

        def make(target_port: int, **options: Any) -> LinkProxy:
            proxy = LinkProxy(target_port, **options)
            made.append(proxy)
            return proxy

        yield make


@pytest.fixture
def heartbeat_frozen_peer() -> Iterator[Callable[..., FrozenPeer]]:
    """Make a :class:`FrozenPeer`: ``make(port, path="/")`` opens a WebSocket to
    127.0.0.1:port and then never reads or answers."""
    with _closing_all() as made:

        def make(port: int, path: str = "/", *, timeout: float = 10.0) -> FrozenPeer:
            peer = FrozenPeer("127.0.0.1", port, path, timeout=timeout)
            made.append(peer)
            return peer

        yield make


@pytest.fixture
def heartbeat_frozen_server() -> Iterator[Callable[..., FrozenServer]]:
    """Make a :class:`FrozenServer` (a free port unless ``port=`` is given): it answers
    the upgrade, then never answers again."""
    with _closing_all() as made:

        def make(**options: Any) -> FrozenServer:
            server = FrozenServer(**options)
            made.append(server)
            return server

        yield make


@pytest.fixture
def heartbeat_slow_reader() -> Iterator[Callable[..., SlowReader]]:
    """Make a :class:`SlowReader`: ``make(port, path="/", rate=1024.0)``."""
    with _closing_all() as made:

        def make(port: int, path: str = "/", **options: Any) -> SlowReader:
            reader = SlowReader("127.0.0.1", port, path, **options)
            made.append(reader)
            return reader

        yield make
