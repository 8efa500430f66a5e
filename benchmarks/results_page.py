"""The Markdown page of a benchmark run (``docs/benchmarks-results.md``).

``to_markdown`` turns a run's report (settings, machine, the medians and
ratios from ``report.summarize``, the core micro-benchmark, the py-spy profile)
into the page: one table per scenario, the split of our CPU per round trip, and
the targets.
"""

from __future__ import annotations

from typing import Any

import bench_core

__all__ = ["cell", "to_markdown"]


_LABEL = {
    "floor": "floor (plain asyncio, one timer)",
    "websockets": "websockets (ping_interval=1)",
    "aiohttp": "aiohttp (heartbeat=1)",
    "ours-asyncio": "heartbeat_asyncio (ours)",
    "ours-asyncio-onmsg": "heartbeat_asyncio, serve(on_message=...) (ours)",
    "ours-threading": "heartbeat_threading (ours)",
    "ours-threading-onmsg": "heartbeat_threading, serve(on_message=...) (ours)",
}


def cell(value: float | None, fmt: str = "{:.1f}") -> str:
    return "-" if value is None else fmt.format(value)


def to_markdown(report: dict[str, Any]) -> str:
    m, v = report["machine"], report["versions"]
    s = report["settings"]
    lines = [
        "# Benchmark results",
        "",
        f"Run {report['started_utc']} to {report.get('finished_utc', '?')} with "
        f"`{report['command']}`. Every figure on this page comes from that one run of the "
        "harness in `benchmarks/` (`run.py`, which also runs `bench_core.py` for the core "
        "micro-benchmark and `profile_server.py` for the profile), measuring the code at the "
        "commit named below.",
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
                "Every connection also sends a small text frame every 0.5 s, which the "
                "server echoes; echoes/s below messages/s means the run fell behind.",
                "",
                "| N | server | heartbeat pings/s | messages/s | echoes/s | CPU % | "
                "CPU µs per echoed message | vs websockets | vs floor | closed by server |",
                "|---|---|---|---|---|---|---|---|---|---|",
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
                    f"| {r['n']} | {name} | {cell(r['cpu_us_per_round_trip'])} "
                    f"({cell(rng[0])}-{cell(rng[1])}) | "
                    f"{cell(r['user_us_per_round_trip'])} + {cell(r['sys_us_per_round_trip'])} | "
                    f"{cell(r['cpu_ratio_to_websockets'], '{:.2f}x')} | "
                    f"{cell(r['cpu_ratio_to_floor'], '{:.2f}x')} | "
                    f"{cell(r['cpu_percent'], '{:.0f}')} | "
                    f"{cell(pps, '{:.0f}')} ({cell(share)} %) | "
                    f"{cell(r['rss_kb_per_connection'])} | "
                    f"{cell(r['closed_by_server'], '{:.0f}')} |"
                )
            else:
                lines.append(
                    f"| {r['n']} | {name} | {cell(r['pings_per_sec'], '{:.1f}')} | "
                    f"{cell(r.get('texts_per_sec'), '{:.0f}')} | "
                    f"{cell(r.get('echoes_per_sec'), '{:.0f}')} | "
                    f"{cell(r['cpu_percent'], '{:.0f}')} | "
                    f"{cell(r['cpu_us_per_message'])} | "
                    f"{cell(r['cpu_ratio_to_websockets'], '{:.2f}x')} | "
                    f"{cell(r['cpu_ratio_to_floor'], '{:.2f}x')} | "
                    f"{cell(r['closed_by_server'], '{:.0f}')} |"
                )
        lines.append("")
    if summary.get("handshake"):
        lines += [
            "## Opening handshakes",
            "",
            "N connections opened as fast as the load client can (200 handshakes in flight), "
            "heartbeats far off (interval 60 s): the server's CPU from before the first "
            "connection until the last was open, divided by N (accept, upgrade, 101, and what "
            "the server sets up per connection), and the time the N connections took.",
            "",
            "| N | server | CPU µs per handshake (min-max) | user + sys µs | vs floor | "
            "time for N, s (min-max) | vs floor |",
            "|---|---|---|---|---|---|---|",
        ]
        for r in summary["handshake"]:
            name = _LABEL.get(r["server"], r["server"])
            if r["errors"] and not r["repeats"]:
                lines.append(f"| {r['n']} | {name} | error: {r['errors'][0][:120]} |")
                continue
            cpu, secs = r["cpu_us_per_handshake_range"], r["connect_secs_range"]
            lines.append(
                f"| {r['n']} | {name} | {cell(r['cpu_us_per_handshake'])} "
                f"({cell(cpu[0])}-{cell(cpu[1])}) | "
                f"{cell(r['user_us_per_handshake'])} + {cell(r['sys_us_per_handshake'])} | "
                f"{cell(r['cpu_us_per_handshake_vs_floor'], '{:.2f}x')} | "
                f"{cell(r['connect_secs'], '{:.2f}')} "
                f"({cell(secs[0], '{:.2f}')}-{cell(secs[1], '{:.2f}')}) | "
                f"{cell(r['connect_secs_vs_floor'], '{:.2f}x')} |"
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
                f"{cell(d.get('min'), '{:.2f}')} | {cell(d.get('median'), '{:.2f}')} | "
                f"{cell(d.get('p99'), '{:.2f}')} | {cell(d.get('max'), '{:.2f}')} | "
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
            "<!-- fragment: py-spy's summary as this benchmark run recorded it: output, "
            "not code -->",
            "```",
            report["profile"],
            "```",
            "",
        ]
    if summary["targets"]:
        lines += ["## Targets (issue 15)", "", "| target | measured | met |"]
        lines.append("|---|---|---|")
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
