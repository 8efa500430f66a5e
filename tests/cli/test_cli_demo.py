"""``heartbeat demo`` runs to completion by itself and shows what it promises."""

from __future__ import annotations

import os
import re
import signal
import time

import pytest

from tests.support.docblocks import command_lines, doc_block

from .harness import Command, as_written

DEMO_LIMIT = 0.5 + 1.0  # the demo server's interval + timeout


def test_demo_runs_to_completion() -> None:
    """``heartbeat demo``, run as README.md and the tutorial write it."""
    readme = command_lines(doc_block("README.md", "readme-commands"), prompt="")
    tutorial = command_lines(doc_block("docs/tutorial.rst", "tutorial-commands"))
    assert readme[0] == tutorial[-1] == "heartbeat demo"
    started = time.monotonic()
    demo = as_written(readme[0])
    try:
        assert demo.finish(timeout=90.0) == 0, (demo.lines[-30:], demo.stderr[-2000:])
    finally:
        demo.kill()
    elapsed = time.monotonic() - started
    text = "\n".join(demo.lines)
    assert "\x1b[" not in text  # no colour into a pipe (and NO_COLOR is set)
    assert "Traceback" not in demo.stderr

    # Live RTT lines from both heartbeat styles, and from the separate `heartbeat ping`.
    assert re.search(r"alice +ping frames +heartbeat +\d+ +rtt", text)
    assert re.search(r'bob +\{"type":"ping"\} heartbeat +\d+ +rtt', text)
    assert "(own process: heartbeat ping)" in text

    # The frozen client is declared dead by the server, within interval + timeout (+ slack).
    assert "carol: heartbeat" in text and "declared dead, close 1011" in text
    found = re.search(r"found carol dead ([0-9.]+) s after it froze", text)
    assert found, text
    assert 0 < float(found.group(1)) <= DEMO_LIMIT + 3.0  # slack: a loaded machine

    # The restart: 1001, refused attempts with growing waits, then back.
    assert "closed with 1001 'server restarting'" in text
    assert "connection refused" in text
    waits = re.findall(r"alice +retry \d+ in ([0-9.]+) s", text)
    assert [float(w) for w in waits[:2]] == [0.25, 0.5]  # exponential: 0.25 s doubling
    assert re.search(r"alice +reconnected after [0-9.]+ s", text)
    assert re.search(r"bob +reconnected after [0-9.]+ s", text)

    # The summary closes the show.
    summary = text[text.index("== summary") :]
    assert "live RTT:" in summary and "half-open:" in summary and "restart:" in summary
    assert elapsed < 60.0


def test_demo_stops_cleanly_on_sigterm() -> None:
    """Interrupted while the frozen client exists: it exits 0 and leaves no process behind."""
    demo = Command("demo")
    try:
        demo.wait_text("carol  frozen", timeout=60.0)
        demo.signal(signal.SIGTERM)
        assert demo.finish(timeout=30.0) == 0, demo.stderr[-2000:]
    finally:
        demo.kill()
    assert "demo interrupted" in demo.lines[-1]
    assert "Traceback" not in demo.stderr
    started = re.search(r"carol +started as process (\d+)", "\n".join(demo.lines))
    assert started, demo.lines
    with pytest.raises(ProcessLookupError):  # killed and reaped
        os.kill(int(started.group(1)), 0)
