"""Shared helpers for the core's tests: a synthetic clock and an in-memory client/server pair.

Nothing here reads a real clock: every ``now`` is a plain float the test controls.
"""

from __future__ import annotations

import random as _random
from collections.abc import Callable, Iterable
from typing import Any

from heartbeat_core import (
    Accepted,
    ConnectionEvent,
    HeartbeatConfig,
    HeartbeatConnection,
    HeartbeatPhase,
    HeartbeatState,
    Request,
    Role,
)
from heartbeat_core.events import ConnectionOpened, ReadingPaused, ReadingResumed

__all__ = ["Pair", "drive_twins", "opened", "seen", "snapshot"]


def opened(
    config: HeartbeatConfig | None = None,
    *,
    now: float = 0.0,
    random: Callable[[], float] | None = None,
) -> HeartbeatState:
    """A ``HeartbeatState`` that received ``ConnectionOpened`` at ``now``."""
    hb = HeartbeatState(config, random=random)
    assert hb.handle(ConnectionOpened(now=now)) == ()
    assert hb.phase is HeartbeatPhase.IDLE
    return hb


def snapshot(hb: HeartbeatState) -> tuple[object, ...]:
    """Every public view of a state, to compare before and after a call."""
    return (hb.phase, hb.deadline, hb.stats, hb.seq, hb.last_now, hb.effective_timeout, hb.is_open)


def seen(hb: HeartbeatState) -> tuple[Any, ...]:
    """What a driver and the tests can observe of a state."""
    return (
        hb.phase,
        hb.seq,
        hb.deadline,
        hb.wake_at,
        hb.last_now,
        hb.reading_paused,
        hb.stats,
        hb.payload_for(hb.seq),
    )


def drive_twins(
    config: HeartbeatConfig,
    plan: list[tuple[str, float]],
    seed: int,
    timer: Callable[[HeartbeatState, HeartbeatState, float], None],
) -> None:
    """Two states, ``plain`` and ``quick``, fed the same ``plan`` of (kind, fraction)
    steps: ``timer(plain, quick, now)`` delivers each timer (kind ``timer`` at wake_at,
    ``late-timer`` after it, ``early-timer`` between the last event and the deadline) the
    ways it compares; signs of life (``bytes``, ``pong``), ``pause`` and ``resume`` go to
    both alike. After every step the twins must look alike."""
    plain = HeartbeatState(config, random=_random.Random(seed).random)
    quick = HeartbeatState(config, random=_random.Random(seed).random)
    for hb in (plain, quick):
        hb.handle(ConnectionOpened(now=0.0))
    now = 0.0
    for kind, fraction in plan:
        wake = plain.wake_at
        if wake is None:
            if kind == "resume":
                for hb in (plain, quick):
                    hb.handle(ReadingResumed(now=now))
            continue
        if kind.endswith("timer"):
            if kind == "early-timer":
                now = max(now, now + fraction * ((plain.deadline or wake) - now))
            else:
                now = max(now, wake) + (fraction if kind == "late-timer" else 0.0)
            timer(plain, quick, now)
        elif kind in ("bytes", "pong") and plain.is_open:
            now = max(now, now + fraction * (wake - now))  # a sign of life before the wake
            for hb in (plain, quick):
                if kind == "bytes":
                    hb.bytes_received(now)
                else:
                    hb.pong_received(now, hb.payload_for(hb.seq))
        elif kind == "pause" and plain.is_open:
            for hb in (plain, quick):
                hb.handle(ReadingPaused(now=now))
        elif kind == "resume":
            for hb in (plain, quick):
                hb.handle(ReadingResumed(now=now))
        assert seen(quick) == seen(plain)
        if not plain.is_open:
            break


class Pair:
    """A client and a server ``HeartbeatConnection`` wired together in memory.

    Bytes move only when the test says so (``to_server``/``to_client``/``pump``),
    and every call uses ``self.now``, which only the test advances.
    """

    def __init__(
        self,
        client_config: HeartbeatConfig | None = None,
        server_config: HeartbeatConfig | None = None,
        *,
        now: float = 0.0,
        **kwargs: object,
    ) -> None:
        self.now = now
        self.client = HeartbeatConnection(Role.CLIENT, client_config, **kwargs)  # type: ignore[arg-type]
        self.server = HeartbeatConnection(Role.SERVER, server_config, **kwargs)  # type: ignore[arg-type]

    def to_server(self) -> list[ConnectionEvent]:
        """Deliver what the client queued to the server; the server's events."""
        data = self.client.data_to_send()
        return self.server.receive_data(data, self.now) if data else []

    def to_client(self) -> list[ConnectionEvent]:
        """Deliver what the server queued to the client; the client's events."""
        data = self.server.data_to_send()
        return self.client.receive_data(data, self.now) if data else []

    def pump(self) -> tuple[list[ConnectionEvent], list[ConnectionEvent]]:
        """Move bytes both ways until both sides are quiet: (client events, server events)."""
        client_events: list[ConnectionEvent] = []
        server_events: list[ConnectionEvent] = []
        for _ in range(50):
            to_server = self.client.data_to_send()
            to_client = self.server.data_to_send()
            if not to_server and not to_client:
                return client_events, server_events
            if to_server:
                server_events += self.server.receive_data(to_server, self.now)
            if to_client:
                client_events += self.client.receive_data(to_client, self.now)
        raise AssertionError("the pair never went quiet")

    def handshake(
        self,
        *,
        subprotocols: Iterable[str] = (),
        accept_subprotocol: str | None = None,
    ) -> tuple[list[ConnectionEvent], list[ConnectionEvent]]:
        """Open the connection; (client events, server events) of the handshake."""
        self.client.initiate("example.test", "/chat", subprotocols=subprotocols)
        server_events = self.to_server()
        assert any(isinstance(e, Request) for e in server_events), server_events
        server_events += self.server.accept(now=self.now, subprotocol=accept_subprotocol)
        client_events = self.to_client()
        assert any(isinstance(e, Accepted) for e in client_events), client_events
        assert self.client.is_open and self.server.is_open
        return client_events, server_events
