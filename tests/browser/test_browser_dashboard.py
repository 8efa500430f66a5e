"""The dashboard and the JavaScript client in a real browser (Debian's headless Chromium,
driven by playwright-core), against ``python -m heartbeat_cli serve`` in a subprocess.

One scenario, step by step, every wait bounded:

1. the dashboard page loads; its own feed connection (a ``HeartbeatClient``) appears in
   the table, marked as this page, with the server's RTT; the page measures its own RTT;
2. a second page loads the classic-script client and connects to ``/app-client?token=..``:
   it appears without the query string, with its peer pings counted;
3. in that page, a client whose main thread is blocked for 2 s right after a ping
   (the late-timer rule) is not declared dead, and one talking to a server that went
   silent after the handshake is declared dead and reconnects;
4. a raw-socket client that handshakes and then goes silent is declared dead by the
   server and shows up as closed 1011 heartbeat-timeout; a screenshot is saved;
5. the server is stopped and started again on the same port: both pages reconnect.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import time
from pathlib import Path

import pytest

from tests.cli.harness import SLACK, Command, start_server
from tests.support.peers import FrozenServer, open_websocket

from .harness import Browser

INTERVAL = 0.3  # the server pings a connection idle this long...
TIMEOUT = 3.0  # ...and declares it dead when the ping is unanswered this long
SERVER_ARGS = ("--interval", str(INTERVAL), "--timeout", str(TIMEOUT), "--close-timeout", "0.5")
DASH = "window.heartbeatDashboard"
SELF_ROW = """(() => {
  const tr = document.querySelector('tr[data-self="true"]');
  return tr && tr.dataset.rtt !== '' && {rtt: Number(tr.dataset.rtt), kind: tr.dataset.kind,
    text: tr.textContent, id: Number(tr.dataset.id)};
})()"""

CLIENT_SETUP = """(() => {
  window.log = [];
  window.make = (name, url, options) => {
    const client = new HeartbeatClient(url, options);
    for (const type of ['open', 'rtt', 'dead', 'stall', 'retry', 'close']) {
      client.on(type, (detail) => window.log.push({name, type, detail, at: performance.now()}));
    }
    window[name] = client;
    return client.connect().state;
  };
  window.count = (name, type) =>
    window.log.filter((e) => e.name === name && e.type === type).length;
  return typeof HeartbeatClient;
})()"""


def _row(peer: str) -> str:
    return f"""(() => {{
  const tr = document.querySelector('tr[data-peer="{peer}"]');
  return tr && {{state: tr.dataset.state, dead: tr.dataset.dead, text: tr.textContent}};
}})()"""


# The first run may install Chromium and playwright-core (each step bounded by 300 s, in the
# fixtures); once installed, the scenario takes about 15 s.
@pytest.mark.timeout(1000)
def test_dashboard_and_js_client_in_chromium(
    browser: Browser, artifacts: Path, tmp_path: Path
) -> None:
    figures: dict[str, object] = {"chromium": browser.version}
    started = time.monotonic()
    server, port = start_server(*SERVER_ARGS)
    silent = FrozenServer()
    frozen = None
    servers = [server]
    try:
        base = f"http://127.0.0.1:{port}"
        # 1. The dashboard, and its own connection with an RTT.
        dash = browser.new_page(width=1000, height=600)
        assert browser.call("goto", page=dash, url=base + "/") == 200
        own = browser.wait_for(dash, SELF_ROW, timeout=SLACK)
        assert own["kind"] == "dashboard" and "this page" in own["text"]
        assert 0 < own["rtt"] < SLACK * 1000, own
        figures["dashboard_row_server_rtt_ms"] = own["rtt"]
        stats = browser.wait_for(
            dash, f"{DASH}.client.stats.pongsReceived >= 1 && {DASH}.client.stats", SLACK
        )
        assert stats["misses"] == 0 and 0 < stats["lastRtt"] < SLACK * 1000, stats
        figures["dashboard_page_own_rtt_ms"] = round(stats["lastRtt"], 3)
        header = browser.evaluate(dash, "document.getElementById('self-rtt').textContent")
        assert header.endswith(" ms"), header

        # 2. A page with the classic-script client; its path is shown without the query.
        app = browser.new_page(width=800, height=600)
        browser.call("addScript", page=app, url=base + "/heartbeat-client.global.js")
        assert browser.evaluate(app, CLIENT_SETUP) == "function"
        ws = f"ws://127.0.0.1:{port}"
        browser.evaluate(
            app,
            f"make('app', '{ws}/app-client?token=secret', "
            "{pingInterval: 400, timeout: 3000, backoff: {initial: 200, maximum: 2000}})",
        )
        browser.wait_for(app, "app.stats.pongsReceived >= 2", SLACK)
        row = browser.wait_for(
            dash,
            """(() => [...document.querySelectorAll('tr[data-kind="client"]')]
                 .map((tr) => tr.textContent).find((t) => t.includes('/app-client')
                 && t.includes('peer pings: ')))()""",
            SLACK,
        )
        assert "secret" not in row and "?" not in row, row

        # 3a. Late-timer rule: the main thread blocks 2 s right after a ping is sent.
        browser.evaluate(
            app,
            f"""make('stall', '{ws}/stall', {{pingInterval: 300, timeout: 1000,
                stallThreshold: 250, stallGrace: 150, liveness: 'pong'}})""",
        )
        browser.evaluate(
            app,
            """(() => { let blocked = false;
                 stall.on('ping', () => { if (blocked) return; blocked = true;
                   const end = performance.now() + 2000; while (performance.now() < end) {} });
                 return true; })()""",
        )
        survived = browser.wait_for(app, "stall.stats.pongsReceived >= 3 && stall.stats", SLACK)
        assert survived["misses"] == 0 and survived["maxRtt"] >= 2000, survived
        assert browser.evaluate(app, "count('stall', 'dead') + count('stall', 'close')") == 0
        figures["blocked_2000ms_rtt_ms"] = round(survived["maxRtt"], 1)
        figures["blocked_2000ms_stalls"] = survived["stalls"]
        browser.evaluate(app, "stall.close()")

        # 3b. A server that goes silent after the handshake: dead, then a reconnect.
        browser.evaluate(
            app,
            f"""make('lost', 'ws://127.0.0.1:{silent.port}/', {{pingInterval: 300,
                timeout: 500, backoff: {{initial: 100, maximum: 200}}}})""",
        )
        browser.wait_for(app, "count('lost', 'dead') >= 1 && count('lost', 'open') >= 2", SLACK)
        dead = browser.evaluate(app, "log.find((e) => e.name === 'lost' && e.type === 'dead')")
        assert 500 <= dead["detail"]["waited"] < 500 + 1000 * SLACK, dead
        figures["silent_server_declared_dead_after_ms"] = round(dead["detail"]["waited"], 1)
        browser.evaluate(app, "lost.close()")
        assert silent.accepted >= 2

        # 4. A frozen client: the server declares it dead; the dashboard shows it closed.
        frozen = open_websocket(port, "/frozen")
        frozen_at = time.monotonic()
        peer = f"127.0.0.1:{frozen.getsockname()[1]}"
        browser.wait_for(dash, _row(peer), SLACK)  # listed while open
        gone = browser.wait_for(
            dash,
            f"(() => {{ const r = {_row(peer)}; return r && r.dead === 'true' && r; }})()",
            INTERVAL + TIMEOUT + SLACK,
        )
        shown_after = time.monotonic() - frozen_at
        assert gone["state"] == "closed" and "1011 heartbeat-timeout" in gone["text"], gone
        (dead_log,) = server.wait_for("dead")
        assert dead_log["peer"] == peer, dead_log  # nobody else was declared dead
        assert TIMEOUT * 1000 <= dead_log["waited_ms"] < (TIMEOUT + SLACK) * 1000
        figures["frozen_client_dead_on_dashboard_after_s"] = round(shown_after, 2)
        browser.wait_for(dash, f"{DASH}.view.series.size >= 2", SLACK)  # chart: 2+ lines
        shot = artifacts / "dashboard.png"
        browser.call("screenshot", page=dash, path=str(shot), fullPage=True)
        assert shot.stat().st_size > 10_000
        if os.environ.get("HEARTBEAT_UPDATE_SCREENSHOT"):
            docs = Path(__file__).resolve().parents[2] / "docs" / "_static"
            shutil.copyfile(shot, docs / "dashboard.png")

        # The same page on a phone-sized screen: nothing is wider than the screen (the
        # table's rows become cards, one labelled line per column).
        phone = browser.new_page(width=390, height=844)
        assert browser.call("goto", page=phone, url=base + "/") == 200
        browser.wait_for(phone, "document.querySelectorAll('tbody tr').length >= 3", SLACK)
        fits = browser.evaluate(
            phone,
            """(() => ({page: document.documentElement.scrollWidth, screen: innerWidth,
                 table: document.querySelector('.table-wrap').scrollWidth,
                 rtt: document.querySelector('td.rtt').getBoundingClientRect().right}))()""",
        )
        assert fits["page"] <= fits["screen"] and fits["table"] <= fits["screen"], fits
        assert fits["rtt"] <= fits["screen"], fits  # the RTT is on screen, no scrolling
        browser.call("screenshot", page=phone, path=str(artifacts / "dashboard-phone.png"))
        browser.call("closePage", page=phone)

        # 5. Restart on the same port: both pages come back by themselves.
        before = browser.evaluate(dash, f"{DASH}.view.hellos")
        server.signal(signal.SIGTERM)
        assert server.finish() == 0
        down_at = time.monotonic()
        server = Command("serve", "--port", str(port), "--log-format", "json", *SERVER_ARGS)
        servers.append(server)
        server.wait_for("listening")
        up_at = time.monotonic()
        browser.wait_for(
            dash,
            f"{DASH}.client.isOpen && {DASH}.client.stats.reconnects >= 1 "
            f"&& {DASH}.view.hellos > {before}",
            SLACK,
        )
        browser.wait_for(dash, SELF_ROW, SLACK)
        browser.wait_for(app, "app.isOpen && app.stats.reconnects >= 1", SLACK)
        figures["server_down_s"] = round(up_at - down_at, 2)
        figures["reconnected_after_restart_s"] = round(time.monotonic() - up_at, 2)
        retries = browser.evaluate(app, "log.filter((e) => e.name === 'app' && e.type === 'retry')")
        assert retries and all(0 <= r["detail"]["delay"] <= 2000 for r in retries), (
            retries
        )  # full jitter under the cap

        assert browser.page_errors == [], browser.page_errors
        figures["scenario_s"] = round(time.monotonic() - started, 1)
    finally:
        if frozen is not None:
            frozen.close()
        silent.close()
        for proc in servers:
            proc.kill()
        (artifacts / "browser-figures.json").write_text(json.dumps(figures, indent=2))
    print(json.dumps(figures))
