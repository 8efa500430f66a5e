"""Drive the real ``heartbeat`` command in subprocesses, with bounded waits everywhere."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]

#: Generous bound for anything that takes milliseconds on an idle machine (the machine is
#: shared: other test runs load both cores).
SLACK = 15.0


def child_env(**extra: str) -> dict[str, str]:
    """The environment for ``python -m heartbeat_asyncio``: this checkout first on the path."""
    env = dict(os.environ)
    paths = [str(ROOT), str(ROOT / "adapters")]
    if env.get("PYTHONPATH"):
        paths.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env["NO_COLOR"] = "1"
    env.pop("COVERAGE_PROCESS_START", None)
    env.update(extra)
    return env


def free_port() -> int:
    """A port nobody listens on right now (bound to 0, read, released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Command:
    """``python -m heartbeat_asyncio ARGS...``; stdout lines and stderr collected by threads."""

    def __init__(self, *args: str) -> None:
        self.args = args
        self.started = time.monotonic()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "heartbeat_asyncio", *args],
            cwd=ROOT,
            env=child_env(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: list[str] = []
        self.stderr = ""
        self._new: queue.Queue[str | None] = queue.Queue()
        self._readers = [
            threading.Thread(target=self._read_stdout, daemon=True),
            threading.Thread(target=self._read_stderr, daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    def _read_stdout(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))
            self._new.put(line)
        self._new.put(None)

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        self.stderr = self.proc.stderr.read()

    # ------------------------------------------------------------------ reading

    def records(self) -> list[dict[str, Any]]:
        """Every stdout line so far, parsed as JSON (fails on a line that is not JSON)."""
        return [json.loads(line) for line in list(self.lines)]

    def events(self, name: str) -> list[dict[str, Any]]:
        return [r for r in self.records() if r.get("event") == name]

    def wait_for(self, name: str, timeout: float = SLACK, count: int = 1) -> list[dict[str, Any]]:
        """Wait until ``count`` JSON lines with ``"event": name`` were printed; return them."""
        end = time.monotonic() + timeout
        while True:
            found = self.events(name)
            if len(found) >= count:
                return found
            left = end - time.monotonic()
            if left <= 0:
                raise AssertionError(
                    f"no {count} {name!r} line(s) within {timeout} s from {self.args}: "
                    f"stdout {self.lines[-20:]}, stderr {self.stderr[-2000:]!r}"
                )
            try:
                if self._new.get(timeout=min(left, 0.5)) is None:
                    self._new.put(None)  # stdout closed: keep the marker for later waits
                    found = self.events(name)
                    if len(found) >= count:
                        return found
                    raise AssertionError(
                        f"{self.args} ended before {count} {name!r} line(s): "
                        f"stdout {self.lines[-20:]}, stderr {self.stderr[-2000:]!r}"
                    )
            except queue.Empty:
                pass

    def wait_text(self, fragment: str, timeout: float = SLACK) -> str:
        """Wait for a stdout line containing ``fragment``; return it."""
        end = time.monotonic() + timeout
        ended = False
        while True:
            for line in list(self.lines):
                if fragment in line:
                    return line
            left = end - time.monotonic()
            if left <= 0 or ended:
                raise AssertionError(
                    f"no line with {fragment!r} within {timeout} s"
                    f"{' (stdout closed)' if ended else ''}: stdout {self.lines[-30:]}, "
                    f"stderr {self.stderr[-2000:]!r}"
                )
            try:
                if self._new.get(timeout=min(left, 0.5)) is None:
                    self._new.put(None)  # stdout closed: every line is in self.lines
                    ended = True
            except queue.Empty:
                pass

    # ------------------------------------------------------------------ control

    def signal(self, sig: signal.Signals) -> None:
        self.proc.send_signal(sig)

    def finish(self, timeout: float = SLACK) -> int:
        """Wait for the exit (bounded) and for the readers; return the exit status."""
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(
                f"{self.args} did not exit within {timeout} s: stdout {self.lines[-20:]}"
            ) from None
        for reader in self._readers:
            reader.join(5.0)
        return code

    def kill(self) -> None:
        if self.proc.poll() is None:
            try:
                self.proc.send_signal(signal.SIGCONT)
                self.proc.kill()
            except ProcessLookupError:
                pass
            self.proc.wait(5.0)
        for reader in self._readers:
            reader.join(5.0)


def start_server(*args: str) -> tuple[Command, int]:
    """``heartbeat serve --port 0 --log-format json ARGS``; returns it and its bound port."""
    server = Command("serve", "--port", "0", "--log-format", "json", *args)
    (listening,) = server.wait_for("listening")
    return server, int(listening["port"])


class RawServer:
    """A TCP server in a thread that answers each connection with a canned reaction.

    ``mode="status:N"``: answers the upgrade with HTTP status N. ``mode="silent"``: completes
    the WebSocket handshake correctly, then never sends another byte (a frozen peer); it
    keeps reading so the client's frames never pile up.
    """

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.settimeout(0.2)
        self.port = int(self.sock.getsockname()[1])
        self._stop = threading.Event()
        self._conns: list[socket.socket] = []
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except (TimeoutError, OSError):
                continue
            self._conns.append(conn)
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        conn.settimeout(0.2)
        request = b""
        end = time.monotonic() + SLACK
        while b"\r\n\r\n" not in request and time.monotonic() < end:
            try:
                chunk = conn.recv(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            if not chunk:
                return
            request += chunk
        if self.mode.startswith("status:"):
            status = int(self.mode.split(":")[1])
            conn.sendall(
                b"HTTP/1.1 %d Nope\r\ncontent-length: 0\r\nconnection: close\r\n\r\n" % status
            )
            return
        key = b""
        for line in request.split(b"\r\n"):
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"sec-websocket-key":
                key = value.strip()
        accept = base64.b64encode(
            hashlib.sha1(key + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest()
        )
        conn.sendall(
            b"HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\n"
            b"connection: Upgrade\r\nsec-websocket-accept: " + accept + b"\r\n\r\n"
        )
        while not self._stop.is_set():  # read and ignore everything: never answer
            try:
                if not conn.recv(4096):
                    return
            except TimeoutError:
                continue
            except OSError:
                return

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5.0)
        self.sock.close()
        for conn in self._conns:
            conn.close()
