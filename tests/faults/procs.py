"""A fault-test server in its own process (``server_process.py``), measured from outside:
resident memory, bytes it read, CPU time, and the verdicts it printed. Every wait is
bounded; the process is ended by its own pid."""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

SERVER = str(Path(__file__).with_name("server_process.py"))
_TICK = os.sysconf("SC_CLK_TCK")


class ServerProcess:
    """``server_process.py ADAPTER 127.0.0.1 INTERVAL TIMEOUT LIFETIME``, started and
    listening (``port``)."""

    def __init__(self, adapter: str, interval: float, timeout: float, lifetime: float) -> None:
        argv = [sys.executable, SERVER, adapter, "127.0.0.1", str(interval), str(timeout)]
        self.proc = subprocess.Popen(
            [*argv, str(lifetime)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        assert self.proc.stdout is not None
        os.set_blocking(self.proc.stdout.fileno(), False)
        self._sel = selectors.DefaultSelector()
        self._sel.register(self.proc.stdout, selectors.EVENT_READ)
        self._buf = b""
        self.lines: list[dict[str, Any]] = []
        end = time.monotonic() + 20
        while not any("port" in line for line in self.lines):
            if time.monotonic() > end or self.proc.poll() is not None:
                raise RuntimeError("the server process did not start listening")
            self.pump(0.1)
        self.port: int = next(line["port"] for line in self.lines if "port" in line)

    def pump(self, timeout: float = 0.0) -> None:
        """Read the JSON lines printed so far (waiting at most ``timeout``)."""
        if not self._sel.select(timeout):
            return
        assert self.proc.stdout is not None
        self._buf += self.proc.stdout.read() or b""
        *whole, self._buf = self._buf.split(b"\n")
        self.lines += [json.loads(line) for line in whole if line.strip()]

    def events(self, name: str) -> list[dict[str, Any]]:
        self.pump()
        return [line for line in self.lines if line.get("event") == name]

    def _proc(self, name: str) -> str:
        with open(f"/proc/{self.proc.pid}/{name}") as f:
            return f.read()

    def rss_kib(self) -> int:
        for line in self._proc("status").splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise AssertionError("no VmRSS")  # pragma: no cover

    def bytes_read(self) -> int:
        """Bytes the process has read (``rchar``: sockets included)."""
        for line in self._proc("io").splitlines():
            if line.startswith("rchar:"):
                return int(line.split()[1])
        raise AssertionError("no rchar")  # pragma: no cover

    def cpu_seconds(self) -> float:
        fields = self._proc("stat").rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / _TICK  # utime + stime

    def stop(self) -> None:
        with contextlib.suppress(OSError):
            assert self.proc.stdin is not None
            self.proc.stdin.close()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        self._sel.close()
        assert self.proc.stdout is not None
        self.proc.stdout.close()


@contextlib.contextmanager
def server_process(
    adapter: str, interval: float, timeout: float, lifetime: float = 60.0
) -> Iterator[ServerProcess]:
    server = ServerProcess(adapter, interval, timeout, lifetime)
    try:
        yield server
    finally:
        server.stop()
