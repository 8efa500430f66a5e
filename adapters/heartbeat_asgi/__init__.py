"""heartbeat_asgi: application-level heartbeats for any ASGI WebSocket (Starlette,
FastAPI; tested under uvicorn and hypercorn), as one middleware.

ASGI has no ping or pong event, so the heartbeat is ``{"type":"ping"}`` answered by
``{"type":"pong"}`` (what a browser can answer). :class:`HeartbeatMiddleware` reads the
server's ``receive()`` for the application, all the time: every message is a sign of
life, heartbeat messages are handled and never reach the application, everything else
waits in a bounded queue for the application's own ``receive_text()`` /
``receive_json()`` / ``iter_*()``. The core decides when to ping and when the peer is
dead: then it sends close 1011 ``heartbeat-timeout`` and hands the application
``websocket.disconnect`` with code 1011 (Starlette raises ``WebSocketDisconnect(1011)``).

.. fragment: two lines of a program; examples/fastapi_app.py is the whole of it, and
   the tests run it

.. code-block:: python

    app = HeartbeatMiddleware(app, config=HeartbeatConfig(interval=20, timeout=10))
    uvicorn.run(app, ws_ping_interval=None)

Turn the server's own protocol pings off (uvicorn: ``ws_ping_interval=None``; hypercorn's
are off unless ``websocket_ping_interval`` is set), or the peer gets two heartbeats. An
ASGI application cannot drop a socket: after the close frame, the server bounds the
closing handshake itself (uvicorn: 10 s).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections import deque
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from heartbeat_asyncio import LoopRunner

from heartbeat_core import (
    JSON_CODEC,
    AppCodec,
    ConfigError,
    EventCallback,
    HeartbeatConfig,
    HeartbeatStyle,
    RandomSource,
    __version__,
)
from heartbeat_core.config import DEFAULT_MAX_QUEUE

__all__ = ["ASGIApp", "AsgiHeartbeat", "HeartbeatMiddleware", "Message", "__version__"]

Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
#: An ASGI 3 application.
ASGIApp = Callable[[MutableMapping[str, Any], Receive, Send], Awaitable[None]]


class AsgiHeartbeat(LoopRunner):
    """The heartbeat of one ASGI WebSocket: the middleware's state for it. ``stats``,
    ``latency`` and ``close_code`` are there for the application in
    ``scope["state"]["heartbeat"]`` (Starlette: ``websocket.state.heartbeat``)."""

    __slots__ = ("_inbox", "_outbox", "_ready", "_receive", "_send", "_sender", "_space")

    def __init__(
        self,
        receive: Receive,
        send: Send,
        config: HeartbeatConfig,
        *,
        codec: AppCodec,
        on_event: EventCallback | None,
        random: RandomSource | None,
        scope: MutableMapping[str, Any],
    ) -> None:
        super().__init__(
            asyncio.get_running_loop(),
            config,
            codec=codec,
            on_event=on_event,
            owner=scope,
            random=random,
        )
        self._receive = receive
        self._send = send
        self._inbox: deque[Message] = deque()
        self._ready = asyncio.Event()  # the inbox has a message
        self._space = asyncio.Event()  # the inbox has room again
        self._outbox: asyncio.Queue[Message] = asyncio.Queue()
        self._sender: asyncio.Task[None] | None = None

    # ----------------------------------------------------------------- sends

    def send_text(self, text: str) -> None:
        self._outbox.put_nowait({"type": "websocket.send", "text": text})

    def send_close(self, code: int, reason: str) -> None:
        self._outbox.put_nowait({"type": "websocket.close", "code": code, "reason": reason})

    def send_ping(self, payload: bytes) -> None:  # pragma: no cover - style is APP
        raise AssertionError("ASGI cannot send ping frames")

    def send_pong(self, payload: bytes) -> None:  # pragma: no cover - style is APP
        raise AssertionError("ASGI cannot send pong frames")

    def close_transport(self) -> None:
        """The server owns the socket; the application is told the connection ended."""
        self._deliver({"type": "websocket.disconnect", "code": self.close_code or 1006})

    def abort(self) -> None:
        self.close_transport()

    async def _sending(self) -> None:
        while True:
            message = await self._outbox.get()
            try:
                await self._send(message)
            finally:
                self._outbox.task_done()

    async def _flush(self) -> None:
        """Wait (at most ``close_timeout``) until the heartbeat's messages were handed
        to the server: a close frame is never left behind."""
        with contextlib.suppress(asyncio.TimeoutError, OSError):
            await asyncio.wait_for(self._outbox.join(), self.config.close_timeout)

    # ---------------------------------------------------------------- inbound

    def _deliver(self, message: Message) -> None:
        self._inbox.append(message)
        self._ready.set()

    async def _reading(self, max_queue: int) -> None:
        """Read the server's messages until it reports the end (the application's
        messages wait in the inbox, at most ``max_queue`` of them)."""
        while True:
            message = await self._receive()
            kind = message.get("type")
            if kind == "websocket.disconnect":
                if self.close_code is None:
                    self.close_started(int(message.get("code", 1005)), by_peer=True)
                self._deliver(message)
                self.lost()
                return
            self.received()
            text = message.get("text")
            if text is not None and self.text_received(text):
                continue
            self._deliver(message)
            if len(self._inbox) >= max_queue:
                self.pause_reading()  # rule paused-reading: nobody is declared dead
                self._space.clear()
                await self._space.wait()
                self.resume_reading()

    async def app_receive(self) -> Message:
        """The application's ``receive()`` once the WebSocket is accepted (after the
        end, ``websocket.disconnect`` again, as ASGI servers answer)."""
        while not self._inbox:
            if self.ended:
                return {"type": "websocket.disconnect", "code": self.close_code or 1006}
            self._ready.clear()
            await self._ready.wait()
        message = self._inbox.popleft()
        self._space.set()
        return message


class HeartbeatMiddleware:
    """Wrap an ASGI application: each WebSocket it accepts gets the core's
    application-level heartbeat (``config`` is forced to ``style=APP``).
    ``on_event(scope, event)`` sees every event (RTT samples, deaths, closes);
    ``max_queue``: messages waiting for the application before reading pauses. HTTP
    and lifespan traffic passes through untouched."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        config: HeartbeatConfig | None = None,
        codec: AppCodec = JSON_CODEC,
        on_event: EventCallback | None = None,
        random: RandomSource | None = None,
        max_queue: int = DEFAULT_MAX_QUEUE,
    ) -> None:
        if not callable(app):
            raise ConfigError(f"app must be an ASGI application, got {app!r}")
        config = HeartbeatConfig() if config is None else config
        if not isinstance(config, HeartbeatConfig):
            raise ConfigError(f"config must be a HeartbeatConfig, got {config!r}")
        if isinstance(max_queue, bool) or not isinstance(max_queue, int) or max_queue < 1:
            raise ConfigError(f"max_queue must be an int >= 1, got {max_queue!r}")
        self.app = app
        self.config: HeartbeatConfig = dataclasses.replace(config, style=HeartbeatStyle.APP)
        self.codec = codec
        self.on_event = on_event
        self.random = random
        self.max_queue = max_queue

    async def __call__(self, scope: MutableMapping[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] != "websocket":
            await self.app(scope, receive, send)
            return
        hb = AsgiHeartbeat(
            receive,
            send,
            self.config,
            codec=self.codec,
            on_event=self.on_event,
            random=self.random,
            scope=scope,
        )
        scope.setdefault("state", {})["heartbeat"] = hb
        tasks: list[asyncio.Task[None]] = []
        accepted = False

        async def app_receive() -> Message:
            return await (hb.app_receive() if accepted else receive())

        async def app_send(message: Message) -> None:
            nonlocal accepted
            kind = message.get("type")
            if kind == "websocket.close" and hb.close_code is not None:
                return  # the heartbeat has closed it (the application closes too late)
            await send(message)
            if kind == "websocket.accept" and not accepted:
                accepted = True
                tasks.append(asyncio.ensure_future(hb._sending()))
                tasks.append(asyncio.ensure_future(hb._reading(self.max_queue)))
                hb.opened()
            elif kind == "websocket.close":
                hb.close_started(int(message.get("code", 1000)), message.get("reason") or "")

        try:
            await self.app(scope, app_receive, app_send)
        finally:
            if tasks:
                tasks[1].cancel()  # the reader first: the sender flushes the close frame
                await hb._flush()
            for task in tasks:
                task.cancel()
            if tasks:
                await asyncio.wait(tasks)
            hb.lost()
