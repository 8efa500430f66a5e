"""The ``heartbeat`` command against hostile peers and a hostile environment.

Issue 18, finding 8 (``heartbeat ping`` exits 1 with the reason when our side fails the
connection) and finding 7 (``heartbeat serve`` keeps every heartbeat on schedule while
nobody reads its stdout). Each test fails on d061d09.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator

import pytest

from tests.cli.harness import SLACK, Command
from tests.support.frames import (
    BINARY,
    PING,
    TEXT,
    frame,
    frame_header,
    upgrade_response,
    websocket_key,
)

from .harness import record


@pytest.fixture
def cleanup() -> Iterator[list[Command]]:
    """Commands to kill (by pid) at teardown if a test left them running."""
    started: list[Command] = []
    yield started
    for command in started:
        command.kill()

# ---------------------------------------------------------------- finding 8

#: What a hostile server sends after its 101, and the close code our client must fail with.
ATTACKS = {
    "masked frame from the server": (frame(TEXT, b"hello"), 1002),
    "invalid UTF-8 in a text message": (frame(TEXT, b"\xff\xfe\xfd", mask=None), 1007),
    "ping flood (5,000 pings at once)": (frame(PING, b"x", mask=None) * 5000, 1008),
    "message over --max-size (2 MiB)": (
        frame_header(BINARY, 2 << 20) + b"\0" * (2 << 20),
        1009,
    ),
}


@contextlib.contextmanager
def hostile_server(payload: bytes) -> Iterator[int]:
    """One connection: answer the upgrade, send ``payload``, read until the client goes."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(SLACK)

    def serve() -> None:
        with contextlib.suppress(OSError):
            sock, _ = listener.accept()
            with sock:
                sock.settimeout(SLACK)
                head = b""
                while b"\r\n\r\n" not in head:
                    chunk = sock.recv(65536)
                    if not chunk:
                        return
                    head += chunk
                sock.sendall(upgrade_response(websocket_key(head)) + payload)
                while sock.recv(65536):
                    pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        listener.close()
        thread.join(SLACK)


@pytest.mark.parametrize("attack", list(ATTACKS))
def test_ping_exits_1_with_the_reason_when_the_server_breaks_the_protocol(
    attack: str, cleanup: list[Command]
) -> None:
    payload, code = ATTACKS[attack]
    with hostile_server(payload) as port:
        ping = Command("ping", f"ws://127.0.0.1:{port}/", "--count", "3", "--json")
        cleanup.append(ping)
        assert ping.finish() == 1, (ping.lines, ping.stderr)
    failed = ping.events("failed")
    assert [r["code"] for r in failed] == [code], ping.lines
    assert failed[0]["reason"], failed
    assert ping.events("summary"), ping.lines
    record(f"ping against a server sending a {attack}", "cli", f"exit 1, failed {code}", "")


def test_ping_says_why_in_text_mode(cleanup: list[Command]) -> None:
    payload, _ = ATTACKS["invalid UTF-8 in a text message"]
    with hostile_server(payload) as port:
        ping = Command("ping", f"ws://127.0.0.1:{port}/", "--count", "3")
        cleanup.append(ping)
        assert ping.finish() == 1, (ping.lines, ping.stderr)
    line = ping.wait_text("broke the WebSocket protocol")
    assert "1007" in line, ping.lines
