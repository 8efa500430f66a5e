"""Where a benchmark server's CPU goes under idle heartbeat load (py-spy sampling).

Starts one server and the load client (as the runner does), waits for the
warm-up, samples the server with ``py-spy record`` for ``--secs`` seconds, and
splits the non-idle samples by the module of the innermost Python frame
(self time) and by the packages on the stack (inclusive time). With the
server's CPU per ping round trip measured over the same window, each share is
also given in µs per round trip.

    python benchmarks/profile_server.py --server ours-asyncio --n 1000 [--secs 10]
"""

from __future__ import annotations

import argparse
import collections
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from procs import mark, proc_cpu, start_client, start_server  # noqa: E402
from servers import KINDS  # noqa: E402

__all__ = ["categorize", "main", "profile"]

_CATEGORIES = (
    ("wsproto", ("wsproto/",)),
    ("websockets", ("websockets/",)),
    ("aiohttp", ("aiohttp/",)),
    ("heartbeat_core", ("heartbeat_core/",)),
    ("heartbeat_asyncio", ("heartbeat_asyncio/",)),
    ("heartbeat_threading", ("heartbeat_threading/",)),
    ("benchmark server", ("benchmarks/",)),
    ("asyncio", ("asyncio/",)),
    ("selectors/socket/threading", ("selectors.py", "socket.py", "threading.py")),
)


def categorize(frame: str) -> str:
    """The category of one collapsed-stack frame ``func (path:line)``."""
    path = frame[frame.rfind("(") + 1 :]
    for name, markers in _CATEGORIES:
        for marker in markers:
            if path.startswith(marker) or "/" + marker in path:
                return name
    return "other"


def profile(
    kind: str,
    n: int,
    *,
    secs: float = 10.0,
    warmup: float = 3.0,
    busy: bool = False,
    rate: int = 250,
    top: int = 25,
    flame: str | None = None,
) -> str:
    """Sample one server under load; return the report as text."""
    pyspy = shutil.which("py-spy") or os.path.join(os.path.dirname(sys.executable), "py-spy")
    server, port = start_server(kind, 1.0, 5.0)
    client = None
    out = flame or tempfile.mktemp(suffix=".txt", prefix="pyspy-")
    try:
        client, _ = start_client(port, n, busy)
        time.sleep(warmup)
        m0, cpu0 = mark(client), proc_cpu(server.pid)
        subprocess.run(
            [
                *(pyspy, "record", "--pid", str(server.pid), "--duration", str(int(secs))),
                *("--rate", str(rate), "--format", "raw", "--output", out, "--nonblocking"),
            ],
            check=True,
            capture_output=True,
            timeout=secs + 60,
        )
        m1, cpu1 = mark(client), proc_cpu(server.pid)
    finally:
        if client is not None:
            client.kill()
        server.kill()
    pongs = m1["pongs"] - m0["pongs"]
    cpu = cpu1 - cpu0
    per_rt = cpu / pongs * 1e6 if pongs else 0.0
    self_time: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    functions: collections.Counter[str] = collections.Counter()
    total = 0
    with open(out, encoding="utf-8") as fh:
        for line in fh:
            stack, _, count_text = line.rstrip("\n").rpartition(" ")
            if not stack:
                continue
            count = int(count_text)
            frames = stack.split(";")
            total += count
            leaf = frames[-1]
            self_time[categorize(leaf)] += count
            functions[leaf] += count
            for cat in {categorize(f) for f in frames}:
                inclusive[cat] += count
    if not flame:
        os.unlink(out)
    total = max(total, 1)
    lines = [
        f"{kind}, N={n}{' busy' if busy else ''}: {cpu:.2f} s CPU in {secs:g} s, {pongs} pongs, "
        f"{per_rt:.1f} µs CPU per round trip; {total} py-spy samples at {rate} Hz",
        "",
        "self time by module of the innermost Python frame (system calls count for the "
        "frame that made them):",
    ]
    for cat, count in self_time.most_common():
        share = count / total
        lines.append(f"  {cat:28} {100 * share:5.1f} %  {share * per_rt:6.1f} µs/rt")
    lines += ["", "inclusive time (the package is anywhere on the stack):"]
    for cat, count in inclusive.most_common():
        share = count / total
        lines.append(f"  {cat:28} {100 * share:5.1f} %  {share * per_rt:6.1f} µs/rt")
    lines += ["", f"top {top} functions by self time:"]
    for func, count in functions.most_common(top):
        lines.append(f"  {100 * count / total:5.1f} %  {func[:140]}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--server", default="ours-asyncio", help=f"one of {KINDS} (or KIND@DIR)")
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--secs", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--busy", action="store_true")
    parser.add_argument("--rate", type=int, default=250, help="samples per second")
    parser.add_argument("--top", type=int, default=25, help="functions to list")
    parser.add_argument("--flame", help="also keep py-spy's collapsed stacks in this file")
    args = parser.parse_args(argv)
    print(
        profile(
            args.server,
            args.n,
            secs=args.secs,
            warmup=args.warmup,
            busy=args.busy,
            rate=args.rate,
            top=args.top,
            flame=args.flame,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
