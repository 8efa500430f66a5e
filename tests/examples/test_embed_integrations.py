"""The integrations' how-to programs, run as written: examples/websockets_server.py (its
server and its client) and examples/fastapi_app.py (its runner, in a process of its own)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.versions import HAS_WEBSOCKETS, WEBSOCKETS_REASON

if not HAS_WEBSOCKETS:
    pytest.skip(WEBSOCKETS_REASON, allow_module_level=True)

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosedError

from examples import fastapi_app, websockets_server
from heartbeat_core import JSON_CODEC, AppKind, HeartbeatConfig
from tests.support.frames import PING, TEXT, parse_frames
from tests.support.peers import FrozenServer, open_websocket

from .helpers import CLOSE_TIMEOUT, INTERVAL, TIMEOUT, WAIT

pytestmark = pytest.mark.interop
ROOT = Path(__file__).resolve().parents[2]
CONFIG = HeartbeatConfig(interval=INTERVAL, timeout=TIMEOUT, close_timeout=CLOSE_TIMEOUT)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def test_websockets_server_echoes_and_logs_rtts(caplog: pytest.LogCaptureFixture) -> None:
    port = free_port()

    async def main() -> None:
        server = asyncio.create_task(websockets_server.main(port, CONFIG))
        try:
            for _ in range(int(WAIT / 0.01)):  # bounded: the server starts in a moment
                with contextlib.suppress(OSError):
                    async with connect(f"ws://127.0.0.1:{port}/") as ws:
                        await ws.send("hello")
                        assert await asyncio.wait_for(ws.recv(), WAIT) == "hello"
                        await asyncio.sleep(3 * INTERVAL)  # websockets answers our pings
                    return
                await asyncio.sleep(0.01)
            raise AssertionError("the example's server did not start")
        finally:
            server.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await server

    with caplog.at_level(logging.INFO, logger="examples.websockets_server"):
        asyncio.run(main())
    answered = [r.getMessage() for r in caplog.records if "answered in" in r.getMessage()]
    assert answered[:2] == [m for m in answered[:2] if m.startswith("heartbeat ")]
    assert len(answered) >= 2, caplog.text


def test_websockets_client_finds_a_frozen_server_dead(capsys: pytest.CaptureFixture[str]) -> None:
    frozen = FrozenServer()
    try:

        async def main() -> None:
            started = time.monotonic()
            with pytest.raises(ConnectionClosedError) as caught:
                await asyncio.wait_for(
                    websockets_server.watch(f"ws://127.0.0.1:{frozen.port}/", CONFIG), WAIT
                )
            assert caught.value.sent is not None
            assert (caught.value.sent.code, caught.value.sent.reason) == (
                1011,
                "heartbeat-timeout",
            )
            assert time.monotonic() - started < INTERVAL + TIMEOUT + 1.0

        asyncio.run(main())
    finally:
        frozen.close()


def test_fastapi_app_as_its_runner_serves_it() -> None:
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; from examples import fastapi_app as m; "
            "m.app.user_middleware[0].kwargs['config'] = "
            f"__import__('heartbeat_core').HeartbeatConfig(interval={INTERVAL}, timeout=1.0); "
            f"m.run({port})",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:

        async def main() -> None:
            for _ in range(int(WAIT / 0.05)):
                try:
                    ws = await connect(f"ws://127.0.0.1:{port}/ws", ping_interval=None)
                    break
                except OSError:
                    await asyncio.sleep(0.05)
            else:
                raise AssertionError("the FastAPI example did not start")
            async with ws:
                await ws.send('{"n": 1}')
                got: list[str] = []
                pings = 0
                while pings < 2:  # answer {"type":"ping"}, as a browser page would
                    message = await asyncio.wait_for(ws.recv(), WAIT)
                    assert isinstance(message, str)
                    if JSON_CODEC.classify(message) is AppKind.PING:
                        pings += 1
                        await ws.send(JSON_CODEC.pong_text)
                    else:
                        got.append(message)
                assert got == ['{"you said":{"n":1}}']

        asyncio.run(main())
        # On the wire: our {"type":"ping"} messages, and no ping frame of uvicorn's.
        raw = open_websocket(port, "/ws")
        try:
            data = b""
            end = time.monotonic() + 4 * INTERVAL
            while (left := end - time.monotonic()) > 0:
                raw.settimeout(left)
                try:
                    data += raw.recv(65536)
                except TimeoutError:
                    break
            frames = parse_frames(data)
            assert [f.opcode for f in frames].count(TEXT) == 1, frames  # one outstanding
            assert PING not in [f.opcode for f in frames], frames
        finally:
            raw.close()
    finally:
        proc.terminate()
        try:
            proc.wait(5.0)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5.0)
        assert proc.stdout is not None
        proc.stdout.close()
    assert fastapi_app.app is not None
