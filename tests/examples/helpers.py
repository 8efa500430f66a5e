"""Helpers for the embedding examples' tests: short timings, a pre-bound socket, and the
check that a frozen peer (``tests.support.peers.FrozenPeer``) was found dead and closed.
"""

from __future__ import annotations

import socket

from tests.support.frames import Frame
from tests.support.peers import FrozenPeer

# Short timings for tests: a heartbeat every 0.1 s, a dead peer found 0.25 s later.
INTERVAL = 0.1
TIMEOUT = 0.25
CLOSE_TIMEOUT = 0.5
# Generous bounds for waits, so a loaded machine cannot make the tests flaky.
WAIT = 10.0


def free_socket(port: int = 0) -> socket.socket:
    """A listening-ready TCP socket bound to loopback ``port`` (0: a free one)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    return sock


def assert_dead_peer_closed(peer: FrozenPeer, *, dropped: bool = True) -> list[Frame]:
    """The frozen peer was pinged, then sent close 1011 ``heartbeat-timeout``, then (unless
    ``dropped`` is false) its socket was released."""
    frames, eof = peer.drain(until_eof=dropped)
    opcodes = [f.opcode for f in frames]
    closes = [f for f in frames if f.opcode == 0x8]
    assert closes, f"no close frame in {opcodes}"
    assert closes[0].close_code == 1011, closes[0]
    assert closes[0].close_reason == b"heartbeat-timeout", closes[0]
    assert eof or not dropped, "the server kept the dead peer's socket open"
    return frames
