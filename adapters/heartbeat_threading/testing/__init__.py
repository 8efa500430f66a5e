"""Real-socket tools for tests of WebSocket code: a link proxy and misbehaving peers.

* :class:`LinkProxy` (with :class:`Direction`): delay, jitter, stalls, a bandwidth
  cap, a blackhole and an idle limit between a client and a server on loopback.
* :class:`FrozenPeer`, :class:`FrozenServer`, :class:`SlowReader`: peers that
  complete the opening handshake and then stop answering (or reading) as a frozen
  process, a sleeping laptop or an overloaded client would.

They use plain sockets and threads, so they serve tests of either driver (and of
any other WebSocket code). The pytest fixtures built on them are in
:mod:`heartbeat_threading.testing.plugin` (``pytest_plugins =
["heartbeat_threading.testing.plugin"]`` in a root ``conftest.py``).
"""

from __future__ import annotations

from heartbeat_threading.testing.peers import (
    Frame,
    FrozenPeer,
    FrozenServer,
    SlowReader,
    open_websocket,
)
from heartbeat_threading.testing.proxy import Direction, LinkProxy

__all__ = [
    "Direction",
    "Frame",
    "FrozenPeer",
    "FrozenServer",
    "LinkProxy",
    "SlowReader",
    "open_websocket",
]
