"""heartbeat_aiohttp: the core's heartbeats inside aiohttp's WebSockets (3.14).

Server side, :class:`HeartbeatWebSocketResponse` is ``web.WebSocketResponse`` with the
core deciding liveness; client side, :func:`ws_connect` is ``session.ws_connect`` for a
session made with ``ws_response_class=HeartbeatClientWebSocketResponse``. aiohttp's own
``heartbeat`` is off; protocol pings or ``{"type":"ping"}`` messages run by the core's
rules, with RTT statistics, jitter, the flood rules and ``on_event``. The application
keeps aiohttp's API (``async for msg in ws``, ``receive_str``, ``receive_json``,
``send_*``, ``close``) and never sees a heartbeat message, a ping or a pong.

.. fragment: three lines of a handler; examples/aiohttp_server.py is the whole of it,
   and the tests run it

.. code-block:: python

    ws = HeartbeatWebSocketResponse(config=config)
    await ws.prepare(request)
    async for msg in ws: ...

Every inbound byte is a sign of life as it arrives, whether or not the handler is in
``receive()``; pings and heartbeat messages are answered when the handler reads (as
aiohttp's ``autoping`` does). A peer found dead is sent close 1011
``heartbeat-timeout``, its socket is released at once, the handler's ``receive()``
returns a close message, and ``ws.close_code`` is 1011 (the peer sees 1011 too).
Needs ``pip install 'heartbeat-core[aiohttp]'``.
"""

from __future__ import annotations

import asyncio
import struct
from collections import deque
from collections.abc import Awaitable, Callable
from functools import partial
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

try:
    import aiohttp
    from aiohttp import WSMessage, WSMsgType, web
    from aiohttp.http import WS_CLOSED_MESSAGE
except ImportError as _missing:  # pragma: no cover - depends on the environment
    raise ImportError(
        "heartbeat_aiohttp needs aiohttp >= 3.14: pip install 'heartbeat-core[aiohttp]'"
    ) from _missing

__all__ = [
    "AiohttpHeartbeat",
    "HeartbeatClientWebSocketResponse",
    "HeartbeatWebSocketResponse",
    "ws_connect",
    "__version__",
]

_Response = web.WebSocketResponse | aiohttp.ClientWebSocketResponse


class AiohttpHeartbeat(LoopRunner):
    """The heartbeat of one aiohttp WebSocket. A task of its own reads aiohttp's
    ``receive()`` all the time, so heartbeats run whether or not the handler reads:
    pings, pongs and heartbeat messages are handled there, everything else waits (at
    most ``max_queue`` messages, then reading pauses) for the handler's ``receive()``.
    The core's actions are written with aiohttp's frame writer, at once and in order."""

    __slots__ = ("_classify", "_inbox", "_max_queue", "_reader", "_ready", "_space", "_ws")

    def __init__(
        self,
        ws: _Response,
        loop: asyncio.AbstractEventLoop,
        config: HeartbeatConfig | None,
        *,
        codec: AppCodec = JSON_CODEC,
        on_event: EventCallback | None = None,
        random: RandomSource | None = None,
        max_queue: int = DEFAULT_MAX_QUEUE,
    ) -> None:
        super().__init__(loop, config, codec=codec, on_event=on_event, owner=ws, random=random)
        self._ws = ws
        cfg = self.state.config
        self._classify = cfg.style is HeartbeatStyle.APP or cfg.answer_app_pings
        self._max_queue = max_queue
        self._inbox: deque[WSMessage] = deque()
        self._ready = asyncio.Event()
        self._space = asyncio.Event()
        self._reader: asyncio.Task[None] | None = None

    # ----------------------------------------------------------------- sends

    def _write(self, payload: bytes, opcode: WSMsgType) -> None:
        ws: Any = self._ws  # aiohttp's writer, shared by both response classes
        if ws.closed or ws._closing or ws._writer.transport.is_closing():
            return
        ws._writer._write_websocket_frame(payload, opcode, 0)

    def send_ping(self, payload: bytes) -> None:
        self._write(payload, WSMsgType.PING)

    def send_pong(self, payload: bytes) -> None:
        self._write(payload, WSMsgType.PONG)

    def send_text(self, text: str) -> None:
        self._write(text.encode(), WSMsgType.TEXT)

    def send_close(self, code: int, reason: str) -> None:
        ws: Any = self._ws
        if ws.closed or ws._closing:  # (aiohttp has answered the peer's close)
            return
        self._write(struct.pack("!H", code) + reason.encode(), WSMsgType.CLOSE)
        ws._closing = True
        ws._close_code = code

    def close_transport(self) -> None:
        ws: Any = self._ws
        if ws.closed:
            return
        if ws._waiting:  # the reading task is in aiohttp's receive(): end it quietly
            ws._reader.feed_data(WS_CLOSED_MESSAGE, 0)  # (a cancel would record 1006)
        else:
            self.stop()
        ws._closed = True  # aiohttp's own close() is now a no-op
        if isinstance(ws, web.WebSocketResponse):
            ws._close_transport()
        else:
            ws._response.close()
        ws._close_code = self.close_code  # what we sent (1011 for a dead peer)
        # The handler's receive() ends: a close message, then nothing.
        self._deliver(WSMessage(WSMsgType.CLOSE, self.close_code, self.close_reason))
        self.loop.call_soon(self.lost)

    def abort(self) -> None:
        self.close_transport()

    # ---------------------------------------------------------------- inbound

    def start(self, receive: Callable[[], Awaitable[WSMessage]]) -> None:
        """The WebSocket is open: heartbeats start, and the reading task."""
        self.opened()
        self._reader = self.loop.create_task(self._reading(receive))

    def stop(self) -> None:
        """Stop the reading task (unless it is the caller: then it ends by itself)."""
        reader = self._reader
        if reader is not None and not reader.done() and reader is not asyncio.current_task():
            reader.cancel()

    def _deliver(self, msg: WSMessage) -> None:
        self._inbox.append(msg)
        self._ready.set()

    async def _reading(self, receive: Callable[[], Awaitable[WSMessage]]) -> None:
        while True:
            try:
                msg = await receive()
            except asyncio.TimeoutError:  # the response's receive_timeout: not ours
                continue
            except Exception as exc:
                self._deliver(WSMessage(WSMsgType.ERROR, exc, None))
                return
            if self.filter(msg):
                continue
            self._deliver(msg)
            if msg.type in _ENDS:
                return
            if len(self._inbox) >= self._max_queue:
                self.pause_reading()  # rule paused-reading: nobody is declared dead
                self._space.clear()
                await self._space.wait()
                self.resume_reading()

    async def next_message(self, timeout: float | None) -> WSMessage | None:
        """The next message for the handler (``None``: reading has ended and nothing is
        left); ``asyncio.TimeoutError`` after ``timeout`` seconds, as aiohttp's."""
        while not self._inbox:
            if self._reader is None or self._reader.done():
                return None
            self._ready.clear()
            await asyncio.wait_for(self._ready.wait(), timeout or None)
        msg = self._inbox.popleft()
        self._space.set()
        return msg

    def filter(self, msg: WSMessage) -> bool:
        """Feed a message that aiohttp's ``receive()`` returned to the core; True when
        it was a heartbeat (a ping, a pong, a heartbeat message), not for the handler."""
        kind = msg.type
        if kind is WSMsgType.PING:
            self.ping_received(msg.data)
            return True
        if kind is WSMsgType.PONG:
            self.pong_received(msg.data)
            return True
        if kind is WSMsgType.TEXT:
            return self._classify and self.text_received(msg.data)
        if kind is WSMsgType.CLOSE:
            self.close_received(msg.data, msg.extra or "")
        if self._ws.closed:
            self.loop.call_soon(self.lost)
        return False

    def framework_closing(self, code: int, message: bytes) -> None:
        """The application called aiohttp's ``close()``, or aiohttp answers the peer's
        close frame (``receive()`` saw it: ``ws._closing`` is set)."""
        ws: Any = self._ws
        if ws._closing and ws._close_code is not None:
            self.close_started(int(ws._close_code), by_peer=True)
        else:
            self.close_started(code, message.decode("utf-8", "replace"))


_ENDS = frozenset({WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR})


def _check(kwargs: dict[str, Any]) -> None:
    for name in ("heartbeat", "autoping"):
        if name in kwargs:
            raise ConfigError(
                f"{name} is taken by heartbeat_aiohttp: aiohttp's keepalive is off and the "
                "core's heartbeat answers and sends pings; set interval and timeout in config"
            )


async def _receive(
    heartbeat: AiohttpHeartbeat | None,
    timeout: float | None,
    framework_receive: Callable[[], Awaitable[Any]],
) -> Any:
    """Both classes' ``receive()``: the next message the heartbeat's reader passed on
    (it holds heartbeat messages back), else aiohttp's own ``receive()``."""
    msg = None if heartbeat is None else await heartbeat.next_message(timeout)
    return await framework_receive() if msg is None else msg


async def _close(
    ws: web.WebSocketResponse | aiohttp.ClientWebSocketResponse,
    heartbeat: AiohttpHeartbeat | None,
    code: int,
    message: bytes,
    framework_close: Callable[[], Awaitable[bool]],
) -> bool:
    """Both classes' ``close()``: the core learns of a close the application began before
    aiohttp sends it (no heartbeat after it), or of aiohttp's answer to the peer's."""
    answering = ws._closing
    if heartbeat is not None and not ws.closed and not answering:
        heartbeat.framework_closing(code, message)  # first: no heartbeat after it
    done = await framework_close()
    if heartbeat is not None:
        if answering:  # aiohttp answered the peer's close frame
            heartbeat.framework_closing(code, message)
        heartbeat.stop()
        heartbeat.lost()
    return done


def _close_code(heartbeat: AiohttpHeartbeat | None, framework: int | None) -> int | None:
    """aiohttp's close code, unless the core closed the connection: then the code it
    sent (aiohttp records 1006 when the reading task it was in ends with the socket)."""
    if heartbeat is not None and heartbeat.closed_by == "local" and heartbeat.close_code:
        return heartbeat.close_code
    return framework


class HeartbeatWebSocketResponse(web.WebSocketResponse):
    """``web.WebSocketResponse(**kwargs)`` whose liveness the core decides: ``config``,
    ``codec``, ``on_event(ws, event)``, ``random`` as for the other drivers.
    ``heartbeat`` and ``autoping`` are taken; ``timeout`` (aiohttp's bound on a closing
    handshake) defaults to the config's ``close_timeout``. ``heartbeat`` (the attribute)
    is this connection's :class:`AiohttpHeartbeat` once prepared."""

    def __init__(
        self,
        *,
        config: HeartbeatConfig | None = None,
        codec: AppCodec = JSON_CODEC,
        on_event: EventCallback | None = None,
        random: RandomSource | None = None,
        **kwargs: Any,
    ) -> None:
        _check(kwargs)
        cfg = HeartbeatConfig() if config is None else config
        kwargs.setdefault("timeout", cfg.close_timeout)
        # heartbeat= only makes aiohttp report every read (_on_data_received); its pings
        # stay off (_reset_heartbeat below).
        super().__init__(heartbeat=cfg.interval, autoping=False, **kwargs)
        self._hb_args = (cfg, codec, on_event, random)
        self.heartbeat: AiohttpHeartbeat | None = None

    async def prepare(self, request: web.BaseRequest) -> Any:
        writer = await super().prepare(request)
        if self.heartbeat is None:
            cfg, codec, on_event, random = self._hb_args
            loop = asyncio.get_running_loop()
            self.heartbeat = AiohttpHeartbeat(
                self, loop, cfg, codec=codec, on_event=on_event, random=random
            )
            self.heartbeat.start(self._framework_receive)
        return writer

    async def _framework_receive(self) -> Any:
        return await super().receive()

    def _reset_heartbeat(self) -> None:
        """aiohttp's keepalive: off."""

    def _on_data_received(self) -> None:
        if self.heartbeat is not None:
            self.heartbeat.received()

    @property
    def close_code(self) -> int | None:
        """aiohttp's ``close_code``; after a heartbeat verdict, 1011 (what was sent)."""
        return _close_code(self.heartbeat, super().close_code)

    async def receive(self, timeout: float | None = None) -> Any:
        wait = timeout or self._receive_timeout
        return await _receive(self.heartbeat, wait, partial(super().receive, timeout))

    async def close(self, *, code: int = 1000, message: bytes = b"", drain: bool = True) -> bool:
        parent = partial(super().close, code=code, message=message, drain=drain)
        return await _close(self, self.heartbeat, code, message, parent)


class HeartbeatClientWebSocketResponse(aiohttp.ClientWebSocketResponse):
    """aiohttp's client WebSocket with the core's heartbeat: make the session with
    ``ClientSession(ws_response_class=HeartbeatClientWebSocketResponse)`` and connect
    with :func:`ws_connect`."""

    heartbeat: AiohttpHeartbeat | None = None

    def _reset_heartbeat(self) -> None:
        """aiohttp's keepalive: off."""

    def _on_data_received(self) -> None:
        if self.heartbeat is not None:
            self.heartbeat.received()

    async def _framework_receive(self) -> Any:
        return await super().receive()

    @property
    def close_code(self) -> int | None:
        """aiohttp's ``close_code``; after a heartbeat verdict, 1011 (what was sent)."""
        return _close_code(self.heartbeat, super().close_code)

    async def receive(self, timeout: float | None = None) -> Any:
        wait = timeout or self._timeout.ws_receive
        return await _receive(self.heartbeat, wait, partial(super().receive, timeout))

    async def close(self, *, code: int = 1000, message: bytes = b"") -> bool:
        parent = partial(super().close, code=code, message=message)
        return await _close(self, self.heartbeat, code, message, parent)


async def ws_connect(
    session: aiohttp.ClientSession,
    url: str,
    *,
    config: HeartbeatConfig | None = None,
    codec: AppCodec = JSON_CODEC,
    on_event: EventCallback | None = None,
    random: RandomSource | None = None,
    **kwargs: Any,
) -> HeartbeatClientWebSocketResponse:
    """``await session.ws_connect(url, **kwargs)`` with the core's heartbeat (the same
    arguments as :class:`HeartbeatWebSocketResponse`). The session must have been made
    with ``ws_response_class=HeartbeatClientWebSocketResponse``, else
    :class:`~heartbeat_core.ConfigError`."""
    _check(kwargs)
    cfg = HeartbeatConfig() if config is None else config
    kwargs.setdefault("timeout", aiohttp.ClientWSTimeout(ws_close=cfg.close_timeout))
    ws = await session.ws_connect(url, heartbeat=cfg.interval, autoping=False, **kwargs)
    if not isinstance(ws, HeartbeatClientWebSocketResponse):
        await ws.close()
        raise ConfigError(
            "ws_connect needs a session made with "
            "aiohttp.ClientSession(ws_response_class=HeartbeatClientWebSocketResponse)"
        )
    heartbeat = AiohttpHeartbeat(
        ws, asyncio.get_running_loop(), cfg, codec=codec, on_event=on_event, random=random
    )
    ws.heartbeat = heartbeat
    heartbeat.start(ws._framework_receive)
    return ws
