"""Drive the real ``heartbeat`` command in subprocesses, with bounded waits everywhere."""

from __future__ import annotations

import json
import os
import queue
import shlex
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
    """The environment for ``python -m heartbeat_cli``: this checkout first on the path."""
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


def _control_c_as_in_a_terminal() -> None:
    """In the child, before it runs: SIGINT does what Control-C does in a reader's
    terminal. A test run started in the background (``make test &``, nohup) has SIGINT
    ignored, as POSIX shells do for background jobs; a child would inherit that, and
    Python keeps an ignored SIGINT ignored, so Control-C would stop nothing."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class Command:
    """``python -m heartbeat_cli ARGS...`` (or any ``argv``); stdout lines and stderr
    collected by threads."""

    def __init__(
        self, *args: str, argv: list[str] | None = None, env: dict[str, str] | None = None
    ) -> None:
        self.args = tuple(argv) if argv is not None else args
        self.started = time.monotonic()
        self.proc = subprocess.Popen(
            argv if argv is not None else [sys.executable, "-m", "heartbeat_cli", *args],
            cwd=ROOT,
            env=child_env(**(env or {})),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            preexec_fn=_control_c_as_in_a_terminal,  # noqa: PLW1509 (one syscall, no lock)
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


def as_written(command_line: str) -> Command:
    """A command line of the documentation, run from the checkout as a reader runs it:
    ``heartbeat`` is the command installed next to this Python (``pip install -e``
    installs it), ``python`` is this Python. Output is unbuffered, as in a terminal, where
    a reader sees each line when it is printed."""
    argv = shlex.split(command_line)
    if argv[0] == "heartbeat":
        script = Path(sys.executable).with_name("heartbeat")
        assert script.is_file(), f"no {script}: install the checkout (make .venv/.installed)"
        argv[0] = str(script)
    elif argv[0] == "python":
        argv[0] = sys.executable
    else:
        raise AssertionError(f"not a command the documentation runs: {command_line!r}")
    return Command(argv=argv, env={"PYTHONUNBUFFERED": "1"})


def start_server(*args: str) -> tuple[Command, int]:
    """``heartbeat serve --port 0 --log-format json ARGS``; returns it and its bound port."""
    server = Command("serve", "--port", "0", "--log-format", "json", *args)
    (listening,) = server.wait_for("listening")
    return server, int(listening["port"])
