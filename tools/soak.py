"""A long run through both servers: ``make soak`` (not in CI; about 30 minutes).

    python tools/soak.py [--minutes 30] [--connections 5000] [--report FILE]

Two servers run in processes of their own, ``heartbeat_asyncio`` (ping frames) and
``heartbeat_threading`` (``{"type":"ping"}`` messages), with ``INTERVAL`` s heartbeats
and a ``TIMEOUT`` s timeout, each serving half of ``--connections`` clients, made here,
on one asyncio loop, of bare sockets (each answers every heartbeat at once). Every
minute:

* 10 % of the healthy connections close (1000) and reconnect, spread over the minute;
* 1 % freeze, at random moments: they stop reading and writing, exactly as a frozen
  process does, for ``FREEZE`` s (longer than the detection bound), then resume and
  reconnect once they find their connection closed;
* halfway through, both servers are restarted once (SIGTERM, then a new process on the
  same port): every client sees 1001 and reconnects.

Figures every minute, per server: RSS, open fds and threads of the server process,
connections open, the largest and the 99th-percentile gap between two heartbeats a
healthy client saw, false positives (a peer declared dead that was not frozen),
detections (frozen peers declared dead, and the slowest against its bound:
``INTERVAL + TIMEOUT`` after the freeze, plus ``SLACK``), reconnections. At the end
every client leaves and the servers' fds and threads must be back to their baseline.
The verdict checks the acceptance of issue 18: RSS drift <= 5 % after warm-up (per
server process), fds and threads back to baseline, zero false positives, every frozen
peer detected within its bound. Exit status 0 when it holds, 1 otherwise.

Also ``python tools/soak.py serve ADAPTER PORT``: one of the servers (what the run starts).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import random
import resource
import signal
import struct
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

INTERVAL = 2.0
TIMEOUT = 2.0
CLOSE_TIMEOUT = 1.0
FREEZE = 8.0  # > INTERVAL + TIMEOUT + CLOSE_TIMEOUT: the server has given up by then
SLACK = 0.25  # detection bound: INTERVAL + TIMEOUT after the freeze, plus this
WARM_UP_MINUTES = 3
ADAPTERS = ("asyncio", "threading")

# ------------------------------------------------------------------ the servers


def serve(adapter: str, port: int) -> None:
    """One server: an echo handler; a JSON line on stdout per peer declared dead.
    SIGUSR1 prints every thread's stack on stderr (for a server that does not stop)."""
    import faulthandler

    faulthandler.register(signal.SIGUSR1, all_threads=True)
    from heartbeat_core import HeartbeatConfig, HeartbeatStyle, PeerDead

    style = HeartbeatStyle.PROTOCOL if adapter == "asyncio" else HeartbeatStyle.APP
    config = HeartbeatConfig(
        interval=INTERVAL, timeout=TIMEOUT, close_timeout=CLOSE_TIMEOUT, style=style
    )

    def on_event(conn: Any, event: object) -> None:
        if isinstance(event, PeerDead):
            peer = conn.remote_address
            line = {"dead": peer[1] if peer else None, "t": time.monotonic(), "w": event.waited}
            sys.stdout.write(json.dumps(line) + "\n")
            sys.stdout.flush()

    stop = asyncio.Event() if adapter == "asyncio" else None
    if adapter == "threading":
        import threading

        from heartbeat_threading import serve as tserve

        def echo(conn: Any) -> None:
            for message in conn:
                conn.send(message)

        threading.stack_size(256 * 1024)  # 2,500 handler threads
        server = tserve(echo, "127.0.0.1", port, config=config, on_event=on_event)
        print(json.dumps({"port": server.port}), flush=True)
        done = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: done.set())
        done.wait()
        server.close(timeout=5.0)
        return

    from heartbeat_asyncio import serve as aserve

    async def aecho(conn: Any) -> None:
        async for message in conn:
            await conn.send(message)

    async def run() -> None:
        assert stop is not None
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        server = await aserve(aecho, "127.0.0.1", port, config=config, on_event=on_event)
        print(json.dumps({"port": server.port}), flush=True)
        await stop.wait()
        await server.close(timeout=5.0)

    asyncio.run(run())


# ------------------------------------------------------------------ the clients

KEY = base64.b64encode(b"heartbeat-soak!!").decode()
MASK = b"\x01\x02\x03\x04"
APP_PING = b'{"type":"ping"}'
APP_PONG = b'{"type":"pong"}'


def _masked(opcode: int, payload: bytes) -> bytes:
    n = len(payload)
    head = bytes([0x80 | opcode])
    if n < 126:
        head += bytes([0x80 | n])
    else:
        head += bytes([0x80 | 126]) + struct.pack("!H", n)
    masked = bytes(b ^ MASK[i % 4] for i, b in enumerate(payload))
    return head + MASK + masked


@dataclass
class Figures:
    """What one server's clients saw during one minute."""

    gaps: list[float] = field(default_factory=list)
    false_positives: int = 0
    detections: int = 0
    worst_detection: float = 0.0  # seconds past the freeze, the largest
    late_detections: int = 0
    undetected: int = 0
    interrupted: int = 0  # frozen when their server was restarted: nobody left to detect
    reconnects: int = 0
    frozen: int = 0
    unexpected_closes: dict[int, int] = field(default_factory=dict)


class Client(asyncio.Protocol):
    """One bare WebSocket client: answers heartbeats, may freeze, reconnects when closed."""

    def __init__(self, soak: Soak, server: str) -> None:
        self.soak = soak
        self.server = server
        self.transport: asyncio.Transport | None = None
        self.port: int | None = None
        self.buf = b""
        self.open = False
        self.last_ping: float | None = None
        self.frozen_at: float | None = None
        self.leaving = False  # our own close: reconnect (or not, at the end)
        self.lost = asyncio.get_running_loop().create_future()

    # asyncio.Protocol
    def connection_made(self, transport: Any) -> None:  # (uvloop's is no asyncio.Transport)
        self.transport = transport
        self.port = transport.get_extra_info("sockname")[1]
        transport.write(
            f"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade"
            f"\r\nSec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
        )

    def data_received(self, data: bytes) -> None:
        if self.frozen_at is not None:
            return  # (reading is paused; a last read may still land)
        self.buf += data
        if not self.open:
            head, sep, rest = self.buf.partition(b"\r\n\r\n")
            if not sep:
                return
            if not head.startswith(b"HTTP/1.1 101"):
                self.transport.close()  # type: ignore[union-attr]
                return
            self.open, self.buf = True, rest
            self.soak.opened(self)
        self._frames()

    def _frames(self) -> None:
        buf, now = self.buf, time.monotonic()
        while len(buf) >= 2:
            opcode, n, at = buf[0] & 0x0F, buf[1] & 0x7F, 2
            if n == 126:
                if len(buf) < 4:
                    break
                n, at = struct.unpack("!H", buf[2:4])[0], 4
            elif n == 127:
                if len(buf) < 10:
                    break
                n, at = struct.unpack("!Q", buf[2:10])[0], 10
            if len(buf) < at + n:
                break
            payload, buf = buf[at : at + n], buf[at + n :]
            if opcode == 0x9 or (opcode == 0x1 and payload == APP_PING):
                self._heartbeat(now)
                pong = _masked(0xA, payload) if opcode == 0x9 else _masked(0x1, APP_PONG)
                self.transport.write(pong)  # type: ignore[union-attr]
            elif opcode == 0x8:
                code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
                self.soak.closed_by_server(self, code)
                self.transport.write(_masked(0x8, payload[:2]))  # type: ignore[union-attr]
                self.transport.close()  # type: ignore[union-attr]
                break
        self.buf = buf

    def _heartbeat(self, now: float) -> None:
        if self.last_ping is not None:
            self.soak.gap(self.server, now - self.last_ping)
        self.last_ping = now

    def connection_lost(self, exc: Exception | None) -> None:
        self.open = False
        if not self.lost.done():
            self.lost.set_result(None)

    # what the soak does to it
    def freeze(self) -> None:
        assert self.transport is not None
        self.frozen_at = time.monotonic()
        self.transport.pause_reading()

    def leave(self) -> None:
        """Close 1000 (our side), then the socket."""
        self.leaving = True
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(_masked(0x8, struct.pack("!H", 1000)))
            self.transport.close()


def _factory(client: Client) -> Any:
    return lambda: client


class Soak:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.per_server = args.connections // 2
        self.ports: dict[str, int] = {}
        self.procs: dict[str, asyncio.subprocess.Process] = {}
        self.clients: dict[str, set[Client]] = {name: set() for name in ADAPTERS}
        self.by_port: dict[tuple[str, int], Client] = {}
        self.minute: dict[str, Figures] = {name: Figures() for name in ADAPTERS}
        self.rows: list[dict[str, Any]] = []
        self.restarting: set[str] = set()
        self.restarted_at: dict[str, int] = {}
        self.baseline: dict[str, dict[str, int]] = {}
        self.freezes: dict[tuple[str, int], float] = {}  # frozen, not yet detected
        self.rng = random.Random(args.seed)
        self.stopping = False
        self.tasks: set[asyncio.Task[Any]] = set()

    # --------------------------------------------------------------- servers

    async def start_server(self, name: str, port: int = 0) -> None:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, __file__, "serve", name, str(port),
            stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 20)
        self.ports[name] = json.loads(line)["port"]
        self.procs[name] = proc
        self.spawn(self.read_verdicts(name, proc))

    async def read_verdicts(self, name: str, proc: asyncio.subprocess.Process) -> None:
        assert proc.stdout is not None
        while line := await proc.stdout.readline():
            verdict = json.loads(line)
            self.dead(name, verdict["dead"], verdict["t"])

    async def stop_server(self, name: str) -> int:
        """SIGTERM; the exit status (killed after 30 s, its stacks printed first: -9)."""
        proc = self.procs[name]
        proc.send_signal(signal.SIGTERM)
        try:
            return await asyncio.wait_for(proc.wait(), 30)
        except asyncio.TimeoutError:
            print(json.dumps({"server": name, "stuck": "no exit 30 s after SIGTERM"}), flush=True)
            proc.send_signal(signal.SIGUSR1)
            await asyncio.sleep(1)
            proc.kill()
            return await proc.wait()

    def proc_figures(self, name: str) -> dict[str, int]:
        pid = self.procs[name].pid
        with open(f"/proc/{pid}/status") as f:
            status = dict(line.split(":", 1) for line in f)
        return {
            "rss_kib": int(status["VmRSS"].split()[0]),
            "threads": int(status["Threads"]),
            "fds": len(os.listdir(f"/proc/{pid}/fd")),
        }

    # --------------------------------------------------------------- clients

    def spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def connect(self, name: str) -> None:
        """Open a client to ``name`` and keep one open: reconnect whenever it closes."""
        loop = asyncio.get_running_loop()
        delay = 0.1
        while not self.stopping:
            client = Client(self, name)
            try:
                await loop.create_connection(_factory(client), "127.0.0.1", self.ports[name])
            except OSError:
                await asyncio.sleep(delay + self.rng.random() * delay)
                delay = min(delay * 2, 2.0)
                continue
            delay = 0.1
            self.clients[name].add(client)
            assert client.port is not None
            self.by_port[(name, client.port)] = client
            await client.lost
            self.clients[name].discard(client)
            self.by_port.pop((name, client.port), None)

    def opened(self, client: Client) -> None:
        """The upgrade was accepted (nothing to do: the client answers heartbeats)."""

    def closed_by_server(self, client: Client, code: int) -> None:
        if client.leaving:
            return
        expected = {1001} if client.server in self.restarting else set()
        if client.frozen_at is not None:
            expected.add(1011)
        if code not in expected:
            fig = self.minute[client.server]
            fig.unexpected_closes[code] = fig.unexpected_closes.get(code, 0) + 1

    def gap(self, name: str, gap: float) -> None:
        self.minute[name].gaps.append(gap)

    def dead(self, name: str, port: int | None, t: float) -> None:
        fig = self.minute[name]
        frozen_at = self.freezes.pop((name, port), None) if port is not None else None
        if frozen_at is None:
            fig.false_positives += 1
            return
        fig.detections += 1
        took = t - frozen_at
        fig.worst_detection = max(fig.worst_detection, took)
        if took > INTERVAL + TIMEOUT + SLACK:
            fig.late_detections += 1

    async def freeze_one(self, name: str, after: float) -> None:
        await asyncio.sleep(after)
        healthy = [c for c in self.clients[name] if c.open and c.frozen_at is None]
        if not healthy or name in self.restarting:
            return
        client = self.rng.choice(healthy)
        client.freeze()
        assert client.port is not None
        self.freezes[(name, client.port)] = client.frozen_at or 0.0
        self.minute[name].frozen += 1
        await asyncio.sleep(FREEZE)
        if (name, client.port) in self.freezes:  # never declared dead (nor interrupted)
            self.freezes.pop((name, client.port))
            self.minute[name].undetected += 1
        assert client.transport is not None
        client.frozen_at = None
        client.buf = b""
        client.transport.resume_reading()  # it reads the close, or EOF, and reconnects
        client.transport.close()

    async def reconnect_one(self, name: str, after: float) -> None:
        await asyncio.sleep(after)
        healthy = [c for c in self.clients[name] if c.open and c.frozen_at is None]
        if healthy and name not in self.restarting:
            self.rng.choice(healthy).leave()
            self.minute[name].reconnects += 1

    def schedule_minute(self) -> None:
        for name in ADAPTERS:
            for _ in range(max(1, self.per_server // 10)):
                self.spawn(self.reconnect_one(name, self.rng.random() * self.args.minute))
            for _ in range(max(1, self.per_server // 100)):
                self.spawn(self.freeze_one(name, self.rng.random() * (self.args.minute - 10)))

    # --------------------------------------------------------------- the run

    def record_minute(self, minute: int) -> None:
        for name in ADAPTERS:
            fig, self.minute[name] = self.minute[name], Figures()
            gaps = sorted(fig.gaps)
            row = {
                "minute": minute,
                "server": name,
                **self.proc_figures(name),
                "open": sum(1 for c in self.clients[name] if c.open),
                "gap_max_s": round(gaps[-1], 3) if gaps else None,
                "gap_p99_s": round(gaps[int(len(gaps) * 0.99)], 3) if gaps else None,
                "heartbeats": len(gaps),
                "false_positives": fig.false_positives,
                "frozen": fig.frozen,
                "detections": fig.detections,
                "worst_detection_s": round(fig.worst_detection, 3),
                "late_detections": fig.late_detections,
                "undetected": fig.undetected,
                "interrupted": fig.interrupted,
                "reconnects": fig.reconnects,
                "unexpected_closes": fig.unexpected_closes,
                "restarted": self.restarted_at.get(name) == minute,
            }
            self.rows.append(row)
            print(json.dumps(row), flush=True)

    async def run(self) -> int:
        args = self.args
        for name in ADAPTERS:
            await self.start_server(name)
            await asyncio.sleep(0.5)
            self.baseline[name] = self.proc_figures(name)
        print(json.dumps({"baseline": self.baseline, "ports": self.ports}), flush=True)
        for name in ADAPTERS:  # open the connections over a few seconds
            for i in range(self.per_server):
                self.spawn(self.connect(name))
                if i % 100 == 99:
                    await asyncio.sleep(0.05)
        restart_at = max(1, args.minutes // 2)
        start = time.monotonic()
        for minute in range(1, args.minutes + 1):
            self.schedule_minute()
            if minute == restart_at:
                self.spawn(self.restart(minute))
            await asyncio.sleep(max(0.0, start + minute * self.args.minute - time.monotonic()))
            self.record_minute(minute)
        return await self.finish()

    async def restart(self, minute: int) -> None:
        await asyncio.sleep(self.args.minute / 3)
        for name in ADAPTERS:
            self.restarting.add(name)
            for key in [k for k in self.freezes if k[0] == name]:
                del self.freezes[key]
                self.minute[name].interrupted += 1
            code = await self.stop_server(name)
            if code != 0:
                print(json.dumps({"server": name, "exit_status": code}), flush=True)
                self.minute[name].unexpected_closes[-code] = 1
            await self.start_server(name, self.ports[name])
            self.restarted_at[name] = minute
        await asyncio.sleep(10)
        self.restarting.clear()

    async def finish(self) -> int:
        self.stopping = True
        for name in ADAPTERS:
            for client in list(self.clients[name]):
                client.leave()
        await asyncio.sleep(5)
        end: dict[str, dict[str, int]] = {name: self.proc_figures(name) for name in ADAPTERS}
        statuses = {name: await self.stop_server(name) for name in ADAPTERS}
        for task in list(self.tasks):
            task.cancel()
        verdict = self.verdict(end, statuses)
        print(json.dumps({"end": end, "exit_status": statuses, "verdict": verdict}), flush=True)
        if args_report := self.args.report:
            Path(args_report).write_text(self.markdown(end, statuses, verdict))
        return 0 if verdict["holds"] else 1

    def verdict(self, end: dict[str, dict[str, int]], statuses: dict[str, int]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name in ADAPTERS:
            rows = [r for r in self.rows if r["server"] == name]
            restart = self.restarted_at.get(name)
            drifts = []
            for life in (
                [r for r in rows if restart is None or r["minute"] < restart],
                [r for r in rows if restart is not None and r["minute"] > restart],
            ):
                warm = [r for r in life if r["minute"] > life[0]["minute"] + WARM_UP_MINUTES - 1]
                if len(warm) >= 2:
                    drifts.append((warm[-1]["rss_kib"] - warm[0]["rss_kib"]) / warm[0]["rss_kib"])
            out[name] = {
                "rss_drift": [round(d, 4) for d in drifts],
                "fds": (self.baseline[name]["fds"], end[name]["fds"]),
                "threads": (self.baseline[name]["threads"], end[name]["threads"]),
                "false_positives": sum(r["false_positives"] for r in rows),
                "frozen": sum(r["frozen"] for r in rows),
                "detections": sum(r["detections"] for r in rows),
                "late": sum(r["late_detections"] for r in rows),
                "undetected": sum(r["undetected"] for r in rows),
                "interrupted": sum(r["interrupted"] for r in rows),
                "worst_detection_s": max((r["worst_detection_s"] for r in rows), default=0),
                "exit_status": statuses[name],
            }
        holds = all(
            all(d <= 0.05 for d in v["rss_drift"])
            and v["fds"][1] <= v["fds"][0]
            and v["threads"][1] <= v["threads"][0]
            and v["false_positives"] == 0
            and v["late"] == 0
            and v["undetected"] == 0
            and v["detections"] + v["interrupted"] == v["frozen"]
            and v["detections"] > 0
            and v["exit_status"] == 0
            for v in out.values()
        )
        out["holds"] = holds
        return out

    def markdown(
        self, end: dict[str, dict[str, int]], statuses: dict[str, int], verdict: dict[str, Any]
    ) -> str:
        lines = [
            "| min | server | RSS MiB | fds | threads | open | heartbeat gap max / p99 (s) | "
            "false positives | frozen / detected (slowest, s) | reconnects | unexpected closes |",
            "|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for r in self.rows:
            restarted = " (restarted)" if r["restarted"] else ""
            lines.append(
                f"| {r['minute']} | {r['server']}{restarted} | {r['rss_kib'] / 1024:.1f} | "
                f"{r['fds']} | {r['threads']} | {r['open']} | {r['gap_max_s']} / "
                f"{r['gap_p99_s']} | {r['false_positives']} | {r['frozen']} / "
                f"{r['detections']} ({r['worst_detection_s']})"
                f"{f' + {n} at the restart' if (n := r['interrupted']) else ''} | "
                f"{r['reconnects']} | "
                f"{r['unexpected_closes'] or '-'} |"
            )
        lines.append("")
        lines.append(f"Verdict: `{json.dumps(verdict)}`")
        return "\n".join(lines) + "\n"


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "serve":
        serve(sys.argv[2], int(sys.argv[3]))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=int, default=30)
    parser.add_argument("--connections", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=18)
    parser.add_argument(
        "--minute", type=float, default=60.0, help="seconds per 'minute' (shorter: a trial run)"
    )
    parser.add_argument("--report", help="write the per-minute table (Markdown) here")
    args = parser.parse_args()
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    try:
        import uvloop
    except ImportError:
        return asyncio.run(Soak(args).run())
    return uvloop.run(Soak(args).run())


if __name__ == "__main__":
    sys.exit(main())
