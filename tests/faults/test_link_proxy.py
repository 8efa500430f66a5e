"""Delay, stalls and a blackhole without netem: LinkProxy (heartbeat_threading.testing)
between a client and a server of each adapter, in each heartbeat style.

* A healthy peer behind a 300 ms round trip whose link stalls for 0.6 s every 4 s
  (both directions at once, as a retransmission looks to TCP), with a 1 s timeout:
  nobody is declared dead for two minutes. The worst round trip is 0.9 s, 0.1 s
  inside the timeout.
* Then each link becomes a blackhole: the peer cut off is declared dead, by the server
  and by the client, within interval + timeout + 50 ms of the cut.

The four adapter/style pairs run side by side in a process of their own
(link_proxy_run.py), which the conftest starts as soon as this test is collected and
this test, run last, waits for: the two minutes overlap the rest of the fault suite.
The netem cases (test_process_faults) stay, for kernels that have sch_netem.
"""

from __future__ import annotations

import json
import subprocess

import pytest

from .conftest import HEALTHY_SECONDS
from .harness import record
from .link_proxy_run import INTERVAL, TIMEOUT


@pytest.mark.timeout(HEALTHY_SECONDS + 90)
def test_a_healthy_peer_survives_delay_and_stalls_and_a_cut_off_one_is_found(
    link_proxy_run: subprocess.Popen[str],
) -> None:
    out, err = link_proxy_run.communicate(timeout=HEALTHY_SECONDS + 80)
    assert link_proxy_run.returncode == 0, err
    rows = [json.loads(line) for line in out.splitlines()]
    assert len(rows) == 4, out
    bound = INTERVAL + TIMEOUT + 0.05
    for row in rows:
        pair = f"{row['adapter']}/{row['style']}"
        assert row["error"] is None, (pair, row["error"])
        assert row["server_verdicts"] == 0, f"{pair}: the server gave a verdict while healthy"
        assert row["client_verdicts"] == 0, f"{pair}: the client gave a verdict while healthy"
        assert row["connections"] == 1, pair
        rtts = row["rtts"]
        # Heartbeats ran all along (about one a second each way) and met the stalls.
        assert len(rtts) >= HEALTHY_SECONDS / 2, (pair, len(rtts))
        assert min(rtts) >= 0.29, (pair, min(rtts))
        if HEALTHY_SECONDS >= 60:  # (30 stalls: some heartbeats were held by one)
            assert max(rtts) >= 0.35, (pair, max(rtts))
        server_after, client_after = row["server_after_cut"], row["client_after_cut"]
        assert server_after is not None and 0 < server_after <= bound, (pair, server_after)
        assert client_after is not None and 0 < client_after <= bound, (pair, client_after)
        record(
            f"LinkProxy: RTT 300 ms, 0.6 s stalls every 4 s, timeout 1 s, "
            f"{HEALTHY_SECONDS:.0f} s, then a blackhole ({row['style']})",
            row["adapter"],
            "no false verdict; after the cut close 1011 heartbeat-timeout, both sides",
            f"{len(rtts)} heartbeats answered, RTT {min(rtts) * 1000:.0f}-"
            f"{max(rtts) * 1000:.0f} ms; cut found by the server in "
            f"{server_after * 1000:.0f} ms, the client in {client_after * 1000:.0f} ms "
            f"(bound {bound * 1000:.0f} ms)",
        )
