"""The README's pairing, ``heartbeat serve`` with its defaults and ``heartbeat ping``
clients, seen on the dashboard in Chromium: every connection gets an RTT (the server's
probe), each row says its own heartbeat style and the peer's, and the empty chart says why
it is empty."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.cli.harness import SLACK, Command, start_server

from .harness import Browser

DASH = "window.heartbeatDashboard"
ROWS = """(() => [...document.querySelectorAll('tr[data-kind="client"]')].map((tr) => ({
  path: tr.querySelector('.path').textContent, id: Number(tr.dataset.id),
  rtt: tr.dataset.rtt, state: tr.dataset.state, style: tr.dataset.style,
  peerStyle: tr.dataset.peerStyle, text: tr.textContent})))()"""
NOTE = """(() => { const n = document.getElementById('chart-note');
  return {hidden: n.hidden, text: n.textContent}; })()"""
PROBE = 3.0  # heartbeat serve's default --probe-interval


@pytest.mark.timeout(300)
def test_two_ping_clients_get_an_rtt_on_the_dashboard(browser: Browser, artifacts: Path) -> None:
    figures: dict[str, object] = {"chromium": browser.version}
    server, port = start_server("--rtt-log")  # the defaults: interval 20 s, probe every 3 s
    clients: list[Command] = []
    try:
        dash = browser.new_page(width=1000, height=700)
        assert browser.call("goto", page=dash, url=f"http://127.0.0.1:{port}/") == 200
        browser.wait_for(dash, f"{DASH}.view.server !== null", SLACK)
        # Nothing measured yet: the chart is empty and says why.
        note = browser.evaluate(dash, NOTE)
        if browser.evaluate(dash, f"{DASH}.view.series.size") == 0:
            assert not note["hidden"], note
            assert "No round trip measured yet" in note["text"], note
            assert f"at least every {PROBE:g} s" in note["text"], note
        figures["empty_chart_note"] = note["text"]

        url = f"ws://127.0.0.1:{port}"
        started = time.monotonic()
        clients += [
            Command("ping", f"{url}/one"),
            Command("ping", f"{url}/two"),
            Command("ping", f"{url}/app", "--mode", "app"),
        ]
        rows = browser.wait_for(
            dash,
            f"""(() => {{ const rows = {ROWS};
                 return rows.length >= 3 && rows.every((r) => r.rtt !== '') && rows; }})()""",
            PROBE + SLACK,
        )
        took = time.monotonic() - started
        figures["all_three_rows_have_rtt_after_s"] = round(took, 2)
        by_path = {row["path"]: row for row in rows}
        assert set(by_path) == {"/one", "/two", "/app"}, rows
        for row in rows:
            assert 0 < float(row["rtt"]) < 1000 * SLACK, row
            assert row["style"] == "frames" and "ours: ping frames" in row["text"], row
        # Each row says the peer's own style: ping frames, or {"type":"ping"} messages.
        assert by_path["/one"]["peerStyle"] == by_path["/two"]["peerStyle"] == "frames"
        assert "peer: ping frames" in by_path["/one"]["text"]
        assert by_path["/app"]["peerStyle"] == "app"
        assert "peer: app messages" in by_path["/app"]["text"]
        # The chart has a line for each of them, and no note any more.
        ids = [row["id"] for row in rows]
        browser.wait_for(
            dash, f"{json.dumps(ids)}.every((id) => {DASH}.view.series.has(id))", SLACK
        )
        assert browser.evaluate(dash, NOTE)["hidden"] is True
        # Probes stay probes: nobody was declared dead, every client still runs.
        assert not server.events("dead")
        assert all(client.proc.poll() is None for client in clients)
        rtt_lines = server.events("rtt")
        figures["server_rtt_samples"] = len(rtt_lines)
        browser.call("screenshot", page=dash, path=str(artifacts / "dashboard-rtt.png"))
        assert browser.page_errors == [], browser.page_errors
    finally:
        for client in clients:
            client.kill()
        server.kill()
        (artifacts / "browser-rtt-figures.json").write_text(json.dumps(figures, indent=2))
    print(json.dumps(figures))
