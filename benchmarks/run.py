"""Run the heartbeat benchmarks side by side and write the results (``make bench``).

Every measurement starts one server (``servers.py``) and one load client
(``loadclient.py``), each in its own process, on 127.0.0.1:

* **idle**: N connections, heartbeat interval 1 s (timeout 5 s); after a
  warm-up, a window of ``--window`` seconds in which the server's CPU
  (utime + stime from ``/proc/<pid>/stat``) is divided by the pongs the load
  client sent, RSS growth is divided by N, and the pings the client received
  per second are compared with N / interval.
* **busy**: the same with every connection also sending a small text frame
  every 0.5 s: how many heartbeat pings the server still sends, and its CPU.
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

    python benchmarks/run.py            # the full run (about 30 minutes)
    python benchmarks/run.py --quick    # a smoke run (under 2 minutes)
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import random
import signal
import statistics
import subprocess
import sys
import time
from importlib.metadata import PackageNotFoundError, version
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
    proc_rss,
    proc_threads,
    proc_times,
    settle,
    start_client,
    start_server,
    tcp_sockets,
)
from servers import KINDS  # noqa: E402

__all__ = ["main"]

_LABEL = {
    "floor": "floor (plain asyncio, one timer)",
    "websockets": "websockets (ping_interval=1)",
    "aiohttp": "aiohttp (heartbeat=1)",
    "ours-asyncio": "heartbeat_asyncio (ours)",
    "ours-threading": "heartbeat_threading (ours)",
}


# ------------------------------------------------------------------- scenarios


def measure_load(
    kind: str, n: int, *, busy: bool, window: float, warmup: float, interval: float, timeout: float
) -> dict[str, Any]:
    """One idle or busy measurement (see the module docstring)."""
    server, port = start_server(kind, interval, timeout)
    client: Child | None = None
    try:
        time.sleep(0.2)
        rss0 = proc_rss(server.pid)
        client, line = start_client(port, n, busy)
        connected = connected_fields(line)
        time.sleep(warmup)
        m0 = mark(client)
        user0, sys0 = proc_times(server.pid)
        time.sleep(window)
        m1 = mark(client)
        user1, sys1 = proc_times(server.pid)
        rss1 = proc_rss(server.pid)
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
        "cpu_us_per_message": (cpu / texts * 1e6) if texts else None,
        "rss_kb_per_connection": (rss1 - rss0) / 1024 / max(opened, 1),
        "rss_mb": rss1 / 2**20,
        "server_threads": threads,
        "closed_by_server": m1["closed"],
        "client_cpu_percent": 100 * (m1["cpu"] - m0["cpu"]) / elapsed,
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


def _versions() -> dict[str, str]:
    out = {}
    for dist in ("heartbeat-core", "wsproto", "websockets", "aiohttp"):
        try:
            out[dist] = version(dist)
        except PackageNotFoundError:
            out[dist] = "not installed"
    return out


def _git() -> dict[str, Any]:
    """The commit measured, and the files of the measured packages changed since (the
    editable install runs the working tree)."""

    def git(*args: str) -> str:
        try:
            out = subprocess.run(
                ["git", *args], check=False, cwd=ROOT, capture_output=True, text=True, timeout=10
            )
        except (OSError, subprocess.TimeoutExpired):
            return ""
        return out.stdout.strip()

    dirty = git("status", "--porcelain", "--", "heartbeat_core", "adapters")
    return {"head": git("rev-parse", "--short", "HEAD"), "uncommitted": dirty.splitlines()}


def _machine() -> dict[str, Any]:
    model = ""
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as fh:
        for line in fh:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": model,
        "cpus": os.cpu_count(),
        "loadavg_at_start": os.getloadavg(),
        "nofile_limit": raise_nofile_limit(),
    }


def _log(msg: str) -> None:
    print(time.strftime("%H:%M:%S ") + msg, flush=True)


def _brief(r: dict[str, Any]) -> str:
    if "error" in r:
        return f"ERROR {r['error']}"
    if r["scenario"] == "detect":
        if "median" not in r:
            return "nothing released"
        return (
            f"released {r['released']}/{r['open_at_freeze']} min {r['min']:.2f} "
            f"median {r['median']:.2f} p99 {r['p99']:.2f} max {r['max']:.2f} s"
        )
    per = r["cpu_us_per_round_trip"]
    return (
        f"opened {r['opened']} cpu {r['cpu_percent']:.0f}% "
        f"{_f(per)} us/rt pings/s {r['pings_per_sec']:.0f} "
        f"rss {r['rss_kb_per_connection']:.1f} KB/conn closed {r['closed_by_server']:.0f}"
    )


def _write(report: dict[str, Any], json_path: str, md_path: str | None) -> str:
    """Write the JSON (and Markdown) files for the results so far; return the Markdown."""
    report["summary"] = summarize(report["results"])
    tmp = json_path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(report, fh, indent=2)
        fh.write("\n")
    os.replace(tmp, json_path)
    markdown = to_markdown(report)
    if md_path:
        with open(md_path, "w", encoding="utf-8") as fh:
            fh.write(markdown + "\n")
    return markdown


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
        "machine": _machine(),
        "versions": _versions(),
        "git": _git(),
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
        _log(f"{r['scenario']:6} {r['server']:15} n={r['n']:<6} {_brief(r)}")
        report["finished_utc"] = "(in progress)"
        _write(report, json_path, md_path)

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
    for _rep, n, kind in plan(_ints(args.busy_n), args.busy_repeats):
        load(kind, n, busy=True)
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
        from profile_server import profile

        _log(f"py-spy profile of ours-asyncio at N={args.profile_n}")
        try:
            report["profile"] = profile(
                "ours-asyncio", args.profile_n, secs=args.profile_secs, warmup=args.warmup, top=15
            )
        except Exception as exc:
            report["profile"] = f"profiling failed: {type(exc).__name__}: {exc}"
        print(report["profile"], flush=True)
    if not args.no_core:
        _log("core micro-benchmark")
        report["core"] = bench_core.run(batch=args.core_batch, repeats=args.core_repeats)
        print(bench_core.format_table(report["core"]), flush=True)
    report["finished_utc"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return report


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x]


# --------------------------------------------------------------------- summary


def _med(values: list[float | None]) -> float | None:
    vals = [v for v in values if v is not None]
    return statistics.median(vals) if vals else None


def summarize(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians per (scenario, server, n), with ratios to websockets in the same run."""
    groups: dict[tuple[str, str, int], list[dict[str, Any]]] = {}
    for r in results:
        if r["scenario"] in ("idle", "busy"):
            groups.setdefault((r["scenario"], r["server"], r["n"]), []).append(r)
    rows: list[dict[str, Any]] = []
    for (scenario, server, n), rs in sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][2])):
        ok = [r for r in rs if "error" not in r]
        row: dict[str, Any] = {
            "scenario": scenario,
            "server": server,
            "n": n,
            "repeats": len(ok),
            "errors": [r["error"] for r in rs if "error" in r],
        }
        for key in (
            "cpu_us_per_round_trip",
            "user_us_per_round_trip",
            "sys_us_per_round_trip",
            "cpu_percent",
            "pings_per_sec",
            "rss_kb_per_connection",
            "cpu_us_per_message",
            "texts_per_sec",
            "closed_by_server",
            "opened",
            "client_cpu_percent",
        ):
            row[key] = _med([r.get(key) for r in ok])
        row["cpu_us_per_rt_range"] = [
            min(
                (r["cpu_us_per_round_trip"] for r in ok if r["cpu_us_per_round_trip"]), default=None
            ),
            max(
                (r["cpu_us_per_round_trip"] for r in ok if r["cpu_us_per_round_trip"]), default=None
            ),
        ]
        rows.append(row)
    index = {(r["scenario"], r["server"], r["n"]): r for r in rows}
    for row in rows:
        for ref in ("websockets", "floor"):
            other = index.get((row["scenario"], ref, row["n"]))
            mine = row["cpu_us_per_round_trip"]
            if row["scenario"] == "busy":
                mine = row["cpu_percent"]
                theirs = other["cpu_percent"] if other else None
            else:
                theirs = other["cpu_us_per_round_trip"] if other else None
            row[f"cpu_ratio_to_{ref}"] = (mine / theirs) if mine and theirs else None
    detect = [r for r in results if r["scenario"] == "detect"]
    return {"load": rows, "detect": detect, "targets": _targets(rows, detect)}


def _targets(rows: list[dict[str, Any]], detect: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The issue's targets, checked against our asyncio server's medians."""
    out: list[dict[str, Any]] = []
    idle = {(r["server"], r["n"]): r for r in rows if r["scenario"] == "idle"}
    busy = {(r["server"], r["n"]): r for r in rows if r["scenario"] == "busy"}
    ns = sorted({n for _, n in idle})
    if ns:
        n = ns[-1]
        ours = idle.get(("ours-asyncio", n))
        if ours and ours["cpu_us_per_round_trip"]:
            for ref, limit in (("websockets", 0.35), ("floor", 1.5)):
                ratio = ours.get(f"cpu_ratio_to_{ref}")
                out.append(
                    {
                        "target": f"CPU per round trip at N={n} <= {limit} x {ref}",
                        "measured": None if ratio is None else f"{ratio:.2f} x",
                        "met": None if ratio is None else ratio <= limit,
                    }
                )
        for server in ("ours-asyncio", "websockets", "aiohttp", "floor"):
            r = idle.get((server, n))
            if r and r["pings_per_sec"] is not None:
                share = r["pings_per_sec"] / n
                out.append(
                    {
                        "target": f"{server}: pinged on schedule at N={n} (>= 99 % of N/interval)",
                        "measured": f"{100 * share:.1f} %",
                        "met": share >= 0.99,
                    }
                )
        if ours and ours["rss_kb_per_connection"] is not None:
            out.append(
                {
                    "target": f"RSS per idle connection at N={n} <= 8 KB",
                    "measured": f"{ours['rss_kb_per_connection']:.1f} KB",
                    "met": ours["rss_kb_per_connection"] <= 8,
                }
            )
    for (server, n), r in sorted(busy.items()):
        if server.startswith("ours") and r["pings_per_sec"] is not None:
            out.append(
                {
                    "target": f"{server}: zero heartbeat pings on busy connections (N={n})",
                    "measured": f"{r['pings_per_sec']:.1f} pings/s",
                    "met": r["pings_per_sec"] == 0,
                }
            )
    for d in detect:
        if d["server"].startswith("ours") and "max" in d:
            met = d["max"] <= d["target_secs"] and d["released"] == d["open_at_freeze"]
            out.append(
                {
                    "target": f"{d['server']}: every frozen connection released within "
                    f"{d['target_secs']:.2f} s (N={d['n']})",
                    "measured": f"max {d['max']:.2f} s, {d['released']}/{d['open_at_freeze']}",
                    "met": met,
                }
            )
    return out


# -------------------------------------------------------------------- markdown


def _f(value: float | None, fmt: str = "{:.1f}") -> str:
    return "-" if value is None else fmt.format(value)


def to_markdown(report: dict[str, Any]) -> str:
    m, v = report["machine"], report["versions"]
    s = report["settings"]
    lines = [
        "# Benchmark results",
        "",
        f"Run {report['started_utc']} to {report.get('finished_utc', '?')} with "
        f"`{report['command']}`.",
        "",
        f"Machine: {m['cpu']} ({m['cpus']} CPUs, shared), {m['platform']}, Python "
        f"{m['python']}, open-file limit {m['nofile_limit']}, load average at start "
        f"{', '.join(f'{x:.2f}' for x in m['loadavg_at_start'])}.",
        f"Versions: {', '.join(f'{k} {val}' for k, val in v.items())}; commit "
        f"{report.get('git', {}).get('head', '?')}"
        + (
            f" with uncommitted changes to {', '.join(report['git']['uncommitted'])}"
            if report.get("git", {}).get("uncommitted")
            else ""
        )
        + ".",
        "",
        f"Idle/busy: interval {s['interval']:g} s, timeout {s['timeout']:g} s, warm-up "
        f"{s['warmup']:g} s, window {s['window']:g} s, {s['repeats']} repeat(s) interleaved "
        f"across servers (busy: {s['busy_repeats']}) in a shuffled order, each once the "
        "previous measurement's sockets were released; every figure is the median over repeats. "
        "CPU = utime+stime of the server process over the window; per round trip = CPU / pongs "
        "the load client sent; RSS per connection = (RSS at the end - RSS before connecting) / N. "
        "Ratios compare medians from this same run."
        + (
            f" The server runs on CPU {report['pinning']['server_cpus']} and the load client on "
            f"CPU {report['pinning']['client_cpus']} (the same for every server)."
            if report.get("pinning")
            else ""
        ),
        "",
    ]
    summary = report["summary"]
    for scenario, title in (("idle", "Idle connections"), ("busy", "Busy connections")):
        rows = [r for r in summary["load"] if r["scenario"] == scenario]
        if not rows:
            continue
        lines += [f"## {title}", ""]
        if scenario == "idle":
            lines += [
                "| N | server | CPU µs per ping round trip (min-max) | user + sys µs | "
                "vs websockets | vs floor | CPU % | pings/s (of N/interval) | "
                "RSS KB per connection | closed by server |",
                "|---|---|---|---|---|---|---|---|---|---|",
            ]
        else:
            lines += [
                "Every connection also sends a small text frame every 0.5 s.",
                "",
                "| N | server | heartbeat pings/s | messages/s | CPU % | CPU µs per message | "
                "CPU vs websockets | closed by server |",
                "|---|---|---|---|---|---|---|---|",
            ]
        for r in rows:
            name = _LABEL.get(r["server"], r["server"])
            if r["errors"] and not r["repeats"]:
                lines.append(f"| {r['n']} | {name} | error: {r['errors'][0][:120]} |")
                continue
            if scenario == "idle":
                rng = r["cpu_us_per_rt_range"]
                pps = r["pings_per_sec"]
                share = None if pps is None else 100 * pps / r["n"]
                lines.append(
                    f"| {r['n']} | {name} | {_f(r['cpu_us_per_round_trip'])} "
                    f"({_f(rng[0])}-{_f(rng[1])}) | "
                    f"{_f(r['user_us_per_round_trip'])} + {_f(r['sys_us_per_round_trip'])} | "
                    f"{_f(r['cpu_ratio_to_websockets'], '{:.2f}x')} | "
                    f"{_f(r['cpu_ratio_to_floor'], '{:.2f}x')} | "
                    f"{_f(r['cpu_percent'], '{:.0f}')} | "
                    f"{_f(pps, '{:.0f}')} ({_f(share)} %) | "
                    f"{_f(r['rss_kb_per_connection'])} | {_f(r['closed_by_server'], '{:.0f}')} |"
                )
            else:
                lines.append(
                    f"| {r['n']} | {name} | {_f(r['pings_per_sec'], '{:.1f}')} | "
                    f"{_f(r.get('texts_per_sec'), '{:.0f}')} | {_f(r['cpu_percent'], '{:.0f}')} | "
                    f"{_f(r['cpu_us_per_message'])} | "
                    f"{_f(r['cpu_ratio_to_websockets'], '{:.2f}x')} | "
                    f"{_f(r['closed_by_server'], '{:.0f}')} |"
                )
        lines.append("")
    if summary["detect"]:
        d0 = summary["detect"][0]
        lines += [
            "## Detection of frozen peers",
            "",
            f"N connections, interval 1 s, timeout {d0.get('timeout', '?')} s (aiohttp: "
            "pong deadline = heartbeat / 2); the load client is frozen with SIGSTOP; time from "
            "the freeze until the server closed each connection's socket (file descriptors of "
            "the server process counted every 5 ms).",
            "",
            "| server | N | released | min s | median s | p99 s | max s | target s |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for d in summary["detect"]:
            name = _LABEL.get(d["server"], d["server"])
            if "error" in d:
                lines.append(f"| {name} | {d['n']} | error: {d['error'][:120]} |")
                continue
            lines.append(
                f"| {name} | {d['n']} | {d['released']}/{d['open_at_freeze']} | "
                f"{_f(d.get('min'), '{:.2f}')} | {_f(d.get('median'), '{:.2f}')} | "
                f"{_f(d.get('p99'), '{:.2f}')} | {_f(d.get('max'), '{:.2f}')} | "
                f"{d['target_secs']:.2f} |"
            )
        lines.append("")
    if "core" in report:
        core = report["core"]
        lines += [
            "## Core micro-benchmark",
            "",
            f"`benchmarks/bench_core.py`: median of {core['repeats']} batches of "
            f"{core['batch']} operations, inputs built before the clock starts.",
            "",
            bench_core.format_table(core),
            "",
        ]
    lines += _decomposition(report)
    if report.get("profile"):
        lines += [
            "## Where our server's CPU goes (py-spy)",
            "",
            "Sampled while the load runs (`benchmarks/profile_server.py`); shares of the "
            "samples, converted to µs per round trip with the CPU measured over the same window.",
            "",
            "```",
            report["profile"],
            "```",
            "",
        ]
    if summary["targets"]:
        lines += ["## Targets (issue 5)", "", "| target | measured | met |", "|---|---|---|"]
        for t in summary["targets"]:
            met = "-" if t["met"] is None else ("yes" if t["met"] else "**no**")
            lines.append(f"| {t['target']} | {t['measured'] or '-'} | {met} |")
        lines.append("")
    return "\n".join(lines)


def _decomposition(report: dict[str, Any]) -> list[str]:
    """Our CPU per round trip split into kernel, asyncio, wsproto, our core and the rest."""
    idle = {(r["server"], r["n"]): r for r in report["summary"]["load"] if r["scenario"] == "idle"}
    core = report.get("core")
    ns = sorted(n for (server, n) in idle if server == "ours-asyncio")
    if not core or not ns:
        return []
    n = ns[-1]
    ours, floor, ws = (idle.get((k, n)) for k in ("ours-asyncio", "floor", "websockets"))
    if not ours or not floor or ours["user_us_per_round_trip"] is None:
        return []
    if floor["user_us_per_round_trip"] is None:
        return []
    figures = core["ns_per_op"]
    # The fastest batch: the machine is shared, and a batch can only be slowed down.
    cycle = min(figures["cycle.heartbeat_connection"]["samples"]) / 1000
    wsproto_cycle = min(figures["cycle.wsproto_only"]["samples"]) / 1000
    total = ours["cpu_us_per_round_trip"]
    rest = ours["user_us_per_round_trip"] - floor["user_us_per_round_trip"] - cycle
    parts = [
        (
            "kernel: system time of our server",
            ours["sys_us_per_round_trip"],
            f"floor's: {floor['sys_us_per_round_trip']:.1f}",
        ),
        (
            "asyncio loop and transports in Python (the floor server's user time)",
            floor["user_us_per_round_trip"],
            "",
        ),
        (
            "heartbeat_core: HeartbeatConnection cycle, framing included (micro-benchmark)",
            cycle,
            f"wsproto alone: {wsproto_cycle:.1f}",
        ),
        ("heartbeat_asyncio adapter and the rest (our user time - floor's - cycle)", rest, ""),
    ]
    lines = [
        f"## Where our CPU per round trip goes (N={n}, estimate)",
        "",
        "System time is the kernel's work for our process (reads, writes, epoll). The floor "
        "server's user time is what asyncio itself costs per ping and pong; the core "
        "micro-benchmark gives the sans-IO share; what is left of our user time is the asyncio "
        "adapter. The micro-benchmark figures here are its fastest batch (it runs warm, on one "
        "connection, on a shared machine), so the split is an estimate.",
        "",
        "| part | µs per round trip | share | note |",
        "|---|---|---|---|",
    ]
    for label, value, note in parts:
        lines.append(f"| {label} | {value:.1f} | {100 * value / total:.0f} % | {note} |")
    lines.append(f"| **heartbeat_asyncio total** | **{total:.1f}** | 100 % | |")
    if ws and ws["cpu_us_per_round_trip"] is not None:
        lines.append(
            f"| websockets total, same run | {ws['cpu_us_per_round_trip']:.1f} | "
            f"{100 * ws['cpu_us_per_round_trip'] / total:.0f} % | user "
            f"{ws['user_us_per_round_trip']:.1f} + sys {ws['sys_us_per_round_trip']:.1f} |"
        )
    lines.append("")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Heartbeat benchmarks, side by side.")
    parser.add_argument("--quick", action="store_true", help="a smoke run: small N, short")
    parser.add_argument("--servers", default=",".join(KINDS))
    parser.add_argument("--n", default="1000,5000,10000", help="idle connection counts")
    parser.add_argument("--busy-n", default="1000,10000", help="busy connection counts")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--busy-repeats", type=int, default=3)
    parser.add_argument("--window", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=2.5)
    parser.add_argument("--interval", type=float, default=1.0)
    parser.add_argument("--timeout", type=float, default=5.0)
    parser.add_argument("--threading-max-n", type=int, default=5000)
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
            "repeats": 1,
            "busy_repeats": 1,
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
    markdown = _write(report, json_path, md_path)
    print()
    print(markdown)
    _log(f"wrote {os.path.relpath(json_path, ROOT)}" + (f" and {md_path}" if md_path else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
