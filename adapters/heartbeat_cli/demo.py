"""``heartbeat demo``: a scripted tour on loopback.

A server and three clients in both heartbeat styles (one of them a separate
``heartbeat ping`` process), that process frozen with SIGSTOP until the server
declares it dead, then a server restart the clients recover from with
exponential backoff. :func:`run_demo` is the command, reached through
:func:`heartbeat_cli.main`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import sys
from collections.abc import Awaitable
from typing import Any

from heartbeat_asyncio import (
    Connected,
    Connection,
    Disconnected,
    ReconnectEvent,
    Retrying,
    Server,
    connect_forever,
    serve,
)

from heartbeat_cli.demo_cast import (
    BACKOFF,
    CLIENT_INTERVAL,
    COLORS,
    DOWN_FOR,
    SERVER_INTERVAL,
    SERVER_TIMEOUT,
    DemoClient,
    DemoFailed,
    child_env,
    summary,
)
from heartbeat_cli.output import (
    EXIT_FAILED,
    EXIT_OK,
    Output,
    describe_connect_error,
    error,
    format_peer,
)
from heartbeat_cli.runtime import first_completed, install_stop
from heartbeat_cli.serve import echo
from heartbeat_core import (
    Closed,
    ConnectionEvent,
    HeartbeatConfig,
    HeartbeatStyle,
    PeerDead,
    RttSample,
)

__all__ = ["run_demo"]


class _Demo:
    """The scripted tour behind ``heartbeat demo``."""

    def __init__(self, out: Output) -> None:
        self.out = out
        self.loop = asyncio.get_running_loop()
        self.t0 = self.loop.time()
        self.server: Server | None = None
        self.port = 0
        self.names: dict[Connection, str] = {}
        self.carol_conn: Connection | None = None
        self.carol_open = asyncio.Event()
        self.carol_gone = asyncio.Event()
        self.carol_dead_at: float | None = None
        self.carol_released_at: float | None = None
        self.carol_rtts: list[float] = []
        self.proc: asyncio.subprocess.Process | None = None
        self.reader: asyncio.Future[None] | None = None
        self.server_rtts = 0
        self.clients = [
            DemoClient("alice", HeartbeatStyle.PROTOCOL),
            DemoClient("bob", HeartbeatStyle.APP),
        ]
        self.server_config = HeartbeatConfig(
            interval=SERVER_INTERVAL,
            timeout=SERVER_TIMEOUT,
            close_timeout=0.5,
            style=HeartbeatStyle.PROTOCOL,
            answer_app_pings=True,
        )

    # ------------------------------------------------------------- output

    def say(self, who: str, text: str, *emphasis: str) -> None:
        """One timestamped line: the speaker in its colour, the text with ``emphasis``."""
        elapsed = self.loop.time() - self.t0
        stamp = self.out.paint(f"{elapsed:5.1f}s", "dim")
        name = self.out.paint(who.ljust(7), COLORS.get(who, "blue"))
        self.out.line(f"{stamp}  {name}{self.out.paint(text, *emphasis)}")

    def stage(self, title: str) -> None:
        self.out.line()
        self.out.line(self.out.paint(f"== {title}", "bold"))

    # ------------------------------------------------------------- server side

    def on_server_event(self, conn: Connection, event: ConnectionEvent) -> None:
        name = self.names.get(conn, format_peer(conn.remote_address))
        if isinstance(event, RttSample):
            self.server_rtts += 1
        elif isinstance(event, PeerDead):
            if conn is self.carol_conn:
                self.carol_dead_at = self.loop.time()
            self.say(
                "server",
                f"{name}: heartbeat {event.seq} unanswered for {event.waited * 1000:.0f} ms "
                "-> declared dead, close 1011",
                "red",
                "bold",
            )
        elif isinstance(event, Closed):
            if conn is self.carol_conn:
                self.carol_released_at = self.loop.time()
                self.carol_gone.set()
            reason = f" {event.reason!r}" if event.reason else ""
            self.say("server", f"{name}: closed, code {event.code}{reason}, socket released")

    async def handler(self, conn: Connection) -> None:
        name = conn.path.strip("/") or format_peer(conn.remote_address)
        self.names[conn] = name
        if name == "carol" and self.carol_conn is None:
            self.carol_conn = conn
            self.carol_open.set()
        self.say("server", f"accepted {name} ({format_peer(conn.remote_address)})")
        await echo(conn)

    async def listen(self, port: int) -> None:
        attempts = 1 if port == 0 else 50  # a restart may wait up to 5 s for its port
        for attempt in range(attempts):
            try:
                self.server = await serve(
                    self.handler,
                    "127.0.0.1",
                    port,
                    config=self.server_config,
                    on_event=self.on_server_event,
                )
            except OSError:
                if attempt == attempts - 1:
                    raise
                await asyncio.sleep(0.1)
                continue
            self.port = self.server.port
            return

    # ------------------------------------------------------------- clients

    def on_client_event(self, client: DemoClient, event: ConnectionEvent) -> None:
        if isinstance(event, RttSample):
            client.rtts.append(event.rtt)
            self.say(
                client.name,
                f"{client.label:<15} heartbeat {event.seq:>2}  rtt {event.rtt * 1000:6.2f} ms",
            )

    def on_client_state(self, client: DemoClient, event: ReconnectEvent) -> None:
        now = self.loop.time()
        if isinstance(event, Connected):
            client.connected.set()
            if client.down_since is not None:
                client.back_after = now - client.down_since
                self.say(
                    client.name,
                    f"reconnected after {client.back_after:.2f} s "
                    f"({len(client.retries)} waits: "
                    + ", ".join(f"{d:g} s" for d in client.retries)
                    + ")",
                    "bold",
                )
        elif isinstance(event, Disconnected):
            client.connected.clear()
            if client.stopping:
                return
            if client.down_since is None:
                client.down_since = now
            if event.error is not None:
                why = describe_connect_error(event.error)
            else:
                why = f"closed with {event.code}" + (f" {event.reason!r}" if event.reason else "")
            self.say(client.name, f"disconnected: {why}")
        elif isinstance(event, Retrying):
            if client.stopping:
                return
            client.retries.append(event.delay)
            self.say(
                client.name,
                f"retry {event.attempt} in {event.delay:g} s (exponential backoff)",
            )

    async def run_client(self, client: DemoClient) -> None:
        config = HeartbeatConfig(
            interval=CLIENT_INTERVAL,
            timeout=2.0,
            close_timeout=0.5,
            fixed_rate=True,
            style=client.style,
        )
        uri = f"ws://127.0.0.1:{self.port}/{client.name}"
        stream = connect_forever(
            uri,
            backoff=BACKOFF,
            on_state=lambda event: self.on_client_state(client, event),
            config=config,
            open_timeout=2.0,
            on_event=lambda conn, event: self.on_client_event(client, event),
        )
        try:
            async for conn in stream:
                client.conn = conn
                async for _ in conn:
                    pass
                if client.stopping:
                    break
        finally:
            aclose = getattr(stream, "aclose", None)
            if aclose is not None:
                with contextlib.suppress(Exception):
                    await aclose()

    async def start_carol(self) -> None:
        uri = f"ws://127.0.0.1:{self.port}/carol"
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "heartbeat_cli",
            "ping",
            uri,
            "--json",
            "--interval",
            f"{CLIENT_INTERVAL:g}",
            "--timeout",
            "5",
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
            env=child_env(),
            start_new_session=True,  # the demo alone signals it (not the terminal's Ctrl-C)
        )
        self.say("carol", f"started as process {self.proc.pid}: heartbeat ping {uri}")
        self.reader = asyncio.ensure_future(self.read_carol(self.proc))
        await self.wait(self.carol_open.wait(), 20.0, "carol (a separate process) did not connect")

    async def read_carol(self, proc: asyncio.subprocess.Process) -> None:
        assert proc.stdout is not None
        async for raw in proc.stdout:
            try:
                record = json.loads(raw)
            except ValueError:
                continue
            if record.get("event") == "pong":
                rtt_ms = float(record["rtt_ms"])
                self.carol_rtts.append(rtt_ms / 1000.0)
                self.say(
                    "carol",
                    f"{'ping frames':<15} heartbeat {record['seq']:>2}  rtt {rtt_ms:6.2f} ms"
                    "  (own process: heartbeat ping)",
                )

    def stop_carol(self) -> None:
        proc = self.proc
        if proc is not None and proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()

    async def wait(self, awaitable: Awaitable[Any], seconds: float, what: str) -> None:
        try:
            await asyncio.wait_for(awaitable, seconds)
        except asyncio.TimeoutError:
            raise DemoFailed(f"{what} within {seconds:g} s") from None

    # ------------------------------------------------------------- the script

    async def run(self) -> int:
        out = self.out
        out.line(out.paint("heartbeat demo", "bold") + ": everything on 127.0.0.1, about 12 s")
        try:
            summary = await self.script()
        except DemoFailed as exc:
            out.line()
            out.line(out.paint(f"demo failed: {exc}", "red", "bold"))
            return EXIT_FAILED
        finally:
            await self.teardown()
        self.stage("summary")
        for line in summary:
            out.line(f"  {line}")
        return EXIT_OK

    async def script(self) -> list[str]:
        limit = SERVER_INTERVAL + SERVER_TIMEOUT
        self.stage("a server and three clients")
        await self.listen(0)
        self.say(
            "server",
            f"listening on 127.0.0.1:{self.port}; pings a connection idle for "
            f"{SERVER_INTERVAL:g} s, declares it dead {SERVER_TIMEOUT:g} s later",
        )
        await self.start_carol()
        for client in self.clients:
            client.task = asyncio.ensure_future(self.run_client(client))
        for client in self.clients:
            await self.wait(client.connected.wait(), 10.0, f"{client.name} did not connect")

        self.stage("live round-trip times, both heartbeat styles (every second)")
        await asyncio.sleep(4.2)

        self.stage("carol freezes: half-open, its TCP connection stays up but nothing answers")
        assert self.proc is not None
        freeze_at = self.loop.time()
        os.kill(self.proc.pid, signal.SIGSTOP)
        self.say("carol", "frozen (SIGSTOP): no FIN, no RST, just silence", "bold")
        await self.wait(self.carol_gone.wait(), limit + 5.0, "the server did not notice carol")
        dead_at = self.carol_dead_at if self.carol_dead_at is not None else self.loop.time()
        detect = dead_at - freeze_at
        verdict = "within" if detect <= limit + 0.05 else "later than (the machine is busy)"
        self.say(
            "server",
            f"found carol dead {detect:.2f} s after it froze: {verdict} "
            f"interval + timeout = {limit:g} s",
            "green",
        )
        self.stop_carol()
        await asyncio.sleep(1.0)

        self.stage("the server restarts; clients come back with exponential backoff")
        assert self.server is not None
        await self.server.close(1001, "server restarting", timeout=1.0)
        await self.server.wait_closed()
        self.say("server", f"stopped; down for {DOWN_FOR:g} s")
        await asyncio.sleep(DOWN_FOR)
        await self.listen(self.port)
        self.say("server", f"listening again on 127.0.0.1:{self.port}")
        for client in self.clients:
            await self.wait(client.connected.wait(), 15.0, f"{client.name} did not come back")

        self.stage("back to normal")
        await asyncio.sleep(2.6)

        return summary(self.carol_rtts, self.clients, self.server_rtts, detect, limit)

    async def teardown(self) -> None:
        self.stop_carol()
        for client in self.clients:
            client.stopping = True
            if client.conn is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(client.conn.close(1000), 2.0)
        for client in self.clients:
            if client.task is not None:
                try:
                    await asyncio.wait_for(client.task, 2.0)
                except (asyncio.TimeoutError, asyncio.CancelledError, Exception):
                    client.task.cancel()
        if self.server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.server.close(1001, "demo over", timeout=1.0), 3.0)
        if self.proc is not None:
            with contextlib.suppress(asyncio.TimeoutError, ProcessLookupError):
                await asyncio.wait_for(self.proc.wait(), 5.0)


async def run_demo(args: argparse.Namespace, out: Output) -> int:
    """``heartbeat demo``: the tour, or as much of it as runs before SIGINT or SIGTERM."""
    del args
    if not hasattr(signal, "SIGSTOP"):
        return error("the demo freezes a client process with SIGSTOP, which needs a POSIX system")
    demo = _Demo(out)
    stop = asyncio.Event()
    got: list[str] = []
    install_stop(asyncio.get_running_loop(), stop, got)
    task = asyncio.ensure_future(demo.run())
    await first_completed(asyncio.shield(task), stop.wait())
    if task.done():
        return task.result()
    task.cancel()  # run() tears everything down (the frozen child included) on the way out
    with contextlib.suppress(asyncio.CancelledError):
        await task
    out.line()
    out.line(f"{got[0] if got else 'stop'}: demo interrupted, everything it started is stopped")
    return EXIT_OK
