"""Our server on the reference harness (../shared/bench), on both event loops, with the ratios.

Issue 15's targets are judged on that harness: one raw load client for every server, the
floor it ships (``servers/floor_server.py``) and websockets, all in one run. This script runs
``heartbeat serve`` there as issue 15 names it (``--mode protocol --log-format json
--no-dashboard``), on the standard loop and on uvloop, beside the floor on each loop and
websockets, then prints every repeat's ratios (ours / the floor on the same loop, ours /
websockets) and the medians::

    python benchmarks/reference.py -n 10000 -r 3                  # idle: CPU per round trip
    python benchmarks/reference.py --handshakes -n 10000 -r 3     # server CPU per handshake

``--handshakes`` opens N connections with the harness's load client (heartbeats far off:
interval 60 s) and divides the server's CPU over that time by N; it also gives the time the
N connections took. Everything runs with this interpreter (its environment needs uvloop,
websockets and aiohttp: ``make test`` installs them) and the checkout it imports. Only
ratios measured in one run mean anything; nothing here is a test.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import runpy
import shlex
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from procs import tree_times  # noqa: E402

DEFAULT_BENCH = HERE.parent.parent / "shared" / "bench"
OURS = "{python} -m heartbeat_cli serve --port {port} --interval {interval} --timeout {timeout} "
OURS += "--mode protocol --log-format json --no-dashboard --loop {loop}"
FLOOR_SCRIPT = "{bench}/servers/floor_server.py --port {port} --interval {interval} "
FLOOR_SCRIPT += "--timeout {timeout}"
FLOOR = "{python} " + FLOOR_SCRIPT
ON_UVLOOP = "{python} {me} --on-uvloop "
PAIRS = (("ours", "floor"), ("ours-uvloop", "floor-uvloop"), ("ours", "websockets"),
         ("ours-uvloop", "websockets"))  # fmt: skip


def servers(bench: Path) -> dict[str, str]:
    """Label -> command template ({port}, {interval}, {timeout} left for the harness)."""
    fill = {"python": sys.executable, "bench": bench, "me": Path(__file__).resolve()}
    keep = {"port": "{port}", "interval": "{interval}", "timeout": "{timeout}"}
    return {
        "ours": OURS.format(**fill, **keep, loop="asyncio"),
        "ours-uvloop": OURS.format(**fill, **keep, loop="uvloop"),
        "floor-uvloop": (ON_UVLOOP + FLOOR_SCRIPT).format(**fill, **keep),
    }


def idle(args: argparse.Namespace, out: Path) -> list[dict[str, object]]:
    """heartbeat_load.py with websockets and the floor, and our servers; its JSON lines."""
    command = [sys.executable, str(args.bench / "heartbeat_load.py"), "--peer", "websockets"]
    command += ["floor"]
    for label, template in [*servers(args.bench).items(), *(s.split("=", 1) for s in args.server)]:
        command += ["--server", f"{label}={template}"]
    command += ["-n", str(args.n), "--interval", "1", "--timeout", "5", "--window", "10"]
    command += ["-r", str(args.repeats), "--json", str(out)]
    out.unlink(missing_ok=True)  # (the harness appends: only this run's lines)
    subprocess.run(command, check=True)
    return [json.loads(line) for line in out.read_text().splitlines()]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _handshakes_once(bench: Path, label: str, template: str, n: int) -> dict[str, object]:
    port = _free_port()
    argv = shlex.split(template.format(port=port, interval=60, timeout=30))
    server = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    client = None
    try:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.05)
        time.sleep(1.0)  # settle
        cpu0 = sum(tree_times(server.pid))
        client_argv = [sys.executable, str(bench / "clients.py"), "--port", str(port)]
        client_argv += ["-n", str(n), "--max-seconds", "120"]
        client = subprocess.Popen(
            client_argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        assert client.stdin is not None and client.stdout is not None
        start, established = time.monotonic(), 0
        while established < n and time.monotonic() - start < 100:
            client.stdin.write("stats\n")
            client.stdin.flush()
            established = json.loads(client.stdout.readline())["established"]
            time.sleep(0.05)
        took = time.monotonic() - start
        cpu = sum(tree_times(server.pid)) - cpu0
        client.stdin.write("quit\n")
        client.stdin.flush()
        return {"label": label, "n": n, "established": established, "connect_s": took,
                "cpu_us_per_handshake": cpu / n * 1e6}  # fmt: skip
    finally:
        for proc in (client, server):
            if proc is not None:
                proc.terminate()
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()


def handshakes(args: argparse.Namespace, out: Path) -> list[dict[str, object]]:
    fill = {"python": sys.executable, "bench": args.bench}
    floor = FLOOR.format(**fill, port="{port}", interval="{interval}", timeout="{timeout}")
    every = {"floor": floor, **servers(args.bench)}
    every.update(s.split("=", 1) for s in args.server)
    rows = []
    for repeat in range(1, args.repeats + 1):
        for label, template in every.items():
            row = _handshakes_once(args.bench, label, template, args.n)
            row["rep"] = repeat
            print(json.dumps(row), flush=True)
            rows.append(row)
    out.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return rows


def report(rows: list[dict[str, object]], key: str) -> None:
    """Every repeat's ratios for PAIRS, and each server's medians."""
    by_repeat: dict[object, dict[object, dict[str, object]]] = {}
    for row in rows:
        by_repeat.setdefault(row["rep"], {})[row["label"]] = row
    for a, b in PAIRS:
        ratios = [
            float(got[a][key]) / float(got[b][key])  # type: ignore[arg-type]
            for got in by_repeat.values()
            if a in got and b in got
        ]
        if ratios:
            each = ", ".join(f"{r:.2f}" for r in ratios)
            print(f"{a} / {b}: {each} (median {statistics.median(ratios):.2f})")
    for label in dict.fromkeys(str(row["label"]) for row in rows):
        mine = [row for row in rows if row["label"] == label]
        figures = [f"{key} {statistics.median(float(r[key]) for r in mine):.1f}"]  # type: ignore[arg-type]
        for extra in ("rss_kb_per_conn", "pings_per_s", "connect_s"):
            if extra in mine[0]:
                values = ", ".join(f"{float(r[extra]):.2f}" for r in mine)  # type: ignore[arg-type]
                figures.append(f"{extra} {values}")
        print(f"{label:14} " + "; ".join(figures))


def main() -> None:
    if sys.argv[1:2] == ["--on-uvloop"]:  # (the floor under uvloop: run a script on it)
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
        sys.argv = sys.argv[2:]
        runpy.run_path(sys.argv[0], run_name="__main__")
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bench", type=Path, default=DEFAULT_BENCH, help="the harness's folder")
    parser.add_argument("-n", type=int, default=10_000, help="connections (default 10,000)")
    parser.add_argument("-r", "--repeats", type=int, default=3)
    parser.add_argument("--handshakes", action="store_true", help="server CPU per handshake")
    parser.add_argument("--server", action="append", default=[], help="LABEL=CMD, one more")
    parser.add_argument("--json", type=Path, help="where the JSON lines go (default: a temp file)")
    args = parser.parse_args()
    out = args.json or Path(tempfile.mkdtemp(prefix="hb-reference-")) / "run.jsonl"
    if args.handshakes:
        report(handshakes(args, out), "cpu_us_per_handshake")
    else:
        report(idle(args, out), "cpu_us_per_ping")
    print(f"JSON lines: {out}")


if __name__ == "__main__":
    main()
