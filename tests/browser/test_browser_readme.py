"""README.md's browser-client example, run as written in Chromium, against
``heartbeat serve``: the example is added as a module script to a document of the
server's origin (``/heartbeat-client.js`` itself, which, unlike the dashboard page, carries
no Content-Security-Policy forbidding inline scripts), imports ``/heartbeat-client.js``
from the server and connects to ``/chat``. The server runs application-level heartbeats, so
it measures RTTs on that connection only if the example's client answers them."""

from __future__ import annotations

import json

from tests.cli.harness import SLACK, start_server
from tests.support.docblocks import doc_block
from tests.support.waiting import wait_until

from .harness import Browser


def test_readme_browser_example_runs_as_written(browser: Browser) -> None:
    example = doc_block("README.md", "readme-js")
    server, port = start_server("--mode", "app", "--interval", "0.3", "--timeout", "3", "--rtt-log")
    try:
        page = browser.new_page()
        url = f"http://127.0.0.1:{port}/heartbeat-client.js"
        assert browser.call("goto", page=page, url=url) == 200
        added = browser.evaluate(
            page,
            f"""(() => {{ const script = document.createElement('script');
                 script.type = 'module'; script.textContent = {json.dumps(example)};
                 document.head.append(script); return true; }})()""",
        )
        assert added is True
        (opened,) = server.wait_for("open")
        assert opened["path"] == "/chat", opened
        wait_until(
            lambda: [r for r in server.events("rtt") if r["peer"] == opened["peer"]],
            SLACK,
            lambda: f"a heartbeat answered on /chat; server said {server.lines[-10:]}",
        )
        assert browser.page_errors == [], browser.page_errors
        assert not server.events("dead") and not server.events("close"), server.lines[-10:]
    finally:
        server.kill()
