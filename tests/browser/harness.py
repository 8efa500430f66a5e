"""Harness of the browser tests: Chromium and playwright-core installed on demand, and a
line-RPC driver for the browser (the raw-socket peers are in ``tests.support.peers``)."""

from __future__ import annotations

import json
import os
import queue
import shutil
import subprocess
import threading
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
NODE_DIR = HERE / "node"
ROOT = HERE.parents[1]
CHROMIUM = Path(os.environ.get("HEARTBEAT_CHROMIUM", "/usr/bin/chromium"))
#: Bound on the one-time installs (apt-get update, apt-get install, npm ci), each.
INSTALL_TIMEOUT = 300.0


def _run(command: list[str], timeout: float, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command, capture_output=True, text=True, timeout=timeout, check=False, **kwargs
    )


def ensure_chromium() -> str | None:
    """Install Debian's ``chromium`` when it is missing and we may (root, apt-get).

    Returns ``None`` when Chromium is there, else why it cannot be had (a skip reason).
    """
    if CHROMIUM.exists():
        return None
    apt = shutil.which("apt-get")
    if apt is None:
        return f"Chromium is not at {CHROMIUM} and there is no apt-get to install it"
    if os.geteuid() != 0:
        return (
            f"Chromium is not at {CHROMIUM} and installing it needs root: "
            "run `sudo apt-get install chromium` once"
        )
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    try:
        update = _run([apt, "update", "-q"], INSTALL_TIMEOUT, env=env)
        if update.returncode != 0:
            return f"`apt-get update` failed ({update.returncode}): {update.stderr[-500:]}"
        install = _run(
            [apt, "install", "-y", "-q", "--no-install-recommends", "chromium"],
            INSTALL_TIMEOUT,
            env=env,
        )
    except subprocess.TimeoutExpired as exc:
        return f"installing Chromium took over {INSTALL_TIMEOUT:g} s: {exc.cmd}"
    if install.returncode != 0:
        return f"`apt-get install chromium` failed ({install.returncode}): {install.stderr[-500:]}"
    if not CHROMIUM.exists():
        return f"`apt-get install chromium` succeeded but {CHROMIUM} is still missing"
    return None


def ensure_playwright() -> tuple[str | None, str | None]:
    """``(node, None)`` with playwright-core installed in tests/browser/node (``npm ci``),
    or ``(None, reason)``."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        return None, "the browser test drives Chromium from Node: `node` and `npm` are needed"
    if (NODE_DIR / "node_modules" / "playwright-core" / "package.json").exists():
        return node, None
    try:
        done = _run(
            [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
            INSTALL_TIMEOUT,
            cwd=NODE_DIR,
            env=dict(os.environ, PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD="1"),
        )
    except subprocess.TimeoutExpired:
        return None, f"`npm ci` in {NODE_DIR} took over {INSTALL_TIMEOUT:g} s"
    if done.returncode != 0:
        raise RuntimeError(
            f"`npm ci` in {NODE_DIR} failed ({done.returncode}): {done.stderr[-2000:]}; "
            "the npm registry must be reachable to install playwright-core"
        )
    return node, None


class BrowserError(AssertionError):
    """A browser step failed or timed out."""


class Browser:
    """Chromium driven through ``node/driver.js``: every call is bounded by a timeout."""

    def __init__(self, node: str, user_data_dir: Path) -> None:
        self.page_errors: list[dict[str, Any]] = []
        self.console: list[dict[str, Any]] = []
        self._replies: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._next = 0
        self._stderr: list[str] = []
        env = {k: v for k, v in os.environ.items() if not k.startswith("NODE_")}
        self.proc = subprocess.Popen(
            [node, str(NODE_DIR / "driver.js"), str(user_data_dir)],
            cwd=NODE_DIR,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        threading.Thread(target=self._read_stdout, daemon=True).start()
        threading.Thread(target=self._read_stderr, daemon=True).start()
        ready = self._reply(30.0, "Chromium to start")
        if ready.get("event") != "ready":
            raise BrowserError(f"the driver did not start: {ready}")
        self.version = ready.get("version")

    def _read_stdout(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if record.get("event") == "pageerror":
                self.page_errors.append(record)
            elif record.get("event") == "console":
                self.console.append(record)
            else:
                self._replies.put(record)
        self._replies.put(None)

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self._stderr.append(line)

    def _reply(self, timeout: float, what: str) -> dict[str, Any]:
        try:
            record = self._replies.get(timeout=timeout)
        except queue.Empty:
            raise BrowserError(f"no answer from the browser within {timeout:g} s: {what}") from None
        if record is None:
            self._replies.put(None)
            stderr = "".join(self._stderr)[-2000:]
            raise BrowserError(f"the browser driver exited while waiting for {what}: {stderr}")
        return record

    def call(self, op: str, timeout: float = 20.0, **args: Any) -> Any:
        self._next += 1
        request = {"id": self._next, "op": op, **args}
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        reply = self._reply(timeout + 5.0, f"{op} {args}")
        if reply.get("id") != self._next:
            raise BrowserError(f"out-of-order reply {reply} to {request}")
        if not reply.get("ok"):
            raise BrowserError(f"{op} failed: {reply.get('error')}")
        return reply.get("value")

    def new_page(self, width: int = 1100, height: int = 820) -> int:
        return int(self.call("newPage", width=width, height=height))

    def evaluate(self, page: int, expr: str, timeout: float = 20.0) -> Any:
        return self.call("evaluate", timeout=timeout, page=page, expr=expr)

    def wait_for(self, page: int, expr: str, timeout: float) -> Any:
        """Wait until ``expr`` (a JS expression) is truthy in ``page``; return its value."""
        ms = int(timeout * 1000)
        return self.call("waitFor", timeout=timeout, page=page, expr=expr, timeout_ms=ms)

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                assert self.proc.stdin is not None
                self.proc.stdin.write('{"op":"quit"}\n')
                self.proc.stdin.flush()
                self.proc.wait(10.0)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait(5.0)
