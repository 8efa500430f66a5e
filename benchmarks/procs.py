"""Process control for the benchmarks: the server and load-client processes.

Starting and stopping a server (``servers.py``) and the load client
(``loadclient.py``), each in its own process and spoken to in lines over
stdin/stdout; the load client's ``MARK`` counters; CPU time, RSS, threads and
open file descriptors of a process from ``/proc``; waiting until the kernel has
released the previous measurement's sockets; optional CPU pinning. Nothing here
formats or writes results (``report.py``). The open-file limit is raised by
``loadclient.raise_nofile_limit``, which every benchmark process calls.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence

__all__ = [
    "PINNING",
    "Child",
    "connected_fields",
    "mark",
    "proc_cpu",
    "proc_fds",
    "proc_rss",
    "proc_threads",
    "proc_times",
    "settle",
    "start_client",
    "start_server",
    "tcp_sockets",
]


HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

_CLK_TCK = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")


# ----------------------------------------------------------------- /proc reads


def proc_cpu(pid: int) -> float:
    """utime + stime of a process (all its threads), in seconds."""
    return sum(proc_times(pid))


def proc_times(pid: int) -> tuple[float, float]:
    """(utime, stime) of a process (all its threads), in seconds."""
    with open(f"/proc/{pid}/stat", "rb") as fh:
        fields = fh.read().rsplit(b")", 1)[1].split()
    return int(fields[11]) / _CLK_TCK, int(fields[12]) / _CLK_TCK


def proc_rss(pid: int) -> int:
    """Resident set size of a process, in bytes."""
    with open(f"/proc/{pid}/statm", "rb") as fh:
        return int(fh.read().split()[1]) * _PAGE


def proc_tree(pid: int) -> list[int]:
    """``pid`` and its descendants (e.g. the workers of ``heartbeat serve --workers N``)."""
    children: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat", "rb") as fh:
                    ppid = int(fh.read().rsplit(b")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue  # (gone meanwhile)
            children.setdefault(ppid, []).append(int(name))
    tree, todo = [], [pid]
    while todo:
        tree.append(todo.pop())
        todo += children.get(tree[-1], [])
    return tree


def tree_times(pid: int) -> tuple[float, float]:
    """(utime, stime) summed over ``pid``'s process tree, in seconds."""
    times = [proc_times(p) for p in proc_tree(pid)]
    return sum(t[0] for t in times), sum(t[1] for t in times)


def tree_rss(pid: int) -> int:
    """RSS summed over ``pid``'s process tree, in bytes."""
    return sum(proc_rss(p) for p in proc_tree(pid))


def proc_threads(pid: int) -> int:
    with open(f"/proc/{pid}/stat", "rb") as fh:
        return int(fh.read().rsplit(b")", 1)[1].split()[17])


def proc_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def tcp_sockets() -> int:
    """TCP sockets the kernel holds (in use + orphaned), from ``/proc/net/sockstat``."""
    with open("/proc/net/sockstat") as fh:
        for line in fh:
            if line.startswith("TCP:"):
                fields = line.split()
                stat = dict(zip(fields[1::2], fields[2::2], strict=False))
                return int(stat.get("inuse", 0)) + int(stat.get("orphan", 0))
    return 0


def settle(baseline: int, max_wait: float = 15.0) -> float:
    """Wait until the kernel has released the previous measurement's sockets (at most
    ``max_wait`` seconds, then one more second of quiet); return the seconds waited."""
    t0 = time.monotonic()
    while tcp_sockets() > baseline + 64 and time.monotonic() - t0 < max_wait:
        time.sleep(0.1)
    time.sleep(1.0)
    return time.monotonic() - t0


# ------------------------------------------------------------------- processes


#: CPUs for (servers, load clients) with ``--pin``: the server under test and the load
#: client on separate CPUs, the same for every server. Off by default: on this project's
#: 2-CPU machines pinning made every server slower and the floor server fell behind its
#: schedule (cross-CPU wake-ups for every ping and pong), so the scheduler decides.
PINNING: tuple[set[int], set[int]] | None = None


class Child:
    """A child process spoken to in lines over stdin/stdout, with bounded waits."""

    def __init__(
        self,
        args: Sequence[str],
        env: dict[str, str] | None = None,
        cpus: set[int] | None = None,
    ) -> None:
        self.proc = subprocess.Popen(
            list(args),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=ROOT,
            env=env,
        )
        self.pid = self.proc.pid
        if cpus is not None:
            # Right after the spawn, before the interpreter has started: threads it makes
            # later inherit the pinning.
            os.sched_setaffinity(self.pid, cpus)
        self._buf = b""

    def readline(self, timeout: float) -> str:
        """The next stdout line; raises TimeoutError after ``timeout`` s, EOFError at exit."""
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no answer from pid {self.pid} within {timeout:g} s")
            ready, _, _ = select.select([fd], [], [], left)
            if ready:
                chunk = os.read(fd, 65536)
                if not chunk:
                    raise EOFError(f"pid {self.pid} exited: {self.stderr_tail()}")
                self._buf += chunk
        line, _, self._buf = self._buf.partition(b"\n")
        return line.decode()

    def send(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line.encode() + b"\n")
        self.proc.stdin.flush()

    def stderr_tail(self) -> str:
        if self.proc.poll() is None or self.proc.stderr is None:
            return ""
        return self.proc.stderr.read().decode(errors="replace")[-800:]

    def kill(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(OSError):
                os.kill(self.pid, signal.SIGCONT)
            self.proc.kill()
        self.proc.wait(timeout=30)
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()


#: ``heartbeat serve`` itself (JSON log without the line per heartbeat, no dashboard, no
#: metrics, the standard loop), with one worker or two (``--workers 2``: a supervisor and two
#: processes on one port).
CLI_KINDS = {"ours-cli": 1, "ours-cli-workers2": 2}


def start_server(kind: str, interval: float, timeout: float) -> tuple[Child, int]:
    """Start a server process. ``KIND@DIR`` runs KIND with the packages of another
    checkout in DIR (its root and ``adapters/`` first on ``PYTHONPATH``), to measure a
    change side by side with the original."""
    kind, _, tree = kind.partition("@")
    env = None
    if tree:
        env = dict(os.environ)
        paths = [tree, os.path.join(tree, "adapters"), env.get("PYTHONPATH", "")]
        env["PYTHONPATH"] = os.pathsep.join(p for p in paths if p)
    if kind in CLI_KINDS:
        return _start_cli(CLI_KINDS[kind], interval, timeout, env)
    server = Child(
        [
            sys.executable,
            os.path.join(HERE, "servers.py"),
            "--kind",
            kind,
            "--interval",
            str(interval),
            "--timeout",
            str(timeout),
        ],
        env=env,
        cpus=PINNING[0] if PINNING else None,
    )
    try:
        line = server.readline(30.0)
    except (TimeoutError, EOFError):
        server.kill()
        raise
    if not line.startswith("READY "):
        server.kill()
        raise RuntimeError(f"{kind} server said {line!r} instead of READY")
    return server, int(line.split()[1])


def _start_cli(
    workers: int, interval: float, timeout: float, env: dict[str, str] | None
) -> tuple[Child, int]:
    """``heartbeat serve`` on a free port; ready at its ``workers`` (or ``listening``) line.
    Its stdout is not read after that: the command drops log lines nobody reads."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = dict(env or os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (env.get("PYTHONPATH", ""), ROOT, os.path.join(ROOT, "adapters")) if p
    )
    args = [sys.executable, "-m", "heartbeat_cli", "serve", "--port", str(port)]
    args += ["--interval", str(interval), "--timeout", str(timeout), "--mode", "protocol"]
    args += ["--log-format", "json", "--no-rtt-log", "--no-dashboard", "--no-metrics"]
    args += ["--loop", "asyncio"]
    args += ["--workers", str(workers)]
    server = Child(args, env=env, cpus=PINNING[0] if PINNING else None)
    ready = '"event":"workers"' if workers > 1 else '"event":"listening"'
    try:
        while ready not in server.readline(30.0):
            pass
    except (TimeoutError, EOFError):
        server.kill()
        raise
    return server, port


def start_client(
    port: int, n: int, busy: bool, *, spread: float | None = None
) -> tuple[Child, str]:
    """Start the load client; return it once every connection is open (its CONNECTED
    line). ``spread``: start the connections over at least this long (``None``: the
    client's default; 0: as fast as it can)."""
    args = [sys.executable, os.path.join(HERE, "loadclient.py"), "--port", str(port)]
    args += ["--n", str(n), "--connect-timeout", str(20.0 + n / 200)]
    if spread is not None:
        args += ["--spread", str(spread)]
    if busy:
        args.append("--busy")
    client = Child(args, cpus=PINNING[1] if PINNING else None)
    try:
        line = client.readline(30.0 + n / 200)
    except (TimeoutError, EOFError):
        client.kill()
        raise
    if not line.startswith("CONNECTED"):
        client.kill()
        raise RuntimeError(f"load client said {line!r}")
    return client, line


def mark(client: Child) -> dict[str, float]:
    client.send("MARK")
    line = client.readline(10.0)
    if not line.startswith("MARK "):
        raise RuntimeError(f"load client said {line!r} instead of MARK")
    result: dict[str, float] = json.loads(line[5:])
    return result


def connected_fields(line: str) -> dict[str, str]:
    return dict(part.split("=", 1) for part in line.split()[1:] if "=" in part)
