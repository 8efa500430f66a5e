"""Run the heartbeat benchmarks side by side and write the results (``make bench``).

Every measurement starts one server (``servers.py``) and one load client
(``loadclient.py``), each in its own process, on 127.0.0.1:

* **idle**: N connections, heartbeat interval 1 s (timeout 5 s); after a
  warm-up, a window of ``--window`` seconds in which the server's CPU
  (utime + stime from ``/proc/<pid>/stat``) is divided by the pongs the load
  client sent, RSS growth is divided by N, and the pings the client received
  per second are compared with N / interval.
* **busy**: the same with every connection also sending a small text frame
  every 0.5 s, which every server echoes: how many heartbeat pings the server
  still sends, and its CPU per echoed message.
* **handshake**: N connections opened as fast as the load client can, with
  heartbeats far off: the server's CPU per opening handshake (from before the
  first connection until the last is open, divided by N) and the time the N
  connections took.
* **detect**: N connections (interval 1 s, timeout 1 s), then the load client
  is frozen with SIGSTOP; the server's open file descriptors are counted every
  few milliseconds until every connection is released.
* **core**: the sans-IO micro-benchmark (``bench_core.py``).

Repeats are interleaved across servers, in a different (seeded) order each
repeat, so that no server always runs right after the same one; before each
measurement the previous one's sockets must be gone (``settle``), so that the
kernel's clean-up is not charged to the next server. Results: a JSON file in
``benchmarks/results/`` and, for the full run, the Markdown page
``docs/benchmarks-results.md``.

This module is the command line and the sequence of measurements; the
processes are started and read by ``procs.py``, the results summarized and
written by ``report.py`` (the Markdown page: ``results_page.py``).

    python benchmarks/run.py            # the full run (about 33 minutes)
    python benchmarks/run.py --quick    # a smoke run (about 2 minutes)
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import statistics
import sys
import time
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

import bench_core  # noqa: E402
import procs  # noqa: E402
from loadclient import raise_nofile_limit  # noqa: E402
from procs import (  # noqa: E402
    Child,
    connected_fields,
    mark,
    proc_fds,
    proc_threads,
    settle,
    start_client,
    start_server,
    tcp_sockets,
    tree_rss,
    tree_times,
)
from profile_server import profile  # noqa: E402
from report import brief, git_state, log, machine_info, versions, write_results  # noqa: E402
from servers import KINDS  # noqa: E402

__all__ = ["main"]

# ------------------------------------------------------------------- scenarios


def measure_load(
    kind: str, n: int, *, busy: bool, window: float, warmup: float, interval: float, timeout: float
) -> dict[str, Any]:
    """One idle or busy measurement (see the module docstring)."""
    server, port = start_server(kind, interval, timeout)
    client: Child | None = None
    try:
        time.sleep(0.2)
        rss0 = tree_rss(server.pid)
        client, line = start_client(port, n, busy)
        connected = connected_fields(line)
        time.sleep(warmup)
        m0 = mark(client)
        user0, sys0 = tree_times(server.pid)
        time.sleep(window)
        m1 = mark(client)
        user1, sys1 = tree_times(server.pid)  # (every process of the server)
        rss1 = tree_rss(server.pid)
        threads = proc_threads(server.pid)
    finally:
        if client is not None:
            client.kill()
        server.kill()
    elapsed = m1["t"] - m0["t"]
    user, system = user1 - user0, sys1 - sys0
    cpu = user + system
    pongs = m1["pongs"] - m0["pongs"]
    pings = m1["pings"] - m0["pings"]
    texts = m1["texts_sent"] - m0["texts_sent"]
    echoes = m1["echoes"] - m0["echoes"]
    opened = int(connected.get("opened", 0))
    return {
        "scenario": "busy" if busy else "idle",
        "server": kind,
        "n": n,
        "opened": opened,
        "connect_secs": float(connected.get("secs", "nan")),
        "window_secs": elapsed,
        "server_cpu_secs": cpu,
        "cpu_percent": 100 * cpu / elapsed,
        "pings_per_sec": pings / elapsed,
        "pongs_per_sec": pongs / elapsed,
        "expected_pings_per_sec": n / interval,
        "cpu_us_per_round_trip": (cpu / pongs * 1e6) if pongs else None,
        "user_us_per_round_trip": (user / pongs * 1e6) if pongs else None,
        "sys_us_per_round_trip": (system / pongs * 1e6) if pongs else None,
        "texts_per_sec": texts / elapsed,
        "echoes_per_sec": echoes / elapsed,
        "cpu_us_per_message": (cpu / echoes * 1e6) if echoes else None,
        "rss_kb_per_connection": (rss1 - rss0) / 1024 / max(opened, 1),
        "rss_mb": rss1 / 2**20,
        "server_threads": threads,
        "closed_by_server": m1["closed"],
        "client_cpu_percent": 100 * (m1["cpu"] - m0["cpu"]) / elapsed,
    }


def measure_handshakes(kind: str, n: int) -> dict[str, Any]:
    """The opening handshake: N connections opened as fast as the load client can (no
    spread), heartbeats far off (interval 60 s); the server's CPU from before the first
    connection until the last is open, divided by N (accepting the TCP connection, the
    upgrade, the 101, and whatever a server sets up per connection)."""
    server, port = start_server(kind, 60.0, 5.0)
    client: Child | None = None
    try:
        time.sleep(0.2)
        user0, sys0 = tree_times(server.pid)
        client, line = start_client(port, n, busy=False, spread=0.0)
        user1, sys1 = tree_times(server.pid)
    finally:
        if client is not None:
            client.kill()
        server.kill()
    connected = connected_fields(line)
    opened = int(connected.get("opened", 0))
    user, system = user1 - user0, sys1 - sys0
    return {
        "scenario": "handshake",
        "server": kind,
        "n": n,
        "opened": opened,
        "connect_secs": float(connected.get("secs", "nan")),
        "server_cpu_secs": user + system,
        "cpu_us_per_handshake": (user + system) / opened * 1e6 if opened else None,
        "user_us_per_handshake": user / opened * 1e6 if opened else None,
        "sys_us_per_handshake": system / opened * 1e6 if opened else None,
    }


def measure_detection(
    kind: str, n: int, *, interval: float, timeout: float, warmup: float, max_wait: float
) -> dict[str, Any]:
    """Freeze the load client; time until the server releases each connection's socket."""
    server, port = start_server(kind, interval, timeout)
    client: Child | None = None
    releases: list[float] = []
    try:
        time.sleep(0.2)
        base = proc_fds(server.pid)
        client, _ = start_client(port, n, busy=False)
        time.sleep(warmup)
        open_before = proc_fds(server.pid) - base
        os.kill(client.pid, signal.SIGSTOP)
        t0 = time.monotonic()
        remaining = open_before
        while remaining > 0 and time.monotonic() - t0 < max_wait:
            now_open = proc_fds(server.pid) - base
            if now_open < remaining:
                releases.extend([time.monotonic() - t0] * (remaining - now_open))
                remaining = now_open
            time.sleep(0.005)
    finally:
        if client is not None:
            client.kill()
        server.kill()
    result: dict[str, Any] = {
        "scenario": "detect",
        "server": kind,
        "n": n,
        "interval": interval,
        "timeout": timeout,
        "open_at_freeze": open_before,
        "released": len(releases),
        "not_released_within": max_wait if remaining > 0 else None,
        "target_secs": interval + timeout + 0.05,
    }
    if releases:
        releases.sort()
        result.update(
            min=releases[0],
            median=statistics.median(releases),
            p99=releases[min(len(releases) - 1, int(0.99 * len(releases)))],
            max=releases[-1],
        )
    return result


# --------------------------------------------------------------------- running


def run_all(args: argparse.Namespace, json_path: str, md_path: str | None) -> dict[str, Any]:
    """Run every scenario; the files are rewritten after each measurement (partial results
    survive an interrupted run)."""
    servers = [s for s in args.servers.split(",") if s]
    for s in servers:
        if s.partition("@")[0] not in KINDS:
            raise SystemExit(f"unknown server {s!r}: choose from {', '.join(KINDS)}")
    results: list[dict[str, Any]] = []
    report: dict[str, Any] = {
        "command": " ".join([os.path.relpath(sys.executable, ROOT), *sys.argv]),
        "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": machine_info(),
        "versions": versions(),
        "git": git_state(),
        "settings": {k: v for k, v in vars(args).items() if k not in ("json", "md", "no_core")},
        "pinning": (
            {"server_cpus": sorted(procs.PINNING[0]), "client_cpus": sorted(procs.PINNING[1])}
            if procs.PINNING
            else None
        ),
        "results": results,
    }

    baseline = tcp_sockets()

    def record(r: dict[str, Any]) -> None:
        results.append(r)
        log(f"{r['scenario']:6} {r['server']:15} n={r['n']:<6} {brief(r)}")
        report["finished_utc"] = "(in progress)"
        write_results(report, json_path, md_path)

    def load(kind: str, n: int, busy: bool) -> None:
        waited = settle(baseline)
        try:
            r = measure_load(
                kind,
                n,
                busy=busy,
                window=args.window,
                warmup=args.warmup,
                interval=args.interval,
                timeout=args.timeout,
            )
        except Exception as exc:  # a broken server must not stop the run
            r = {
                "scenario": "busy" if busy else "idle",
                "server": kind,
                "n": n,
                "error": f"{type(exc).__name__}: {exc}"[:400],
            }
        r["settled_secs"] = round(waited, 2)
        record(r)

    def plan(ns: list[int], repeats: int) -> list[tuple[int, int, str]]:
        steps = []
        for rep in range(repeats):
            for n in sorted(ns, reverse=True):  # the largest N first: it matters most
                # A seeded shuffle: each server follows different ones across repeats.
                order = list(servers)
                random.Random(1000 * rep + n).shuffle(order)
                for kind in order:
                    if kind.startswith("ours-threading") and n > args.threading_max_n:
                        continue
                    steps.append((rep, n, kind))
        return steps

    for _rep, n, kind in plan(_ints(args.n), args.repeats):
        load(kind, n, busy=False)
    # All cores: `heartbeat serve --workers 2` at N against one worker at N / 2 (the CLI
    # both times, CPU and RSS summed over the supervisor and its workers).
    for _rep in range(args.repeats if _ints(args.workers_n) else 0):
        for asked in _ints(args.workers_n):
            # The load client holds every connection in one process: N must fit under its
            # open-file limit (a hard limit of 20,000 makes 20,000 impossible; 19,000 runs).
            room = (raise_nofile_limit() - 500) // 1000 * 1000
            n = min(asked, room)
            if n < asked:
                log(f"--workers-n {asked}: the open-file limit allows {room}; measuring {n}")
            load("ours-cli", n // 2, busy=False)
            load("ours-cli-workers2", n, busy=False)
    for _rep, n, kind in plan(_ints(args.busy_n), args.busy_repeats):
        load(kind, n, busy=True)
    for _rep, n, kind in plan(_ints(args.handshake_n), args.handshake_repeats):
        waited = settle(baseline)
        try:
            r = measure_handshakes(kind, n)
        except Exception as exc:  # a broken server must not stop the run
            r = {"scenario": "handshake", "server": kind, "n": n, "error": f"{exc}"[:400]}
        r["settled_secs"] = round(waited, 2)
        record(r)
    if args.detect_n > 0:
        for kind in servers:
            n = args.detect_n
            if kind.startswith("ours-threading"):
                n = min(n, args.threading_max_n)
            settle(baseline)
            try:
                r = measure_detection(
                    kind,
                    n,
                    interval=1.0,
                    timeout=args.detect_timeout,
                    warmup=args.warmup,
                    max_wait=args.detect_max_wait,
                )
            except Exception as exc:
                r = {
                    "scenario": "detect",
                    "server": kind,
                    "n": n,
                    "error": f"{type(exc).__name__}: {exc}"[:400],
                }
            record(r)
    if args.profile_n > 0:
        log(f"py-spy profile of ours-asyncio at N={args.profile_n}")
        try:
            report["profile"] = profile(
                "ours-asyncio", args.profile_n, secs=args.profile_secs, warmup=args.warmup, top=15
            )
        except Exception as exc:
            report["profile"] = f"profiling failed: {type(exc).__name__}: {exc}"
        print(report["profile"], flush=True)
    if not args.no_core:
        log("core micro-benchmark")
        report["core"] = bench_core.run(batch=args.core_batch, repeats=args.core_repeats)
        print(bench_core.format_table(report["core"]), flush=True)
    report["finished_utc"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return report


def _ints(text: str) -> list[int]:
    """The positive counts in a comma-separated list ("" or "0": none)."""
    return [n for n in (int(x) for x in text.split(",") if x) if n > 0]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Heartbeat benchmarks, side by side.")
    parser.add_argument("--quick", action="store_true", help="a smoke run: small N, short")
    parser.add_argument("--servers", default=",".join(KINDS))
    parser.add_argument("--n", default="1000,5000,10000", help="idle connection counts")
    parser.add_argument("--busy-n", default="1000,10000", help="busy connection counts")
    parser.add_argument(
        "--workers-n",
        default="20000",
        help="connections for `heartbeat serve --workers 2`, against one worker at half "
        "as many ('' skips it)",
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--busy-repeats", type=int, default=3)
    parser.add_argument("--window", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=2.5)
    parser.add_argument("--interval", type=float, default=1.0)
    parser.add_argument("--timeout", type=float, default=5.0)
    parser.add_argument("--threading-max-n", type=int, default=5000)
    parser.add_argument("--handshake-n", default="10000", help="connections per handshake run")
    parser.add_argument("--handshake-repeats", type=int, default=3)
    parser.add_argument("--detect-n", type=int, default=1000)
    parser.add_argument("--detect-timeout", type=float, default=1.0)
    parser.add_argument("--detect-max-wait", type=float, default=20.0)
    parser.add_argument("--core-batch", type=int, default=20000)
    parser.add_argument("--core-repeats", type=int, default=7)
    parser.add_argument("--no-core", action="store_true")
    parser.add_argument(
        "--pin",
        action="store_true",
        help="put the server and the load client on separate CPUs (off: the scheduler decides)",
    )
    parser.add_argument(
        "--profile-n", type=int, default=-1, help="py-spy our server at this N (0: skip)"
    )
    parser.add_argument("--profile-secs", type=float, default=8.0)
    parser.add_argument(
        "--json", help="JSON output (default: benchmarks/results/<mode>-<time>.json)"
    )
    parser.add_argument(
        "--md", help="Markdown output (default: docs/benchmarks-results.md; quick mode: print only)"
    )
    args = parser.parse_args(argv)
    if args.quick:
        defaults = {
            "n": "200",
            "busy_n": "200",
            "workers_n": "400",
            "repeats": 1,
            "busy_repeats": 1,
            "handshake_n": "500",
            "handshake_repeats": 1,
            "window": 3.0,
            "warmup": 1.5,
            "detect_n": 200,
            "detect_max_wait": 14.0,
            "core_batch": 3000,
            "core_repeats": 3,
            "threading_max_n": 200,
        }
        for key, value in defaults.items():
            if getattr(args, key) == parser.get_default(key):
                setattr(args, key, value)
    if args.profile_n < 0:
        args.profile_n = 0 if args.quick else max(_ints(args.n) or [0])
    raise_nofile_limit()
    cpus = sorted(os.sched_getaffinity(0))
    if args.pin and len(cpus) >= 2:
        procs.PINNING = ({cpus[0]}, {cpus[1]})
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    json_path = args.json or os.path.join(
        HERE, "results", f"{'quick' if args.quick else 'full'}-{stamp}.json"
    )
    os.makedirs(os.path.dirname(os.path.abspath(json_path)), exist_ok=True)
    md_path = args.md or (
        None if args.quick else os.path.join(ROOT, "docs", "benchmarks-results.md")
    )
    report = run_all(args, json_path, md_path)
    markdown = write_results(report, json_path, md_path)
    print()
    print(markdown)
    log(f"wrote {os.path.relpath(json_path, ROOT)}" + (f" and {md_path}" if md_path else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
