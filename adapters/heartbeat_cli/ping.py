"""``heartbeat ping URL``: ``ping(8)`` for WebSocket endpoints.

:class:`PingStats` holds the round-trip statistics (the demo's summary uses it
too); :func:`run_ping` is the command, reached through :func:`heartbeat_cli.main`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import sys
import time
from dataclasses import dataclass, field

from heartbeat_asyncio import Connection, connect

from heartbeat_cli.output import (
    EXIT_FAILED,
    EXIT_OK,
    Output,
    error,
    milliseconds,
)
from heartbeat_cli.ping_checks import (
    check_url,
    describe_ping_error,
    flood_warning,
    parse_headers,
)
from heartbeat_cli.runtime import first_completed, install_stop
from heartbeat_core import (
    Accepted,
    Closed,
    Closing,
    ConnectionEvent,
    HeartbeatConfig,
    HeartbeatError,
    HeartbeatStyle,
    Liveness,
    PeerDead,
    RttSample,
)
from heartbeat_core.errors import ConnectionClosedError

__all__ = ["PingStats", "describe_ping_error", "flood_warning", "parse_headers", "run_ping"]


def error_line(text: str) -> None:
    """A line on stderr (a warning: the command goes on)."""
    with contextlib.suppress(OSError):
        sys.stderr.write(text + "\n")
        sys.stderr.flush()


# --------------------------------------------------------------------------- statistics


@dataclass
class PingStats:
    """Round-trip statistics in the manner of ``ping(8)``.

    ``rtts`` holds the answered heartbeats' round-trip times (seconds);
    ``lost`` counts heartbeats unanswered for their whole timeout; ``in_flight``
    those still within their timeout at exit: sent, but neither answered nor
    lost, so they count in :attr:`sent` and not in :attr:`loss`.
    """

    rtts: list[float] = field(default_factory=list)
    lost: int = 0
    in_flight: int = 0

    def add(self, rtt: float) -> None:
        self.rtts.append(rtt)

    @property
    def received(self) -> int:
        return len(self.rtts)

    @property
    def sent(self) -> int:
        """Every heartbeat sent: answered, lost, or in flight at exit."""
        return len(self.rtts) + self.lost + self.in_flight

    @property
    def loss(self) -> float:
        """The lost fraction of the heartbeats whose fate is known (answered or lost);
        0.0 when there is none."""
        settled = len(self.rtts) + self.lost
        return self.lost / settled if settled else 0.0

    @property
    def min(self) -> float | None:
        return min(self.rtts) if self.rtts else None

    @property
    def max(self) -> float | None:
        return max(self.rtts) if self.rtts else None

    @property
    def avg(self) -> float | None:
        return sum(self.rtts) / len(self.rtts) if self.rtts else None

    @property
    def mdev(self) -> float | None:
        """Standard deviation, as ``ping(8)`` computes it: sqrt(mean(x²) - mean(x)²)."""
        if not self.rtts:
            return None
        n = len(self.rtts)
        mean = sum(self.rtts) / n
        mean_sq = sum(r * r for r in self.rtts) / n
        return math.sqrt(max(0.0, mean_sq - mean * mean))

    def as_json(self) -> dict[str, object]:
        def ms(value: float | None) -> float | None:
            return None if value is None else milliseconds(value)

        return {
            "event": "summary",
            "sent": self.sent,
            "received": self.received,
            "loss": round(self.loss, 6),
            "min_ms": ms(self.min),
            "avg_ms": ms(self.avg),
            "max_ms": ms(self.max),
            "mdev_ms": ms(self.mdev),
            "in_flight": self.in_flight,
        }

    def text_lines(self, target: str, elapsed: float) -> list[str]:
        head = f"--- {target} heartbeat statistics ---"
        flight = f", {self.in_flight} in flight" if self.in_flight else ""
        counts = (
            f"{self.sent} sent, {self.received} received{flight}, "
            f"{self.loss * 100:.0f}% loss, time {elapsed * 1000:.0f}ms"
        )
        lines = [head, counts]
        if self.rtts:
            assert self.min is not None and self.avg is not None
            assert self.max is not None and self.mdev is not None
            lines.append(
                "rtt min/avg/max/mdev = "
                f"{self.min * 1000:.3f}/{self.avg * 1000:.3f}/{self.max * 1000:.3f}/"
                f"{self.mdev * 1000:.3f} ms"
            )
        return lines


# --------------------------------------------------------------------------- ping


@dataclass
class _PingState:
    stats: PingStats = field(default_factory=PingStats)
    dead: PeerDead | None = None
    closed: Closed | None = None
    close_started_by_peer: Closing | None = None
    close_started_by_us: Closing | None = None
    done: asyncio.Event = field(default_factory=asyncio.Event)
    ended: asyncio.Event = field(default_factory=asyncio.Event)


async def run_ping(args: argparse.Namespace, out: Output) -> int:
    """``heartbeat ping URL``: heartbeats until ``--count`` answers, SIGINT/SIGTERM, a dead
    peer or a close; then the summary."""
    problem = check_url(args.url)
    if problem is not None:
        return error(problem)
    json_mode: bool = args.json
    try:
        headers = parse_headers(args.header or ())
        config = HeartbeatConfig(
            interval=args.interval,
            timeout=args.timeout,
            close_timeout=min(2.0, args.timeout),
            ping_on_open=True,  # the first heartbeat at once, as ping(8) does
            fixed_rate=True,
            liveness=Liveness.PONG_ONLY,
            style=HeartbeatStyle.APP if args.mode == "app" else HeartbeatStyle.PROTOCOL,
            answer_app_pings=True,
        )
    except HeartbeatError as exc:
        return error(str(exc))
    except ValueError as exc:
        return error(str(exc))
    flood = flood_warning(args.interval)
    if flood is not None:
        if json_mode:
            out.json(event="warning", message=flood)
        else:
            error_line(f"warning: {flood}")

    st = _PingState()
    target = args.url
    style = "protocol ping frames" if args.mode == "protocol" else '{"type":"ping"} messages'
    header = f"PING {target}: {style} every {args.interval:g} s, timeout {args.timeout:g} s"

    def on_event(conn: Connection, event: ConnectionEvent) -> None:
        if st.done.is_set():
            return  # --count reached: what arrives while we close is not reported
        if isinstance(event, Accepted) and not json_mode:
            # Here, not once connect() returns: the first answer may come before that.
            out.line(header)
        elif isinstance(event, RttSample):
            st.stats.add(event.rtt)
            if json_mode:
                out.json(event="pong", seq=event.seq, rtt_ms=milliseconds(event.rtt))
            else:
                out.line(f"pong from {target}: seq={event.seq} rtt={event.rtt * 1000:.3f} ms")
            if args.count is not None and st.stats.received >= args.count:
                st.done.set()
        elif isinstance(event, PeerDead):
            st.dead = event
            st.stats.lost += 1
            if json_mode:
                out.json(event="dead", seq=event.seq, waited_ms=milliseconds(event.waited))
            else:
                out.line(
                    f"no answer to heartbeat seq={event.seq} after "
                    f"{event.waited * 1000:.0f} ms: peer declared dead"
                )
            st.ended.set()
        elif isinstance(event, Closing):
            if event.by_peer:
                st.close_started_by_peer = event
            else:
                st.close_started_by_us = event
        elif isinstance(event, Closed):
            st.closed = event
            st.ended.set()

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    got: list[str] = []
    install_stop(loop, stop, got)
    started = time.monotonic()
    connecting = asyncio.ensure_future(
        connect(
            args.url,
            config=config,
            on_event=on_event,
            extra_headers=headers,
            subprotocols=tuple(args.subprotocol or ()),
        )
    )
    await first_completed(asyncio.shield(connecting), stop.wait())
    if not connecting.done():
        connecting.cancel()
        with contextlib.suppress(BaseException):
            await connecting
        return _ping_summary(
            st, out=out, json_mode=json_mode, target=target, started=started, status=EXIT_OK
        )
    try:
        conn = connecting.result()
    except (OSError, HeartbeatError, ValueError, asyncio.TimeoutError) as exc:
        return error(f"cannot connect to {target}: {describe_ping_error(args.url, exc)}")

    async def drain() -> None:
        # Messages are not what we measure; read them so nothing piles up.
        with contextlib.suppress(ConnectionClosedError):
            async for _ in conn:
                pass
        st.ended.set()

    drainer = asyncio.ensure_future(drain())
    await first_completed(st.done.wait(), stop.wait(), st.ended.wait())
    bound = config.close_timeout + 1.0
    if st.dead is None and st.closed is None and not st.ended.is_set():
        with contextlib.suppress(ConnectionClosedError, asyncio.TimeoutError, OSError):
            await asyncio.wait_for(conn.close(1000), bound)
    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(conn.wait_closed(), bound)
    with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError):
        await asyncio.wait_for(drainer, 1.0)

    st.stats.in_flight = max(0, conn.stats.pings_sent - st.stats.received - st.stats.lost)
    if st.done.is_set():  # --count answered heartbeats: success, whatever came after
        return _ping_summary(
            st, out=out, json_mode=json_mode, target=target, started=started, status=EXIT_OK
        )
    if st.dead is not None:
        return _ping_summary(
            st, out=out, json_mode=json_mode, target=target, started=started, status=EXIT_FAILED
        )
    failed = _protocol_failure(st)
    if failed is not None:  # our side failed the connection: the server broke the protocol
        reason = failed.reason
        if json_mode:
            out.json(event="failed", code=failed.code, reason=reason)
        else:
            why = f" ({reason})" if reason else ""
            out.line(
                f"the server broke the WebSocket protocol: connection failed with code "
                f"{failed.code}{why}"
            )
        return _ping_summary(
            st, out=out, json_mode=json_mode, target=target, started=started, status=EXIT_FAILED
        )
    if conn.closed_by == "remote" or st.close_started_by_peer is not None:
        code = conn.close_code if conn.close_code is not None else 1006
        reason = conn.close_reason or ""
        if json_mode:
            out.json(event="closed", code=code, reason=reason)
        else:
            why = f" ({reason})" if reason else ""
            out.line(f"the server closed the connection: code {code}{why}")
        return _ping_summary(
            st, out=out, json_mode=json_mode, target=target, started=started, status=EXIT_FAILED
        )
    return _ping_summary(
        st, out=out, json_mode=json_mode, target=target, started=started, status=EXIT_OK
    )


#: Close codes of our own side that say the server broke the protocol (1002 protocol
#: error, 1007 bad data such as invalid UTF-8, 1008 policy such as a ping flood, 1009 a
#: message over the size limit). 1000 is our own clean close; 1011 a dead peer.
_PROTOCOL_FAILURES = frozenset({1002, 1003, 1007, 1008, 1009, 1010})


def _protocol_failure(st: _PingState) -> Closing | None:
    """Our side's close, when it was a protocol failure and came first (not the
    server's close, and not ours after --count or a signal)."""
    ours = st.close_started_by_us
    if ours is None or st.close_started_by_peer is not None or st.dead is not None:
        return None
    return ours if ours.code in _PROTOCOL_FAILURES else None


def _ping_summary(
    st: _PingState, *, out: Output, json_mode: bool, target: str, started: float, status: int
) -> int:
    if json_mode:
        out.json(**st.stats.as_json())
    else:
        out.line()
        for line in st.stats.text_lines(target, time.monotonic() - started):
            out.line(line)
    return status
