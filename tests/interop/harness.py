"""Plumbing for the interop tests: loops in threads, event recorders, our two adapters
behind one blocking interface, and Node child processes.

Every wait here is bounded: each helper takes a timeout and raises ``TimeoutError``
(with what it was waiting for) when it runs out.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from heartbeat_core import (
    Closed,
    ConnectionClosedError,
    HeartbeatConfig,
    HeartbeatStats,
    PeerDead,
    RttSample,
)

__all__ = [
    "NODE_DIR",
    "AdapterShim",
    "LoopThread",
    "NodeProcess",
    "OurClient",
    "OurServer",
    "Recorder",
    "ECHO_SAMPLES",
    "assert_echoes",
    "assert_plausible_rtts",
    "node_tools",
    "prepare_node",
    "rtt_summary",
]

T = TypeVar("T")

NODE_DIR = Path(__file__).resolve().parent / "node"

#: Generous upper bound for anything that should take milliseconds on loopback.
SLACK = 10.0


# --------------------------------------------------------------------------- loops


class LoopThread:
    """An asyncio event loop running in a daemon thread; coroutines are submitted to it."""

    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._main, name=name, daemon=True)
        self._thread.start()

    def _main(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = SLACK) -> T:
        """Run ``coro`` on the loop and wait for its result (at most ``timeout`` seconds)."""
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return future.result(timeout)
        except TimeoutError:
            future.cancel()
            raise

    def spawn(self, coro: Coroutine[Any, Any, T]) -> Any:
        """Start ``coro`` on the loop without waiting; returns a concurrent Future."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def call(self, fn: Callable[[], T], timeout: float = SLACK) -> T:
        """Call ``fn()`` on the loop's thread (to read state owned by the loop)."""

        async def _call() -> T:
            return fn()

        return self.run(_call(), timeout)

    def stop(self) -> None:
        """Cancel what is left on the loop, stop it and join the thread (bounded)."""
        if self.loop.is_closed():
            return

        async def _cancel_all() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            if tasks:
                await asyncio.wait(tasks, timeout=5.0)

        with contextlib.suppress(Exception):
            self.run(_cancel_all(), timeout=6.0)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5.0)
        if not self._thread.is_alive():
            self.loop.close()


# ------------------------------------------------------------------------ recorder


@dataclass
class Recorder:
    """Thread-safe log of ``(monotonic time, connection, event)`` from an ``on_event`` hook."""

    entries: list[tuple[float, object, object]] = field(default_factory=list)
    _cond: threading.Condition = field(default_factory=threading.Condition)

    def __call__(self, conn: object, event: object) -> None:
        with self._cond:
            self.entries.append((time.monotonic(), conn, event))
            self._cond.notify_all()

    def events(self, kind: type[T]) -> list[T]:
        with self._cond:
            return [e for _, _, e in self.entries if isinstance(e, kind)]

    def wait_for(self, kind: type[T], timeout: float, count: int = 1) -> list[T]:
        """Wait until ``count`` events of ``kind`` were recorded; return them all."""
        end = time.monotonic() + timeout
        with self._cond:
            while True:
                found = [e for _, _, e in self.entries if isinstance(e, kind)]
                if len(found) >= count:
                    return found
                left = end - time.monotonic()
                if left <= 0:
                    raise TimeoutError(
                        f"timed out after {timeout} s waiting for {count} {kind.__name__} "
                        f"event(s); saw {[type(e).__name__ for _, _, e in self.entries]}"
                    )
                self._cond.wait(left)

    @property
    def rtts(self) -> list[float]:
        return [e.rtt for e in self.events(RttSample)]

    @property
    def dead(self) -> list[PeerDead]:
        return self.events(PeerDead)

    @property
    def closed(self) -> list[Closed]:
        return self.events(Closed)


# ------------------------------------------------------------------ our adapters


class OurClient:
    """One of our client connections, behind a blocking interface."""

    def __init__(self, conn: Any, loop: LoopThread | None) -> None:
        self.conn = conn
        self._loop = loop

    def _read(self, fn: Callable[[], T]) -> T:
        return fn() if self._loop is None else self._loop.call(fn)

    def _do(self, make: Callable[[], Awaitable[T]], blocking: Callable[[], T], timeout: float) -> T:
        if self._loop is None:
            return blocking()

        async def _go() -> T:
            return await asyncio.wait_for(make(), timeout)

        return self._loop.run(_go(), timeout + 1.0)

    @property
    def stats(self) -> HeartbeatStats:
        return self._read(lambda: self.conn.stats)

    @property
    def latency(self) -> float | None:
        return self._read(lambda: self.conn.latency)

    @property
    def close_code(self) -> int | None:
        return self._read(lambda: self.conn.close_code)

    @property
    def close_reason(self) -> str | None:
        return self._read(lambda: self.conn.close_reason)

    @property
    def closed_by(self) -> str | None:
        return self._read(lambda: self.conn.closed_by)

    def send(self, data: str | bytes) -> None:
        self._do(lambda: self.conn.send(data), lambda: self.conn.send(data), SLACK)

    def recv(self, timeout: float = SLACK) -> str | bytes:
        return self._do(self.conn.recv, lambda: self.conn.recv(timeout=timeout), timeout)

    def ping(self, timeout: float = SLACK) -> float:
        return self._do(self.conn.ping, lambda: self.conn.ping(timeout=timeout), timeout)

    def close(self, code: int = 1000, reason: str = "") -> None:
        self._do(
            lambda: self.conn.close(code, reason), lambda: self.conn.close(code, reason), SLACK
        )


class OurServer:
    """One of our servers (echoing every message), behind a blocking interface."""

    def __init__(self, server: Any, recorder: Recorder, loop: LoopThread | None) -> None:
        self.server = server
        self.recorder = recorder
        self._loop = loop

    @property
    def port(self) -> int:
        return int(self.server.port)

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/"

    @property
    def open_connections(self) -> int:
        if self._loop is None:
            return len(self.server.connections)
        return self._loop.call(lambda: len(self.server.connections))

    def connection_stats(self) -> list[HeartbeatStats]:
        """The heartbeat stats of every open connection."""
        if self._loop is None:
            return [c.stats for c in self.server.connections]
        return self._loop.call(lambda: [c.stats for c in self.server.connections])

    def close(self) -> None:
        if self._loop is None:
            self.server.close(timeout=5.0)
        else:
            self._loop.run(self.server.close(timeout=5.0), SLACK)


async def _echo_async(conn: Any) -> None:
    with contextlib.suppress(ConnectionClosedError):
        async for message in conn:
            await conn.send(message)


def _echo_blocking(conn: Any) -> None:
    with contextlib.suppress(ConnectionClosedError):
        for message in conn:
            conn.send(message)


class AdapterShim:
    """``heartbeat_asyncio`` or ``heartbeat_threading`` behind one blocking interface.

    The asyncio adapter runs on its own event loop in a thread (separate from the peers'
    loop), so every test body is plain blocking code for both adapters.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self._loop: LoopThread | None = None
        self._clients: list[OurClient] = []
        self._servers: list[OurServer] = []
        if name == "asyncio":
            import heartbeat_asyncio

            self.module: Any = heartbeat_asyncio
            self._loop = LoopThread("ours-asyncio")
        else:
            import heartbeat_threading

            self.module = heartbeat_threading

    def connect(
        self, uri: str, config: HeartbeatConfig, recorder: Recorder, **kwargs: Any
    ) -> OurClient:
        connect = self.module.connect
        if self._loop is None:
            conn = connect(uri, config=config, on_event=recorder, open_timeout=SLACK, **kwargs)
        else:

            async def _connect() -> Any:
                return await connect(
                    uri, config=config, on_event=recorder, open_timeout=SLACK, **kwargs
                )

            conn = self._loop.run(_connect(), SLACK + 1.0)
        client = OurClient(conn, self._loop)
        self._clients.append(client)
        return client

    def serve(self, config: HeartbeatConfig, **kwargs: Any) -> OurServer:
        recorder = Recorder()
        serve = self.module.serve
        if self._loop is None:
            server = serve(
                _echo_blocking, "127.0.0.1", 0, config=config, on_event=recorder, **kwargs
            )
        else:

            async def _serve() -> Any:
                return await serve(
                    _echo_async, "127.0.0.1", 0, config=config, on_event=recorder, **kwargs
                )

            server = self._loop.run(_serve(), SLACK)
        ours = OurServer(server, recorder, self._loop)
        self._servers.append(ours)
        return ours

    def shutdown(self) -> None:
        """Close every client and server this shim made (errors ignored), then stop the loop."""
        for client in self._clients:
            with contextlib.suppress(Exception):
                if client.close_code is None:
                    client.close()
        for server in self._servers:
            with contextlib.suppress(Exception):
                server.close()
        if self._loop is not None:
            self._loop.stop()


# ---------------------------------------------------------------------------- Node


def node_tools() -> tuple[str, str] | None:
    """Paths of ``node`` and ``npm``, or None when either is missing."""
    node, npm = shutil.which("node"), shutil.which("npm")
    return (node, npm) if node and npm else None


def prepare_node(npm: str) -> None:
    """Install ``ws`` into ``node/node_modules`` with ``npm ci`` unless it is there already.

    Bounded by 120 s; raises ``RuntimeError`` saying what went wrong when npm fails.
    """
    if (NODE_DIR / "node_modules" / "ws" / "package.json").exists():
        return
    command = [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"]
    try:
        done = subprocess.run(
            command, cwd=NODE_DIR, capture_output=True, text=True, timeout=120, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise RuntimeError(f"`npm ci` in {NODE_DIR} took over 120 s") from exc
    if done.returncode != 0:
        raise RuntimeError(
            f"`npm ci` in {NODE_DIR} failed ({done.returncode}): {done.stderr[-2000:]}; "
            "the npm registry must be reachable to install `ws`"
        )


class NodeProcess:
    """A Node script from ``node/`` whose stdout is JSON lines, collected by a thread."""

    def __init__(self, node: str, script: str, env: dict[str, str]) -> None:
        self.lines: list[dict[str, Any]] = []
        self.stderr: list[str] = []
        self._cond = threading.Condition()
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("NODE_")}
        full_env.update(env)
        self.proc = subprocess.Popen(
            [node, script],
            cwd=NODE_DIR,
            env=full_env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self._threads = [
            threading.Thread(target=self._read_stdout, daemon=True),
            threading.Thread(target=self._read_stderr, daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def _read_stdout(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            try:
                record = json.loads(line)
            except ValueError:
                record = {"event": "junk", "line": line}
            with self._cond:
                self.lines.append(record)
                self._cond.notify_all()
        with self._cond:
            self.lines.append({"event": "exit"})
            self._cond.notify_all()

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.stderr.append(line)

    def records(
        self, event: str, where: Callable[[dict[str, Any]], bool] | None = None
    ) -> list[dict[str, Any]]:
        """The records with this ``event`` (and matching ``where``) so far."""
        with self._cond:
            return [
                r for r in self.lines if r.get("event") == event and (where is None or where(r))
            ]

    def wait_for(
        self,
        event: str,
        timeout: float,
        count: int = 1,
        where: Callable[[dict[str, Any]], bool] | None = None,
    ) -> list[dict[str, Any]]:
        """Wait until ``count`` records with this ``event`` (matching ``where``) arrived;
        return them all. Gives up early, with the output so far, if the process exits."""
        end = time.monotonic() + timeout
        with self._cond:
            while True:
                found = [
                    r for r in self.lines if r.get("event") == event and (where is None or where(r))
                ]
                if len(found) >= count:
                    return found
                left = end - time.monotonic()
                exited = any(r.get("event") == "exit" for r in self.lines)
                if left <= 0 or exited:
                    raise TimeoutError(
                        f"waited {timeout} s for {count} {event!r} record(s) from the Node peer"
                        f"{' (it exited)' if exited else ''}; got {self.lines[-20:]}; "
                        f"stderr: {''.join(self.stderr)[-2000:]}"
                    )
                self._cond.wait(left)

    def stop(self) -> None:
        """Terminate the process (kill after 5 s) and join the reader threads."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5.0)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5.0)
        for thread in self._threads:
            thread.join(5.0)
        for pipe in (self.proc.stdout, self.proc.stderr):
            if pipe is not None:
                pipe.close()


#: Messages every echo check sends: text, binary, and a large text (fragmented by some peers).
ECHO_SAMPLES: tuple[str | bytes, ...] = ("hello", b"\x00\xff" * 1000, "h\u00e9" * 100_000)


def assert_echoes(send: Callable[[str | bytes], None], recv: Callable[[], str | bytes]) -> None:
    """Each of :data:`ECHO_SAMPLES` comes back unchanged, with its type."""
    for sample in ECHO_SAMPLES:
        send(sample)
        echoed = recv()
        assert type(echoed) is type(sample)
        assert echoed == sample


def rtt_summary(rtts: list[float]) -> dict[str, float | int]:
    """Count, min, median and max of RTT samples, in milliseconds (for the figures)."""
    if not rtts:
        return {"n": 0}
    ordered = sorted(rtts)
    return {
        "n": len(ordered),
        "min_ms": round(ordered[0] * 1000, 3),
        "median_ms": round(ordered[len(ordered) // 2] * 1000, 3),
        "max_ms": round(ordered[-1] * 1000, 3),
    }


def assert_plausible_rtts(rtts: list[float], srtt: float | None) -> None:
    """Loopback RTTs: every sample positive; the smoothed one and the median under 0.5 s."""
    assert rtts, "no RTT sample was taken"
    assert all(r > 0 for r in rtts), (
        f"RTT samples of 0 or less: {rtts}. A loopback round trip takes a fraction of a "
        "millisecond, never 0: the heartbeat was stamped later than it was really sent "
        "(e.g. a driver fired a timer before its deadline and handed the core the deadline "
        "as `now`), so every RTT is understated by that much"
    )
    assert sorted(rtts)[len(rtts) // 2] < 0.5, rtts
    assert srtt is not None
    assert 0 < srtt < 0.5, srtt
