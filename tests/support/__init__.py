"""Helpers shared by several test folders.

* ``tests.support.waiting``: ``wait_until`` and ``async_wait_until`` (bounded polling, an
  ``AssertionError`` on timeout), and ``poll`` for the waits whose timeout is the
  expected outcome.
* ``tests.support.frames``: hand-made WebSocket bytes (frames, close payloads, upgrade
  requests and responses) and an independent frame parser.
* ``tests.support.peers``: raw-socket peers: a client socket right after the upgrade
  (``open_websocket``), a frozen client (``FrozenPeer``) and a frozen server
  (``FrozenServer``).
* ``tests.support.versions``: what needs a newer Python than 3.10 (websockets 17), and why.
"""
