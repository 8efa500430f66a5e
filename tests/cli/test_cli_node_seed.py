"""The command against the seed's JavaScript, run in Node with ``ws`` (the interop setup of
tests/interop/node is reused: the seed's code verbatim, wrapped to report JSON lines).

* ``heartbeat serve --mode app`` keeps the seed's ``HeartbeatWebSocket`` client connected:
  its ``{"type":"ping"}`` messages are answered with ``{"type":"pong"}``.
* ``heartbeat ping`` survives the seed's ``ws`` server sweep (every 500 ms here instead of
  30 s) in both modes: every sweep's protocol ping is answered in time.
"""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Callable, Iterator

import pytest

from tests.interop.harness import NODE_DIR, NodeProcess, node_tools

from .harness import SLACK, Command, start_server

pytestmark = pytest.mark.interop

StartNode = Callable[..., NodeProcess]


@pytest.fixture(scope="module")
def node() -> str:
    tools = node_tools()
    if tools is None:
        pytest.skip("the seed's JavaScript needs `node` and `npm` on PATH")
    node_exe, npm = tools
    if not (NODE_DIR / "node_modules" / "ws" / "package.json").exists():
        done = subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=NODE_DIR,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, f"`npm ci` in {NODE_DIR} failed: {done.stderr[-2000:]}"
    return node_exe


@pytest.fixture
def node_peer(node: str) -> Iterator[StartNode]:
    started: list[NodeProcess] = []

    def start(script: str, **env: str) -> NodeProcess:
        proc = NodeProcess(node, script, env)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.stop()


@pytest.fixture
def cleanup() -> Iterator[list[Command]]:
    started: list[Command] = []
    yield started
    for command in started:
        command.kill()


SEED_PINGS = 8
#: The seed sweeps every 30 s; 500 ms here, so that 8 pings at 0.25 s see about 4 sweeps
#: (the seed terminates a client that has not answered by the next sweep).
SWEEP_MS = 500


def test_serve_app_mode_keeps_the_seed_client_connected(
    node_peer: StartNode, cleanup: list[Command]
) -> None:
    # The server's own heartbeat is due 0.15 s after the last inbound byte: it pings the
    # seed client too (which ignores app pings), yet the client's own pings keep it alive.
    server, port = start_server("--mode", "app", "--interval", "0.15", "--timeout", "1")
    cleanup.append(server)
    client = node_peer(
        "run-seed-client.js",
        SEED_URL=f"ws://127.0.0.1:{port}/",
        SEED_PING_INTERVAL_MS="200",
        SEED_PING_TIMEOUT_MS="1000",
    )
    client.wait_for("open", timeout=SLACK)
    pongs = client.wait_for(
        "message", timeout=SLACK, count=SEED_PINGS, where=lambda r: '"pong"' in r["data"]
    )
    assert len(pongs) >= SEED_PINGS
    assert not client.records("close"), client.lines[-10:]
    assert not server.events("close") and not server.events("dead")
    client.stop()
    (closed,) = server.wait_for("close")
    assert closed["by"] == "remote"
    server.signal(signal.SIGTERM)
    assert server.finish() == 0


@pytest.mark.parametrize("mode", ["protocol", "app"])
def test_ping_survives_the_seed_server_sweep(
    mode: str, node_peer: StartNode, cleanup: list[Command]
) -> None:
    seed = node_peer("run-seed-server.js", SEED_PORT="0", SEED_SWEEP_MS=str(SWEEP_MS))
    (listening,) = seed.wait_for("listening", timeout=SLACK)
    ping = Command(
        "ping",
        f"ws://127.0.0.1:{listening['port']}/",
        "--mode",
        mode,
        "--interval",
        "0.25",
        "--count",
        str(SEED_PINGS),
        "--json",
    )
    cleanup.append(ping)
    assert ping.finish() == 0, (ping.lines, ping.stderr)
    summary = ping.records()[-1]
    assert (summary["sent"], summary["received"], summary["loss"]) == (
        SEED_PINGS,
        SEED_PINGS,
        0.0,
    )
    sweeps = seed.records("ping")
    assert len(sweeps) >= 2, seed.lines  # the sweep really ran while we were connected
    assert len(seed.records("pong")) >= len(sweeps) - 1  # every sweep but a last one answered
    assert not seed.records("terminate"), seed.lines
    (closed,) = seed.wait_for("close", timeout=SLACK)
    assert closed["code"] == 1000
