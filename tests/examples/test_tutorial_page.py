"""docs/tutorial.rst as a reader follows it: the commands of its console blocks run as
written, from the checkout, on 127.0.0.1:8765, and print what the page shows (up to times
and ports: ``tests.support.docblocks.output_matches``). The freeze-and-resume story runs for
real: the client's process is stopped with SIGSTOP (what Control-z does, short of the
shell's bookkeeping) and resumed with SIGCONT (what ``fg`` does).

The programs themselves are also driven in-process, with short timings, by
``test_tutorial.py``.
"""

from __future__ import annotations

import re
import signal
import time
from collections.abc import Iterator

import pytest

from tests.cli.harness import SLACK, Command, as_written
from tests.support.docblocks import (
    command_lines,
    doc_block,
    documented_port,
    output_matches,
    session,
)

PAGE = "docs/tutorial.rst"
#: examples/tutorial_server.py's HeartbeatConfig, which the page quotes (5 + 3 s).
SERVER_INTERVAL, SERVER_TIMEOUT = 5.0, 3.0


@pytest.fixture(autouse=True)
def port() -> Iterator[int]:
    with documented_port() as held:
        yield held


def _the_command(block: str) -> tuple[str, list[str]]:
    """The one command of a console block, and the output the page shows for it."""
    (step,) = session(block)
    return step


def _start_server() -> Command:
    command, shown = _the_command(doc_block(PAGE, "tutorial-server"))
    server = as_written(command)
    line = server.wait_text("listening on", timeout=SLACK)
    assert output_matches(shown, [line]), (shown, line)
    return server


def _stop(program: Command) -> None:
    """Control-c: the program stops quietly (no traceback), with status 0."""
    program.signal(signal.SIGINT)
    assert program.finish() == 0, program.stderr[-2000:]
    assert "Traceback" not in program.stderr, program.stderr[-2000:]


def test_the_server_and_the_client() -> None:
    server = _start_server()
    try:
        command, shown = _the_command(doc_block(PAGE, "tutorial-client"))
        client = as_written(command)
        try:
            assert client.finish(timeout=SLACK + 10) == 0, client.stderr[-2000:]
        finally:
            client.kill()
        assert output_matches(shown, client.lines), (shown, client.lines)
        assert client.stderr == ""
        _stop(server)
    finally:
        server.kill()


def test_a_frozen_client_is_closed_and_finds_out_when_resumed() -> None:
    """The page: the server prints its verdict at most interval + timeout after the frozen
    client's last sign of life; resumed, the client reads the close frame its kernel kept,
    prints one line and exits with status 1, without a traceback."""
    server = _start_server()
    command, _ = _the_command(doc_block(PAGE, "tutorial-client"))
    client = as_written(command)
    try:
        client.wait_text("ping:", timeout=SLACK)  # now it waits for its heartbeats
        client.signal(signal.SIGSTOP)
        stopped_at = time.monotonic()

        (verdict,) = doc_block(PAGE, "tutorial-frozen-server").splitlines()
        line = server.wait_text("no answer for", timeout=SERVER_INTERVAL + SERVER_TIMEOUT + SLACK)
        after = time.monotonic() - stopped_at
        assert output_matches([verdict], [line]), (verdict, line)
        waited = float(re.search(r"no answer for ([0-9.]+) s", line).group(1))  # type: ignore[union-attr]
        assert waited >= SERVER_TIMEOUT, line  # never before the timeout ran out
        # Its last sign of life came at most an interval before the stop.
        assert SERVER_TIMEOUT <= after <= SERVER_INTERVAL + SERVER_TIMEOUT + SLACK, after
        printed_before = len(client.lines)

        client.signal(signal.SIGCONT)
        assert client.finish(timeout=SLACK) == 1, client.stderr[-2000:]
        resumed = client.lines[printed_before:]
        assert output_matches(doc_block(PAGE, "tutorial-frozen-client"), resumed), resumed
        assert client.stderr == "", client.stderr[-2000:]  # no traceback: an expected close
        _stop(server)
    finally:
        client.kill()
        server.kill()


def test_the_client_that_stays_connected() -> None:
    """Control-c on the server (1001), attempts while it is down, then the server again."""
    command, shown = _the_command(doc_block(PAGE, "tutorial-reconnect"))
    server = _start_server()
    client = as_written(command)
    try:
        client.wait_text("received: hello #1", timeout=SLACK)
        _stop(server)
        client.wait_text("(attempt 2)", timeout=SLACK)
        server = _start_server()
        client.wait_text("received: hello #2", timeout=SLACK)
        _stop(client)
        assert output_matches(shown, client.lines), (shown, client.lines)
        _stop(server)
    finally:
        client.kill()
        server.kill()


def test_the_command_line() -> None:
    """The server in one terminal, ``heartbeat ping --count 5`` in another; the page's third
    command, ``heartbeat demo``, is run by tests/cli/test_cli_demo.py."""
    serve, ping, demo = command_lines(doc_block(PAGE, "tutorial-commands"))
    assert demo == "heartbeat demo"
    server = as_written(serve)
    try:
        server.wait_text("listening on 127.0.0.1:8765", timeout=SLACK)
        pinger = as_written(ping)
        try:
            assert pinger.finish(timeout=SLACK + 10) == 0, pinger.stderr[-2000:]
        finally:
            pinger.kill()
        answers = [line for line in pinger.lines if line.startswith("pong from")]
        assert [re.search(r"seq=(\d+)", a).group(1) for a in answers] == ["1", "2", "3", "4", "5"]  # type: ignore[union-attr]
        assert any(line.startswith("5 sent, 5 received, 0% loss") for line in pinger.lines)
        _stop(server)
    finally:
        server.kill()
