"""The ``heartbeat`` command lines of README.md, run as written on 127.0.0.1:8765.

The README lists them as a menu; each ``heartbeat ping`` line runs against the
``heartbeat serve`` line above it, as a reader would try them (the server in one terminal,
the pings in another). The first line, ``heartbeat demo``, is run by test_cli_demo.py.
"""

from __future__ import annotations

import json
import signal
from collections.abc import Iterator

import pytest

from tests.support.docblocks import command_lines, doc_block, documented_port

from .harness import SLACK, Command, as_written


@pytest.fixture(autouse=True)
def port() -> Iterator[int]:
    with documented_port() as held:
        yield held


def _stop(program: Command) -> None:
    """Ctrl-C, as the README says: a graceful stop, exit 0, no traceback."""
    program.signal(signal.SIGINT)
    assert program.finish() == 0, program.stderr[-2000:]
    assert "Traceback" not in program.stderr


def test_readme_command_lines_run_as_written() -> None:
    demo, serve, ping, serve_app, ping_app = command_lines(
        doc_block("README.md", "readme-commands"), prompt=""
    )
    assert demo == "heartbeat demo"

    # An echo server with the defaults, and ping(8) for WebSockets until Ctrl-C.
    server = as_written(serve)
    try:
        server.wait_text("listening on 127.0.0.1:8765", timeout=SLACK)
        pinger = as_written(ping)
        try:
            pinger.wait_text("seq=2", timeout=SLACK)  # two answers, one a second
            _stop(pinger)  # "Ctrl-C for the summary"
        finally:
            pinger.kill()
        assert any(" heartbeat statistics ---" in line for line in pinger.lines), pinger.lines
        assert any(line.startswith("rtt min/avg/max/mdev = ") for line in pinger.lines)
        _stop(server)
    finally:
        server.kill()

    # Application-level heartbeats, JSON lines on both sides, five heartbeats and a summary.
    server = as_written(serve_app)
    try:
        (listening,) = server.wait_for("listening")
        assert (listening["port"], listening["mode"]) == (8765, "app"), listening
        assert (listening["interval"], listening["timeout"]) == (5, 3), listening
        pinger = as_written(ping_app)
        try:
            assert pinger.finish(timeout=SLACK + 10) == 0, pinger.stderr[-2000:]
        finally:
            pinger.kill()
        records = [json.loads(line) for line in pinger.lines]
        assert [r["seq"] for r in records if r["event"] == "pong"] == [1, 2, 3, 4, 5]
        summary = records[-1]
        assert (summary["event"], summary["sent"], summary["received"]) == ("summary", 5, 5)
        server.wait_for("close")  # the pinger's connection, closed by it
        _stop(server)
        assert server.records()[-1]["event"] == "stopped"
    finally:
        server.kill()
