"""Raw-socket WebSocket peers on loopback, for the suite: the public ones of
:mod:`heartbeat_threading.testing` (what users get as pytest fixtures), under the names
the tests have always used.

* ``open_websocket``: a client socket right after the upgrade, nothing past the response
  head read (frozen until the test uses it).
* ``FrozenPeer``: such a client as an object, with ``drain`` to see what it was sent.
* ``FrozenServer``: a server in a thread that answers upgrades, then freezes.
"""

from __future__ import annotations

from heartbeat_threading.testing import FrozenPeer, FrozenServer, open_websocket

__all__ = ["HOST", "FrozenPeer", "FrozenServer", "open_websocket"]

HOST = "127.0.0.1"
