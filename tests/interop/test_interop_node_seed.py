"""Our adapters against the seed's JavaScript, run in Node with the ``ws`` package.

* The seed's ``ws`` server sweeps its clients every 300 ms here (the seed says 30000): a
  client still marked not-alive from the previous sweep is terminated, the others are
  marked and pinged. Our client must answer every sweep's ping in time.
* The seed's ``HeartbeatWebSocket`` client sends ``{"type":"ping"}`` every 200 ms here and
  closes unless ``{"type":"pong"}`` comes back within its ``pingTimeout``. It never answers
  pings of either kind itself; ``ws`` answers protocol pings for it, and application-level
  pings from us are ignored by its ``handleMessage``. Our server stays satisfied anyway,
  because any inbound byte (its own pings) proves it alive.

The JavaScript in ``node/seed-*.js`` is the seed's, verbatim; ``node/run-seed-*.js`` only
wire it up and report what happens as JSON lines (see their header comments).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from heartbeat_core import (
    HEARTBEAT_TIMEOUT_REASON,
    JSON_CODEC,
    HeartbeatConfig,
    HeartbeatStyle,
    Liveness,
    PeerDead,
)
from tests.support.peers import open_websocket
from tests.support.waiting import wait_until

from .harness import (
    NODE_DIR,
    SLACK,
    AdapterShim,
    NodeProcess,
    Recorder,
    assert_plausible_rtts,
    rtt_summary,
)

pytestmark = pytest.mark.interop

SWEEP_MS = 300
SWEEPS = 8
SEED_PING_INTERVAL_MS = 200
SEED_PING_TIMEOUT_MS = 1000
SEED_PINGS = 8

STYLES = [HeartbeatStyle.PROTOCOL, HeartbeatStyle.APP]

StartNode = Callable[..., NodeProcess]


def _seed_dir() -> Path:
    return Path(os.environ.get("HEARTBEAT_SEED_DIR", Path(__file__).parents[3] / "shared" / "seed"))


def test_node_files_are_the_seed_code_verbatim() -> None:
    """seed-server.js is the seed's server block; seed-client.js its client block's class."""
    texts = sorted(_seed_dir().glob("*.txt")) if _seed_dir().is_dir() else []
    if not texts:
        pytest.skip(f"the seed cheatsheet is not at {_seed_dir()} (set HEARTBEAT_SEED_DIR)")
    blocks = re.findall(r"```javascript\n(.*?)```", texts[0].read_text("utf-8"), re.S)
    client_block, server_block = blocks
    assert (NODE_DIR / "seed-server.js").read_text("utf-8") == server_block
    client_class = client_block[: client_block.index("// Usage")].rstrip("\n") + "\n"
    assert (NODE_DIR / "seed-client.js").read_text("utf-8") == client_class


def _start_seed_server(node_peer: StartNode) -> tuple[NodeProcess, int]:
    server = node_peer("run-seed-server.js", SEED_PORT="0", SEED_SWEEP_MS=str(SWEEP_MS))
    (listening,) = server.wait_for("listening", timeout=SLACK)
    return server, int(listening["port"])


def test_seed_server_terminates_a_client_that_never_answers(node_peer: StartNode) -> None:
    """The control: the sweep really runs at 300 ms and kills a silent client (raw socket
    that completes the handshake and then reads nothing, so never pongs)."""
    server, port = _start_seed_server(node_peer)
    with open_websocket(port, timeout=SLACK):  # asserts the 101
        (connected,) = server.wait_for("connection", timeout=SLACK)
        # Two sweeps: the first marks and pings, the second terminates.
        (terminated,) = server.wait_for("terminate", timeout=3 * SWEEP_MS / 1000 + SLACK)
        (closed,) = server.wait_for("close", timeout=SLACK)
    assert closed["code"] == 1006
    assert terminated["t"] - connected["t"] < 2 * SWEEP_MS / 1000 + 1.0


@pytest.mark.parametrize("style", STYLES, ids=lambda s: s.value)
def test_our_client_survives_the_seed_servers_sweeps(
    adapter: AdapterShim, node_peer: StartNode, style: HeartbeatStyle, figures: dict[str, Any]
) -> None:
    server, port = _start_seed_server(node_peer)
    events = Recorder()
    config = HeartbeatConfig(
        interval=0.25, timeout=1.0, close_timeout=1.0, fixed_rate=True, style=style
    )
    client = adapter.connect(f"ws://127.0.0.1:{port}/", config, events)
    (connected,) = server.wait_for("connection", timeout=SLACK)

    # SWEEPS sweeps after this one, each of which would have terminated us had the
    # previous one's ping gone unanswered.
    server.wait_for("ping", timeout=(SWEEPS + 1) * SWEEP_MS / 1000 + SLACK, count=SWEEPS + 1)
    assert server.records("terminate") == []
    assert server.records("close") == []
    assert client.close_code is None
    assert events.dead == []
    sweeps = len(server.records("ping"))
    wait_until(lambda: client.stats.peer_pings >= sweeps, SLACK, "our client to see every sweep")
    assert len(server.records("pong")) >= sweeps - 1
    stats = client.stats
    # The seed server answers both kinds of heartbeat: ws pongs protocol pings itself, and
    # its message handler answers {"type":"ping"}.
    assert_plausible_rtts(events.rtts, stats.srtt)

    client.close(1000)
    (closed,) = server.wait_for("close", timeout=SLACK)
    assert closed["code"] == 1000
    assert server.records("terminate") == []
    figures.update(
        sweeps_survived=sweeps - 1,  # the first sweep only marks and pings
        seconds=round(closed["t"] - connected["t"], 3),
        ours=rtt_summary(events.rtts),
    )


@pytest.mark.parametrize("style", STYLES, ids=lambda s: s.value)
def test_seed_client_stays_connected_to_our_server(
    adapter: AdapterShim, node_peer: StartNode, style: HeartbeatStyle, figures: dict[str, Any]
) -> None:
    server = adapter.serve(
        HeartbeatConfig(interval=0.25, timeout=1.0, close_timeout=1.0, fixed_rate=True, style=style)
    )
    client = node_peer(
        "run-seed-client.js",
        SEED_URL=server.url,
        SEED_PING_INTERVAL_MS=str(SEED_PING_INTERVAL_MS),
        SEED_PING_TIMEOUT_MS=str(SEED_PING_TIMEOUT_MS),
    )
    client.wait_for("open", timeout=SLACK)

    def is_pong(record: dict[str, Any]) -> bool:
        return bool(json.loads(record["data"]).get("type") == "pong")

    timeout = SEED_PINGS * (SEED_PING_INTERVAL_MS + SEED_PING_TIMEOUT_MS) / 1000 + SLACK
    client.wait_for("message", timeout=timeout, count=SEED_PINGS, where=is_pong)
    assert client.records("close") == []
    assert client.records("error") == []
    our = server.recorder
    assert our.dead == []
    assert our.closed == []
    (stats,) = server.connection_stats()
    assert stats.misses == 0
    assert stats.peer_pings >= SEED_PINGS

    # The seed client's RTT: each {"type":"ping"} it sent against the pong that followed.
    sends = [r["t"] for r in client.records("send")]
    pongs = [r["t"] for r in client.records("message", where=is_pong)]
    seed_rtts = [pong - sent for sent, pong in zip(sends, pongs, strict=False)]
    assert all(0 < rtt < SEED_PING_TIMEOUT_MS / 1000 for rtt in seed_rtts)

    if style is HeartbeatStyle.PROTOCOL:
        # ws answers our protocol pings on the seed's behalf: we measure RTTs.
        assert len(client.records("ping")) >= 1
        assert_plausible_rtts(our.rtts, stats.srtt)
    else:
        # Our {"type":"ping"} reached the seed, which ignores it (no RTT for us) ...
        assert client.records("message", where=lambda r: not is_pong(r))
        assert our.rtts == []
        # ... and it was still not declared dead: its own pings keep it alive.

    # Graceful shutdown: the seed client sees our 1001.
    server.close()
    (closed,) = client.wait_for("close", timeout=SLACK)
    assert closed["code"] == 1001
    figures.update(
        seed_pings_answered=len(pongs),
        seed_rtts=rtt_summary(seed_rtts),
        ours=rtt_summary(our.rtts),
    )


def test_seed_client_in_app_mode_needs_any_inbound_liveness(
    adapter: AdapterShim, node_peer: StartNode, figures: dict[str, Any]
) -> None:
    """Why the app-mode test above passes: the seed client never answers our
    {"type":"ping"}, so with ``Liveness.PONG_ONLY`` our server declares it dead after
    interval + timeout and closes with 1011. (Keep the default ANY_INBOUND for such clients.)"""
    config = HeartbeatConfig(
        interval=0.25,
        timeout=0.5,
        close_timeout=1.0,
        style=HeartbeatStyle.APP,
        liveness=Liveness.PONG_ONLY,
    )
    server = adapter.serve(config)
    client = node_peer(
        "run-seed-client.js",
        SEED_URL=server.url,
        SEED_PING_INTERVAL_MS=str(SEED_PING_INTERVAL_MS),
        SEED_PING_TIMEOUT_MS=str(SEED_PING_TIMEOUT_MS),
    )
    (opened,) = client.wait_for("open", timeout=SLACK)
    (dead,) = server.recorder.wait_for(PeerDead, timeout=config.interval + config.timeout + SLACK)
    (closed,) = client.wait_for("close", timeout=SLACK)
    assert (closed["code"], closed["reason"]) == (1011, HEARTBEAT_TIMEOUT_REASON)
    assert dead.waited >= config.timeout
    # It kept pinging (and we kept answering) until the end.
    assert client.records("message", where=lambda r: r["data"] == JSON_CODEC.pong_text)
    detection = closed["t"] - opened["t"]
    assert detection < config.interval + config.timeout + 2.0
    figures.update(open_to_close_s=round(detection, 3), waited_s=round(dead.waited, 3))
