"""Micro-benchmark of the sans-IO core (``make bench-core``; not part of the tests).

Prints the cost of one ``HeartbeatState.handle()`` call for the hot events
(bytes received, pong received, timer fired -> ping) and of a full server-side
ping/pong cycle (build the ping bytes, parse the client's masked pong) through
``HeartbeatConnection``, side by side with the same cycle through wsproto alone
and through websockets' sans-IO ``ServerProtocol``; then a server's opening
handshake (a new connection object, the upgrade request in, the 101 out)
through ``HeartbeatConnection``, through it with h11 and wsproto (no fast path),
through the floor server's protocol and through websockets, all measured in the
same run. Each figure is the median of several repeats of a timed batch; events are
built before the clock starts, so the figures are the cost of the calls. The
clock is this process's CPU time, so time spent preempted by other processes
on a shared machine does not count.

    python benchmarks/bench_core.py [--repeats 7] [--batch 20000] [--json FILE]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import wsproto
import wsproto.events as ws
from websockets.frames import Frame, Opcode
from websockets.server import ServerProtocol

import heartbeat_core
from heartbeat_core import (
    BytesReceived,
    ConnectionOpened,
    HeartbeatConfig,
    HeartbeatConnection,
    HeartbeatState,
    PongReceived,
    Role,
    TimerFired,
)

__all__ = ["HANDSHAKE", "main", "masked_frame", "median_ns", "run"]

_KEY = b"\x12\x34\x56\x78"
HANDSHAKE = (
    b"GET / HTTP/1.1\r\n"
    b"Host: 127.0.0.1\r\n"
    b"Upgrade: websocket\r\n"
    b"Connection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    b"Sec-WebSocket-Version: 13\r\n\r\n"
)


def masked_frame(opcode: int, payload: bytes, key: bytes = _KEY) -> bytes:
    """A client-to-server frame (FIN set, masked), payload at most 125 bytes."""
    n = len(payload)
    if n > 125:
        raise ValueError("control-sized payloads only (<= 125 bytes)")
    rep = (key * (n // 4 + 1))[:n]
    masked = (int.from_bytes(payload, "big") ^ int.from_bytes(rep, "big")).to_bytes(n, "big")
    return bytes((0x80 | opcode, 0x80 | n)) + key + masked


# CPU time of this process, not wall time: on a shared machine, time spent preempted by
# other processes would otherwise count as ours.
_clock = time.process_time_ns


def median_ns(batch_ns: Callable[[], float], repeats: int) -> tuple[float, list[float]]:
    """Call ``batch_ns`` (it builds its inputs untimed and returns ns per operation)
    ``repeats`` times with the garbage collector off; return the median and the samples."""
    samples: list[float] = []
    for _ in range(repeats):
        gc.collect()
        gc.disable()
        try:
            samples.append(batch_ns())
        finally:
            gc.enable()
    return statistics.median(samples), samples


# --------------------------------------------------------------- HeartbeatState


def bench_bytes_received(batch: int, repeats: int) -> tuple[float, list[float]]:
    state = HeartbeatState(HeartbeatConfig(interval=1.0, timeout=5.0))
    state.handle(ConnectionOpened(now=0.0))
    clock = [0.0]

    def timed() -> float:
        base = clock[0]
        events = [BytesReceived(now=base + i * 1e-6) for i in range(batch)]
        clock[0] = base + batch * 1e-6
        handle = state.handle
        t0 = _clock()
        for ev in events:
            handle(ev)
        return (_clock() - t0) / batch

    return median_ns(timed, repeats)


def bench_timer_and_pong(batch: int, repeats: int) -> dict[str, tuple[float, list[float]]]:
    """``batch`` connections: fire every one's timer (-> SendPing), then deliver every pong."""
    cfg = HeartbeatConfig(interval=1.0, timeout=5.0)
    states = [HeartbeatState(cfg) for _ in range(batch)]
    for st in states:
        st.handle(ConnectionOpened(now=0.0))
    clock = [0.0]
    timer_ns: list[float] = []
    pong_ns: list[float] = []
    direct_timer_ns: list[float] = []
    direct_pong_ns: list[float] = []
    for _ in range(repeats):
        # One round through handle() with event objects, one through the direct entry
        # points that drivers use (timer_fired / pong_received: no event object).
        for direct in (False, True):
            t = clock[0] + 1.0
            seq = states[0].seq + 1
            fire = TimerFired(now=t)
            payload = b"%d" % seq
            pong = PongReceived(now=t + 0.001, payload=payload)
            clock[0] = t + 0.001
            gc.collect()
            gc.disable()
            try:
                t0 = _clock()
                if direct:
                    for st in states:
                        st.timer_fired(t)
                else:
                    for st in states:
                        st.handle(fire)
                t1 = _clock()
                if direct:
                    for st in states:
                        st.pong_received(t + 0.001, payload)
                else:
                    for st in states:
                        st.handle(pong)
                t2 = _clock()
            finally:
                gc.enable()
            assert states[-1].stats.pongs_received == seq, "the pong did not match its ping"
            (direct_timer_ns if direct else timer_ns).append((t1 - t0) / batch)
            (direct_pong_ns if direct else pong_ns).append((t2 - t1) / batch)
    return {
        "timer_fired_to_ping": (statistics.median(timer_ns), timer_ns),
        "pong_received": (statistics.median(pong_ns), pong_ns),
        "direct_timer_fired": (statistics.median(direct_timer_ns), direct_timer_ns),
        "direct_pong_received": (statistics.median(direct_pong_ns), direct_pong_ns),
    }


# ------------------------------------------------------------ full ping/pong cycle


def _open_heartbeat_connection(cfg: HeartbeatConfig) -> HeartbeatConnection:
    conn = HeartbeatConnection(Role.SERVER, cfg)
    conn.receive_data(HANDSHAKE, 0.0)
    conn.accept(now=0.0)
    assert conn.data_to_send().startswith(b"HTTP/1.1 101")
    return conn


def bench_cycle_ours(batch: int, repeats: int) -> tuple[float, list[float]]:
    """Server side through HeartbeatConnection: timer -> ping bytes, masked pong -> RttSample."""
    cfg = HeartbeatConfig(interval=1.0, timeout=5.0)
    conn = _open_heartbeat_connection(cfg)
    clock = [0.0]

    def timed() -> float:
        t = clock[0]
        first = conn.heartbeat.seq + 1
        pongs = [masked_frame(0xA, b"%d" % (first + i)) for i in range(batch)]
        times = [(t + 1.5 * (i + 1), t + 1.5 * (i + 1) + 0.001) for i in range(batch)]
        clock[0] = times[-1][1]
        timer_fired, data_to_send, receive_data = (
            conn.timer_fired,
            conn.data_to_send,
            conn.receive_data,
        )
        t0 = _clock()
        for (t_ping, t_pong), pong in zip(times, pongs, strict=True):
            timer_fired(t_ping)
            data_to_send()
            receive_data(pong, t_pong)
        elapsed = _clock() - t0
        assert conn.stats.pongs_received == first + batch - 1, "a pong did not match"
        return elapsed / batch

    return median_ns(timed, repeats)


def _open_wsproto() -> wsproto.WSConnection:
    conn = wsproto.WSConnection(wsproto.ConnectionType.SERVER)
    conn.receive_data(HANDSHAKE)
    for event in conn.events():
        if isinstance(event, ws.Request):
            conn.send(ws.AcceptConnection())
    return conn


def bench_cycle_wsproto(batch: int, repeats: int) -> tuple[float, list[float]]:
    """The same cycle through bare wsproto: send(Ping) and receive_data(pong) + events()."""
    conn = _open_wsproto()
    counter = [0]

    def timed() -> float:
        first = counter[0] + 1
        payloads = [b"%d" % (first + i) for i in range(batch)]
        pongs = [masked_frame(0xA, p) for p in payloads]
        counter[0] += batch
        send, receive, events, ping = conn.send, conn.receive_data, conn.events, ws.Ping
        t0 = _clock()
        for payload, pong in zip(payloads, pongs, strict=True):
            send(ping(payload=payload))
            receive(pong)
            for _ in events():
                pass
        return (_clock() - t0) / batch

    return median_ns(timed, repeats)


def _open_websockets() -> ServerProtocol:
    proto = ServerProtocol()
    proto.receive_data(HANDSHAKE)
    (request,) = proto.events_received()
    response = proto.accept(request)  # type: ignore[arg-type]
    proto.send_response(response)
    proto.data_to_send()
    return proto


def bench_cycle_websockets(batch: int, repeats: int) -> tuple[float, list[float]]:
    """The same cycle through websockets' sans-IO ServerProtocol."""
    proto = _open_websockets()
    counter = [0]

    def timed() -> float:
        first = counter[0] + 1
        payloads = [b"%d" % (first + i) for i in range(batch)]
        pongs = [masked_frame(0xA, p) for p in payloads]
        counter[0] += batch
        send_ping, data_to_send = proto.send_ping, proto.data_to_send
        receive, events = proto.receive_data, proto.events_received
        t0 = _clock()
        for payload, pong in zip(payloads, pongs, strict=True):
            send_ping(payload)
            data_to_send()
            receive(pong)
            events()
        return (_clock() - t0) / batch

    return median_ns(timed, repeats)


def _check_websockets_parses() -> None:
    proto = _open_websockets()
    proto.send_ping(b"1")
    proto.receive_data(masked_frame(0xA, b"1"))
    (frame,) = proto.events_received()
    assert isinstance(frame, Frame) and frame.opcode is Opcode.PONG and frame.data == b"1"


# ------------------------------------------------------------- opening handshake


def bench_handshake_ours(
    batch: int, repeats: int, *, fast: bool = True
) -> tuple[float, list[float]]:
    """A server's opening handshake through HeartbeatConnection: a new connection, the
    client's upgrade request in, ``accept()``, the 101 out. ``fast=False``: the same
    through h11 and wsproto (the fast path turned off, as the tests do)."""
    cfg = HeartbeatConfig(interval=1.0, timeout=5.0)

    def timed() -> float:
        t0 = _clock()
        for _ in range(batch):
            conn = HeartbeatConnection(Role.SERVER, cfg)
            if not fast:
                conn._handshake._fast = False  # type: ignore[union-attr]
            conn.connection_made(0.0)
            conn.receive_data(HANDSHAKE, 0.0)
            conn.accept(now=0.0)
            conn.data_to_send()
        return (_clock() - t0) / batch

    return median_ns(timed, repeats)


class _Transport:
    """Enough of an asyncio transport for the floor's handshake."""

    __slots__ = ("written",)

    def __init__(self) -> None:
        self.written: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.written.append(data)


def bench_handshake_floor(batch: int, repeats: int) -> tuple[float, list[float]]:
    """The same for the floor server's protocol (benchmarks/servers.py): a new protocol,
    the request read into the shared buffer, the 101 written."""
    from types import SimpleNamespace

    from servers import FloorProtocol

    floor: Any = SimpleNamespace(open=set())
    size = len(HANDSHAKE)

    def timed() -> float:
        floor.open.clear()
        t0 = _clock()
        for _ in range(batch):
            proto = FloorProtocol(floor)
            proto.connection_made(_Transport())  # type: ignore[arg-type]
            proto.get_buffer(size)[:size] = HANDSHAKE
            proto.buffer_updated(size)
        elapsed = _clock() - t0
        assert len(floor.open) == batch, "the floor did not upgrade every connection"
        return elapsed / batch

    return median_ns(timed, repeats)


def bench_handshake_websockets(batch: int, repeats: int) -> tuple[float, list[float]]:
    """The same through websockets' sans-IO ServerProtocol."""

    def timed() -> float:
        t0 = _clock()
        for _ in range(batch):
            _open_websockets()
        return (_clock() - t0) / batch

    return median_ns(timed, repeats)


# ------------------------------------------------------------------------ report


def run(batch: int = 20000, repeats: int = 7) -> dict[str, Any]:
    """Measure everything; return the figures (ns per operation) and the environment."""
    _check_websockets_parses()
    results: dict[str, tuple[float, list[float]]] = {}
    results["state.bytes_received"] = bench_bytes_received(batch, repeats)
    tp = bench_timer_and_pong(batch, repeats)
    results["state.timer_fired_to_ping"] = tp["timer_fired_to_ping"]
    results["state.pong_received"] = tp["pong_received"]
    results["state.direct_timer_fired"] = tp["direct_timer_fired"]
    results["state.direct_pong_received"] = tp["direct_pong_received"]
    results["cycle.heartbeat_connection"] = bench_cycle_ours(batch, repeats)
    results["cycle.wsproto_only"] = bench_cycle_wsproto(batch, repeats)
    results["cycle.websockets_protocol"] = bench_cycle_websockets(batch, repeats)
    small = max(1, batch // 10)  # (a handshake costs tens of round trips)
    results["handshake.heartbeat_connection"] = bench_handshake_ours(small, repeats)
    results["handshake.h11_path"] = bench_handshake_ours(small, repeats, fast=False)
    results["handshake.floor"] = bench_handshake_floor(small, repeats)
    results["handshake.websockets_protocol"] = bench_handshake_websockets(small, repeats)
    return {
        "command": " ".join([os.path.basename(sys.executable), *sys.argv]),
        "time_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {
            "python": platform.python_version(),
            "implementation": platform.python_implementation(),
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
        },
        "versions": {
            "heartbeat_core": heartbeat_core.__version__,
            "wsproto": _version("wsproto"),
            "websockets": _version("websockets"),
        },
        "batch": batch,
        "repeats": repeats,
        "ns_per_op": {name: {"median": med, "samples": s} for name, (med, s) in results.items()},
    }


def _version(dist: str) -> str:
    from importlib.metadata import version

    return version(dist)


_LABELS = {
    "state.bytes_received": "HeartbeatState.handle(BytesReceived)",
    "state.pong_received": "HeartbeatState.handle(PongReceived) (matching, RTT sample)",
    "state.timer_fired_to_ping": "HeartbeatState.handle(TimerFired) -> SendPing",
    "state.direct_timer_fired": "HeartbeatState.timer_fired(now) -> SendPing",
    "state.direct_pong_received": "HeartbeatState.pong_received(now, payload) (what drivers call)",
    "cycle.heartbeat_connection": "cycle: HeartbeatConnection (timer -> ping, masked pong in)",
    "cycle.wsproto_only": "cycle: wsproto alone (send Ping, parse masked pong)",
    "cycle.websockets_protocol": "cycle: websockets ServerProtocol (send_ping, parse masked pong)",
    "handshake.heartbeat_connection": "handshake: HeartbeatConnection (new, request in, accept)",
    "handshake.h11_path": "handshake: the same through h11 and wsproto (no fast path)",
    "handshake.floor": "handshake: the floor server's protocol (new, request in, 101 out)",
    "handshake.websockets_protocol": "handshake: websockets ServerProtocol (request in, accept)",
}


def format_table(result: dict[str, Any]) -> str:
    """The figures as a Markdown table (µs per operation, median and range)."""
    figures = result["ns_per_op"]
    ws_cycle = figures["cycle.websockets_protocol"]["median"]
    floor = figures.get("handshake.floor", {}).get("median")
    lines = [
        "| operation | median µs | min-max µs | vs websockets cycle, or vs floor handshake |",
        "|---|---|---|---|",
    ]
    for key, label in _LABELS.items():
        if key not in figures:  # (a result from before the row existed)
            continue
        med = figures[key]["median"]
        samples = figures[key]["samples"]
        ratio = ""
        if key.startswith("cycle."):
            ratio = f"{med / ws_cycle:.2f}x"
        elif key.startswith("handshake.") and floor:
            ratio = f"{med / floor:.2f}x"
        lines.append(
            f"| {label} | {med / 1000:.2f} | {min(samples) / 1000:.2f}-"
            f"{max(samples) / 1000:.2f} | {ratio} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--batch", type=int, default=20000, help="operations per timed batch")
    parser.add_argument("--repeats", type=int, default=7, help="timed batches per figure")
    parser.add_argument("--json", help="also write the figures to this JSON file")
    args = parser.parse_args(argv)
    result = run(batch=args.batch, repeats=args.repeats)
    print(
        f"heartbeat-core {result['versions']['heartbeat_core']}, wsproto "
        f"{result['versions']['wsproto']}, websockets {result['versions']['websockets']}, "
        f"Python {result['machine']['python']}; median of {args.repeats} batches of {args.batch}"
    )
    print(format_table(result))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(result, fh, indent=2)
            fh.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
