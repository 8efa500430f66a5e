"""The JavaScript client against the core: the same scenarios, the same verdicts.

Random scenarios (seeded: reproducible) of time passing, stalls (time passing while no
timer runs) and inbound messages (pongs, the server's pings, other messages) go through
heartbeat-core's ``HeartbeatState`` (application-style heartbeats, driven by a fake
driver) and through heartbeat-client.js under a fake clock (node/replay.mjs). Both must
send their pings, measure their RTTs, answer pings, see stalls and declare the peer dead at
the same instants: the client is a port of the core's rules (interval, one-outstanding,
dead-peer, rtt, late-timer, early-timer), not a lookalike.
"""

from __future__ import annotations

import json
import random
import shutil
import subprocess
from typing import Any

import pytest

from heartbeat_core import (
    AppPingReceived,
    AppPongReceived,
    BytesReceived,
    ConnectionOpened,
    HeartbeatConfig,
    HeartbeatPhase,
    HeartbeatState,
    HeartbeatStyle,
    Liveness,
    PeerDead,
    RttSample,
    SendAppPing,
    SendAppPong,
    TimerFired,
)

from .harness import NODE_DIR

SCENARIOS = 400
Trace = list[list[Any]]


def scenario(rng: random.Random) -> dict[str, Any]:
    interval = rng.choice([200, 1000, 1500])
    options = {
        "pingInterval": interval,
        "timeout": rng.choice([100, 500, 2000]),
        "stallThreshold": rng.choice([0, 250]),
        "stallGrace": rng.choice([50, 100]),
        "liveness": rng.choice(["any", "pong"]),
    }
    steps: list[list[Any]] = []
    for _ in range(rng.randint(3, 40)):
        roll = rng.random()
        if roll < 0.45:
            steps.append(["advance", rng.choice([0, 1, 50, 99, 100, 250, 499, 500, 1000, 2500])])
        elif roll < 0.6:
            steps.append(["stall", rng.choice([100, 251, 300, 1000, 5000])])
        else:
            steps.append(["message", rng.choice(["pong", "pong", "ping", "other"])])
    return {"options": options, "steps": steps}


def core_trace(options: dict[str, Any], steps: list[list[Any]]) -> Trace:
    """Run ``steps`` through the core with a minimal driver; times in ms, as the client's."""
    config = HeartbeatConfig(
        interval=options["pingInterval"] / 1000,
        timeout=options["timeout"] / 1000,
        stall_threshold=options["stallThreshold"] / 1000,
        stall_grace=options["stallGrace"] / 1000,
        liveness=Liveness.ANY_INBOUND if options["liveness"] == "any" else Liveness.PONG_ONLY,
        style=HeartbeatStyle.APP,
        peer_ping_max_strikes=10_000,
    )
    state = HeartbeatState(config)
    trace: Trace = []
    now = 0.0

    def record(actions: Any, at: float) -> None:
        for action in actions:
            if isinstance(action, SendAppPing):
                trace.append(["ping", at * 1000])
            elif isinstance(action, SendAppPong):
                trace.append(["pong-sent", at * 1000])
            elif isinstance(action, RttSample):
                trace.append(["rtt", at * 1000, action.rtt * 1000])
            elif isinstance(action, PeerDead):
                trace.append(["dead", at * 1000, action.waited * 1000])

    def run_due(end: float) -> None:
        nonlocal now
        while state.is_open and (deadline := state.deadline) is not None and deadline <= end:
            now = max(now, deadline)
            before = state.phase
            record(state.handle(TimerFired(now=now)), now)
            if state.phase is HeartbeatPhase.GRACE and (
                before is HeartbeatPhase.AWAITING or state.deadline != deadline
            ):
                trace.append(["stall", now * 1000])
        now = max(now, end)

    state.handle(ConnectionOpened(now=0.0))
    for kind, value in steps:
        if not state.is_open:
            break
        if kind == "advance":
            run_due(now + value / 1000)
        elif kind == "stall":
            now += value / 1000
            run_due(now)
        else:
            actions = list(state.handle(BytesReceived(now=now)))
            if value == "pong":
                actions += state.handle(AppPongReceived(now=now))
            elif value == "ping":
                actions += state.handle(AppPingReceived(now=now))
            record(actions, now)
    return trace


def same(a: Trace, b: Trace) -> bool:
    if len(a) != len(b):
        return False
    for x, y in zip(a, b, strict=True):
        if x[0] != y[0] or len(x) != len(y):
            return False
        if any(abs(float(p) - float(q)) > 1e-6 for p, q in zip(x[1:], y[1:], strict=True)):
            return False
    return True


def test_js_client_decides_as_the_core_does() -> None:
    node = shutil.which("node")
    if node is None:
        pytest.skip("comparing the JavaScript client with the core needs `node` on PATH")
    rng = random.Random(20261126)
    scenarios = [scenario(rng) for _ in range(SCENARIOS)]
    done = subprocess.run(
        [node, "replay.mjs"],
        cwd=NODE_DIR,
        input=json.dumps(scenarios),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    js_traces = json.loads(done.stdout)
    kinds: set[str] = set()
    for number, (case, js) in enumerate(zip(scenarios, js_traces, strict=True)):
        core = core_trace(case["options"], case["steps"])
        assert same(js, core), f"scenario {number} {json.dumps(case)}:\n  core {core}\n  js   {js}"
        kinds.update(entry[0] for entry in core)
    # The scenarios exercised every verdict.
    assert kinds == {"ping", "pong-sent", "rtt", "stall", "dead"}, kinds
