"""examples/trio_wsproto.py, in a thread, against websockets' sync client and a frozen peer."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TypeVar

import pytest
import trio
from websockets.sync.client import connect

from examples import trio_wsproto
from heartbeat_core import HeartbeatConfig, PeerDead, RttSample
from tests.support.peers import FrozenPeer

from .helpers import CLOSE_TIMEOUT, INTERVAL, TIMEOUT, WAIT
from .helpers import assert_dead_peer_closed as assert_dead

pytestmark = pytest.mark.interop
A = TypeVar("A", RttSample, PeerDead)
CONFIG = HeartbeatConfig(interval=INTERVAL, timeout=TIMEOUT, close_timeout=CLOSE_TIMEOUT)


@contextmanager
def _server() -> Iterator[tuple[int, queue.Queue[object]]]:
    """The trio server in its own thread; yields its port and the actions it reports."""
    actions: queue.Queue[object] = queue.Queue()
    ready: queue.Queue[tuple[trio.lowlevel.TrioToken, trio.CancelScope, int]] = queue.Queue()

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            listeners = await nursery.start(
                trio_wsproto.serve, 0, CONFIG, lambda _, event: actions.put(event)
            )
            port = listeners[0].socket.getsockname()[1]
            ready.put((trio.lowlevel.current_trio_token(), nursery.cancel_scope, port))

    thread = threading.Thread(target=trio.run, args=(main,), daemon=True)
    thread.start()
    token, scope, port = ready.get(timeout=WAIT)
    try:
        yield port, actions
    finally:
        trio.from_thread.run_sync(scope.cancel, trio_token=token)
        thread.join(WAIT)
        assert not thread.is_alive()


def _next(actions: queue.Queue[object], kind: type[A]) -> A:
    end = time.monotonic() + WAIT
    while True:
        action = actions.get(timeout=max(0.0, end - time.monotonic()))
        if isinstance(action, kind):
            return action


def test_round_trip_with_websockets_sync_client() -> None:
    with _server() as (port, actions):
        with connect(f"ws://127.0.0.1:{port}/", ping_interval=None) as ws:
            ws.send("hello")
            assert ws.recv(timeout=WAIT) == "hello"
            # The client's background thread answers our pings by itself.
            samples = [_next(actions, RttSample) for _ in range(3)]
            assert [s.seq for s in samples] == [1, 2, 3]
            ws.send("still here")
            assert ws.recv(timeout=WAIT) == "still here"
        assert ws.protocol.close_code == 1000


def test_frozen_peer_is_closed_1011() -> None:
    with _server() as (port, actions):
        peer = FrozenPeer("127.0.0.1", port)
        try:
            started = time.monotonic()
            dead = _next(actions, PeerDead)
            elapsed = time.monotonic() - started
            assert dead.seq == 1
            assert INTERVAL + TIMEOUT - 0.05 <= elapsed < INTERVAL + TIMEOUT + 5.0
            frames = assert_dead(peer)
            assert frames[0].opcode == 0x9
        finally:
            peer.close()
