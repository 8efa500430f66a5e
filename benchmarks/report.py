"""Benchmark results: medians, ratios and targets, the result files, the log lines.

``summarize`` takes the medians per (scenario, server, N) over the repeats,
with ratios to websockets and to the floor server from the same run, and
checks the targets; ``write_results`` writes the JSON file (and the Markdown
page, ``results_page.py``); ``log`` and ``brief`` are the timestamped progress
lines the runner prints; ``machine_info``, ``versions`` and ``git_state``
describe what was measured.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import statistics
import subprocess
import time
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from loadclient import raise_nofile_limit
from results_page import cell, to_markdown

__all__ = [
    "brief",
    "git_state",
    "log",
    "machine_info",
    "summarize",
    "versions",
    "write_results",
]

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
#: Our asyncio servers the targets are checked on: a handler per connection, and
#: ``serve(on_message=...)`` (what issue 15 was judged on, on the reference harness).
OURS_ASYNCIO = ("ours-asyncio", "ours-asyncio-onmsg")


# ------------------------------------------------------------- what was measured


def versions() -> dict[str, str]:
    out = {}
    for dist in ("heartbeat-core", "wsproto", "websockets", "aiohttp"):
        try:
            out[dist] = version(dist)
        except PackageNotFoundError:
            out[dist] = "not installed"
    return out


def git_state() -> dict[str, Any]:
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


def machine_info() -> dict[str, Any]:
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


# ---------------------------------------------------- log lines and result files


def log(msg: str) -> None:
    print(time.strftime("%H:%M:%S ") + msg, flush=True)


def brief(r: dict[str, Any]) -> str:
    if "error" in r:
        return f"ERROR {r['error']}"
    if r["scenario"] == "detect":
        if "median" not in r:
            return "nothing released"
        return (
            f"released {r['released']}/{r['open_at_freeze']} min {r['min']:.2f} "
            f"median {r['median']:.2f} p99 {r['p99']:.2f} max {r['max']:.2f} s"
        )
    if r["scenario"] == "handshake":
        return (
            f"opened {r['opened']} in {r['connect_secs']:.2f} s, server cpu "
            f"{cell(r['cpu_us_per_handshake'])} us/handshake"
        )
    per = r["cpu_us_per_round_trip"]
    return (
        f"opened {r['opened']} cpu {r['cpu_percent']:.0f}% "
        f"{cell(per)} us/rt pings/s {r['pings_per_sec']:.0f} "
        f"rss {r['rss_kb_per_connection']:.1f} KB/conn closed {r['closed_by_server']:.0f}"
    )


def write_results(report: dict[str, Any], json_path: str, md_path: str | None) -> str:
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
            "echoes_per_sec",
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
            if row["scenario"] == "busy":  # per echoed message
                mine = row["cpu_us_per_message"]
                theirs = other["cpu_us_per_message"] if other else None
            else:
                theirs = other["cpu_us_per_round_trip"] if other else None
            row[f"cpu_ratio_to_{ref}"] = (mine / theirs) if mine and theirs else None
    detect = [r for r in results if r["scenario"] == "detect"]
    handshakes = _handshakes(results)
    return {
        "load": rows,
        "handshake": handshakes,
        "detect": detect,
        "targets": _targets(rows, detect) + _handshake_targets(handshakes),
    }


def _handshakes(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Medians per (server, n) of the handshake runs, with ratios to the floor."""
    groups: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for r in results:
        if r["scenario"] == "handshake":
            groups.setdefault((r["server"], r["n"]), []).append(r)
    rows: list[dict[str, Any]] = []
    for (server, n), rs in sorted(groups.items(), key=lambda kv: kv[0][1]):
        ok = [r for r in rs if "error" not in r]
        row: dict[str, Any] = {
            "server": server,
            "n": n,
            "repeats": len(ok),
            "errors": [r["error"] for r in rs if "error" in r],
        }
        for key in (
            "cpu_us_per_handshake",
            "user_us_per_handshake",
            "sys_us_per_handshake",
            "connect_secs",
            "opened",
        ):
            row[key] = _med([r.get(key) for r in ok])
            row[key + "_range"] = [
                min((r[key] for r in ok if r.get(key) is not None), default=None),
                max((r[key] for r in ok if r.get(key) is not None), default=None),
            ]
        rows.append(row)
    floor = {r["n"]: r for r in rows if r["server"] == "floor"}
    for row in rows:
        ref = floor.get(row["n"])
        for key in ("cpu_us_per_handshake", "connect_secs"):
            mine, theirs = row[key], ref[key] if ref else None
            row[key + "_vs_floor"] = mine / theirs if mine and theirs else None
    return rows


def _target(what: str, measured: str | None, met: bool | None) -> dict[str, Any]:
    return {"target": what, "measured": measured, "met": met}


def _ratio_target(what: str, ratio: float | None, limit: float, ref: str) -> dict[str, Any]:
    """``what`` <= ``limit`` x ``ref``'s (a ratio of medians; None when not measured)."""
    return _target(
        f"{what} <= {limit} x {ref}",
        None if ratio is None else f"{ratio:.2f} x" if ratio >= 1 else f"{ratio:.3f} x",
        None if ratio is None else ratio <= limit,
    )


def _cpu_targets(
    what: str, row: dict[str, Any], floor: float, websockets: float
) -> list[dict[str, Any]]:
    """``what`` within ``floor`` x the floor's and ``websockets`` x websockets'."""
    return [
        _ratio_target(what, row.get(f"cpu_ratio_to_{ref}"), limit, ref)
        for ref, limit in (("floor", floor), ("websockets", websockets))
    ]


def _handshake_targets(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Issue 15's handshake targets, for our asyncio servers at the largest N."""
    out = []
    for server in OURS_ASYNCIO:
        ours = [r for r in rows if r["server"] == server]
        if not ours:
            continue
        row = max(ours, key=lambda r: r["n"])
        out.append(
            _ratio_target(
                f"{server}: server CPU per opening handshake",
                row["cpu_us_per_handshake_vs_floor"],
                2.0,
                "floor",
            )
        )
        out.append(
            _ratio_target(
                f"{server}: time to open {row['n']} connections",
                row["connect_secs_vs_floor"],
                1.3,
                "floor",
            )
        )
    return out


def _schedule_target(server: str, r: dict[str, Any]) -> dict[str, Any]:
    share = r["pings_per_sec"] / r["n"]
    return _target(
        f"{server}: pinged on schedule at N={r['n']} (>= 99 % of N/interval)",
        f"{100 * share:.1f} %",
        share >= 0.99,
    )


def _largest(table: dict[tuple[str, int], dict[str, Any]], server: str) -> dict[str, Any] | None:
    """``server``'s row at the largest N it ran."""
    ns = [n for kind, n in table if kind == server]
    return table[(server, max(ns))] if ns else None


def _targets(rows: list[dict[str, Any]], detect: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Issue 15's targets, checked against our servers' medians (and the peers' schedule)."""
    out: list[dict[str, Any]] = []
    idle = {(r["server"], r["n"]): r for r in rows if r["scenario"] == "idle"}
    busy = {(r["server"], r["n"]): r for r in rows if r["scenario"] == "busy"}
    for server in OURS_ASYNCIO:
        ours = _largest(idle, server)
        if ours is None or not ours["cpu_us_per_round_trip"]:
            continue
        n = ours["n"]
        out += _cpu_targets(f"{server}: CPU per round trip at N={n}", ours, 1.5, 0.30)
        if ours["pings_per_sec"] is not None:
            out.append(_schedule_target(server, ours))
        if ours["rss_kb_per_connection"] is not None:
            kb = ours["rss_kb_per_connection"]
            out.append(
                _target(
                    f"{server}: RSS per idle connection at N={n} <= 4 KB", f"{kb:.1f} KB", kb <= 4
                )
            )
    for server in ("websockets", "aiohttp", "floor"):  # the peers, at the same N
        peer = _largest(idle, server)
        if peer and peer["pings_per_sec"] is not None:
            out.append(_schedule_target(server, peer))
    for server in ("ours-threading", "ours-threading-onmsg"):
        threads = _largest(idle, server)
        if threads and threads["rss_kb_per_connection"] is not None:
            kb, n = threads["rss_kb_per_connection"], threads["n"]
            out.append(
                _target(
                    f"{server}: RSS per idle connection at N={n} <= 10 KB", f"{kb:.1f} KB", kb <= 10
                )
            )
            if threads["pings_per_sec"] is not None:
                out.append(_schedule_target(server, threads))
    one, two = _largest(idle, "ours-cli"), _largest(idle, "ours-cli-workers2")
    if one and two and one["cpu_us_per_round_trip"] and two["cpu_us_per_round_trip"]:
        ratio = two["cpu_us_per_round_trip"] / one["cpu_us_per_round_trip"]
        out.append(
            _ratio_target(
                f"--workers 2: CPU per round trip at N={two['n']}",
                ratio,
                1.0,
                f"one worker at N={one['n']}",
            )
        )
        if two["pings_per_sec"] is not None:
            out.append(_schedule_target("ours-cli-workers2", two))
    for server in OURS_ASYNCIO:
        ours_busy = _largest(busy, server)
        if ours_busy and ours_busy["cpu_us_per_message"]:
            n = ours_busy["n"]
            what = f"{server}: CPU per echoed message at N={n} (busy)"
            out += _cpu_targets(what, ours_busy, 2.0, 0.4)
    for (server, n), r in sorted(busy.items()):
        if server.startswith("ours") and r["pings_per_sec"] is not None:
            out.append(
                _target(
                    f"{server}: zero heartbeat pings on busy connections (N={n})",
                    f"{r['pings_per_sec']:.1f} pings/s",
                    r["pings_per_sec"] == 0,
                )
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
