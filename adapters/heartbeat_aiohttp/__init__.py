"""heartbeat_aiohttp: the core's heartbeats inside aiohttp's WebSockets (3.14).

Server side, :class:`HeartbeatWebSocketResponse` is ``web.WebSocketResponse`` with the
core deciding liveness; client side, :func:`ws_connect` is ``session.ws_connect`` for a
session made with ``ws_response_class=HeartbeatClientWebSocketResponse``. aiohttp's own
``heartbeat`` is off; protocol pings or ``{"type":"ping"}`` messages run by the core's
rules, with RTT statistics, jitter, the flood rules and ``on_event``. The application
keeps aiohttp's API (``async for msg in ws``, ``receive_str``, ``receive_json``,
``send_*``, ``close``) and never sees a heartbeat message, a ping or a pong.

::

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

try:
    import aiohttp
    from aiohttp import WSMessage, WSMsgType, web
    from aiohttp.http import WS_CLOSING_MESSAGE
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "heartbeat_aiohttp needs aiohttp >= 3.14: pip install 'heartbeat-core[aiohttp]'"
    ) from exc

__all__ = [
    "AiohttpHeartbeat",
    "HeartbeatClientWebSocketResponse",
    "HeartbeatWebSocketResponse",
    "ws_connect",
    "__version__",
]

_Response = web.WebSocketResponse | aiohttp.ClientWebSocketResponse


class AiohttpHeartbeat(LoopRunner):
    """The heartbeat of one aiohttp WebSocket: the core's actions written with
    aiohttp's frame writer (control frames are written at once, in order)."""

    __slots__ = ("_classify", "_ws")

    def __init__(
        self,
        ws: _Response,
        loop: asyncio.AbstractEventLoop,
        config: HeartbeatConfig | None,
        *,
        codec: AppCodec = JSON_CODEC,
        on_event: EventCallback | None = None,
        random: RandomSource | None = None,
    ) -> None:
        super().__init__(loop, config, codec=codec, on_event=on_event, owner=ws, random=random)
        self._ws = ws
        cfg = self.state.config
        self._classify = cfg.style is HeartbeatStyle.APP or cfg.answer_app_pings

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
        if ws._waiting:  # wake the handler's receive(): no more messages come
            ws._reader.feed_data(WS_CLOSING_MESSAGE, 0)

    def close_transport(self) -> None:
        ws: Any = self._ws
        if ws.closed:
            return
        ws._closed = True  # aiohttp's own close() is now a no-op
        if isinstance(ws, web.WebSocketResponse):
            ws._close_transport()
        else:
            ws._response.close()
        self.loop.call_soon(self.lost)

    def abort(self) -> None:
        self.close_transport()

    def filter(self, msg: WSMessage) -> bool:
        """Feed a message that ``receive()`` returned to the core; True when it was a
        heartbeat (a ping, a pong, a heartbeat message), not for the application."""
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
        elif self.closed_by == "local" and self.close_code is not None:
            # aiohttp reads the end of a close we made as 1000: the code is ours
            ws: Any = self._ws
            ws._close_code = self.close_code
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


def _check(kwargs: dict[str, Any]) -> None:
    for name in ("heartbeat", "autoping"):
        if name in kwargs:
            raise ConfigError(
                f"{name} is taken by heartbeat_aiohttp: aiohttp's keepalive is off and the "
                "core's heartbeat answers and sends pings; set interval and timeout in config"
            )


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
            self.heartbeat.opened()
        return writer

    def _reset_heartbeat(self) -> None:
        """aiohttp's keepalive: off."""

    def _on_data_received(self) -> None:
        if self.heartbeat is not None:
            self.heartbeat.received()

    async def receive(self, timeout: float | None = None) -> Any:
        while True:
            msg = await super().receive(timeout)
            if self.heartbeat is None or not self.heartbeat.filter(msg):
                return msg

    async def close(self, *, code: int = 1000, message: bytes = b"", drain: bool = True) -> bool:
        if self.heartbeat is not None and not self.closed:
            self.heartbeat.framework_closing(code, message)
        done = await super().close(code=code, message=message, drain=drain)
        if self.heartbeat is not None:
            self.heartbeat.lost()
        return done


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

    async def receive(self, timeout: float | None = None) -> Any:
        while True:
            msg = await super().receive(timeout)
            if self.heartbeat is None or not self.heartbeat.filter(msg):
                return msg

    async def close(self, *, code: int = 1000, message: bytes = b"") -> bool:
        if self.heartbeat is not None and not self.closed:
            self.heartbeat.framework_closing(code, message)
        done = await super().close(code=code, message=message)
        if self.heartbeat is not None:
            self.heartbeat.lost()
        return done


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
    heartbeat.opened()
    return ws
