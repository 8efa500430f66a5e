"""heartbeat_websockets: the core's heartbeats inside websockets' asyncio API (v17).

:func:`serve` and :func:`connect` are ``websockets.asyncio.server.serve`` and
``websockets.asyncio.client.connect`` with websockets' keepalive turned off and the
core deciding liveness instead: protocol pings or ``{"type":"ping"}`` messages, RTT
statistics, jitter, the ping- and pong-flood rules, ``on_event``. Everything else is
websockets' own API: ``async for message in ws``, ``ws.send()``, ``ws.close()``,
``process_request``, routing, TLS, reconnecting with ``async for ws in connect(...)``.
Each connection has a ``heartbeat`` attribute (:class:`WebsocketsHeartbeat`: ``stats``,
``latency``).

.. fragment: one line of a program; examples/websockets_server.py is the whole of it,
   and the tests run it

.. code-block:: python

    async with heartbeat_websockets.serve(handler, "127.0.0.1", 8765, config=config):
        ...

A peer found dead gets close 1011 ``heartbeat-timeout`` and its socket is released at
once; the handler's ``recv()`` then raises ``ConnectionClosedError`` (as with
websockets' own keepalive). websockets answers the peer's pings itself; the core
counts them (flood rule). Needs ``pip install 'heartbeat-core[websockets]'``.
"""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar

from heartbeat_asyncio import LoopRunner

from heartbeat_core import (
    JSON_CODEC,
    AppCodec,
    ConfigError,
    EventCallback,
    HeartbeatConfig,
    HeartbeatPhase,
    HeartbeatStyle,
    RandomSource,
    __version__,
)

try:
    from websockets.asyncio.client import ClientConnection
    from websockets.asyncio.client import connect as _ws_connect
    from websockets.asyncio.connection import Connection
    from websockets.asyncio.server import Server, ServerConnection
    from websockets.asyncio.server import serve as _ws_serve
    from websockets.frames import Frame, Opcode
    from websockets.protocol import State
except ImportError as _missing:  # pragma: no cover - depends on the environment
    raise ImportError(
        "heartbeat_websockets needs websockets >= 17: pip install 'heartbeat-core[websockets]'"
    ) from _missing

__all__ = [
    "HeartbeatClientConnection",
    "HeartbeatServerConnection",
    "Settings",
    "WebsocketsHeartbeat",
    "connect",
    "serve",
    "__version__",
]


class Settings:
    """What every connection of one :func:`serve` or :func:`connect` call shares."""

    __slots__ = ("codec", "config", "on_event", "random")

    def __init__(
        self,
        config: HeartbeatConfig | None = None,
        *,
        codec: AppCodec = JSON_CODEC,
        on_event: EventCallback | None = None,
        random: RandomSource | None = None,
    ) -> None:
        self.config: HeartbeatConfig = HeartbeatConfig() if config is None else config
        if not isinstance(self.config, HeartbeatConfig):
            raise ConfigError(f"config must be a HeartbeatConfig, got {config!r}")
        self.codec: AppCodec = codec
        self.on_event: EventCallback | None = on_event
        self.random: RandomSource | None = random


class WebsocketsHeartbeat(LoopRunner):
    """The heartbeat of one websockets connection: the core's actions carried out
    through websockets' sans-IO protocol (``connection.protocol``)."""

    __slots__ = ("_conn",)

    def __init__(self, conn: Connection, settings: Settings) -> None:
        super().__init__(
            conn.loop,
            settings.config,
            codec=settings.codec,
            on_event=settings.on_event,
            owner=conn,
            random=settings.random,
        )
        self._conn = conn

    def timer_due(self) -> None:
        self.closing_seen()
        super().timer_due()

    def closing_seen(self) -> None:
        """Tell the core about a close websockets sent for the application (``ws.close()``):
        no heartbeat is sent after it, nobody is declared dead while the peer answers."""
        protocol = self._conn.protocol
        sent = protocol.close_sent
        if sent is not None and self.close_code is None and not protocol.close_rcvd_then_sent:
            self.close_started(int(sent.code), sent.reason)

    def _sendable(self) -> bool:
        conn = self._conn
        return conn.protocol.state is State.OPEN and not conn.transport.is_closing()

    def send_ping(self, payload: bytes) -> None:
        if self._sendable():
            self._conn.protocol.send_ping(payload)
            self._conn.send_data()

    def send_pong(self, payload: bytes) -> None:
        """Nothing: websockets answers every ping itself."""

    def send_text(self, text: str) -> None:
        # A heartbeat message never goes in the middle of a fragmented message.
        if self._sendable() and self._conn.send_in_progress is None:
            self._conn.protocol.send_text(text.encode())
            self._conn.send_data()

    def send_close(self, code: int, reason: str) -> None:
        if self._sendable():  # (after the peer's close, websockets has answered it)
            self._conn.protocol.send_close(code, reason)
            self._conn.send_data()

    def close_transport(self) -> None:
        self._conn.transport.close()  # flushes the close frame first

    def abort(self) -> None:
        self._conn.transport.abort()


class _Heartbeats(Connection):
    """What both connection classes add to websockets' ``Connection``, their common
    base (these methods run on the event loop, in websockets' own callbacks)."""

    #: Set on the subclass each :func:`serve` / :func:`connect` call makes.
    settings: ClassVar[Settings] = Settings()
    heartbeat: WebsocketsHeartbeat
    pending_pings: dict[bytes, Any]
    _classify: bool

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        settings = type(self).settings
        #: This connection's heartbeat (``stats``, ``latency``, ``close_code``).
        self.heartbeat = WebsocketsHeartbeat(self, settings)
        config = settings.config
        self._classify = config.style is HeartbeatStyle.APP or config.answer_app_pings

    def _hb_open(self) -> None:
        """The connection is open: heartbeats start (once). Called by websockets'
        ``start_keepalive()``, or by the first frame when that came sooner (frames can
        arrive in the same read as the handshake)."""
        if self.heartbeat.state.phase is HeartbeatPhase.NEW:
            self.heartbeat.opened()

    def _hb_frame(self, frame: Frame) -> bool:
        """Feed a frame to the core; True when it was a heartbeat message."""
        heartbeat = self.heartbeat
        self._hb_open()
        opcode = frame.opcode
        if opcode is Opcode.PONG:
            data = bytes(frame.data)
            # A pong answering the application's own ws.ping() is no stray pong.
            heartbeat.pong_received(data, solicited=data in self.pending_pings)
        elif opcode is Opcode.PING:
            heartbeat.ping_received(bytes(frame.data))
        elif (
            opcode is Opcode.TEXT
            and frame.fin
            and self._classify
            and len(frame.data) <= 4 * heartbeat.codec.max_length
        ):
            try:
                text = bytes(frame.data).decode()
            except UnicodeDecodeError:  # websockets fails the connection itself
                return False
            return heartbeat.text_received(text)
        return False

    def start_keepalive(self) -> None:
        """The connection opened: heartbeats start (websockets' keepalive stays off)."""
        self._hb_open()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        _watch_pauses(self)

    def data_received(self, data: bytes) -> None:
        self.heartbeat.received()  # (before the opening, this does nothing)
        super().data_received(data)

    def process_event(self, event: Any) -> None:
        if isinstance(event, Frame) and self._hb_frame(event):
            return  # a heartbeat message: never the application's
        super().process_event(event)
        if isinstance(event, Frame) and event.opcode is Opcode.CLOSE:
            _close_received(self)

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        self.heartbeat.closing_seen()
        self.heartbeat.lost()


class HeartbeatServerConnection(_Heartbeats, ServerConnection):
    """websockets' ``ServerConnection`` whose liveness the core decides
    (``create_connection=`` of ``websockets.asyncio.server.serve``)."""


class HeartbeatClientConnection(_Heartbeats, ClientConnection):
    """websockets' ``ClientConnection`` whose liveness the core decides
    (``create_connection=`` of ``websockets.asyncio.client.connect``)."""


def _close_received(conn: _Heartbeats) -> None:
    conn.heartbeat.closing_seen()  # our close came first: the peer's is its answer
    close = conn.protocol.close_rcvd
    if close is not None:
        conn.heartbeat.close_received(int(close.code), close.reason)


def _watch_pauses(conn: _Heartbeats) -> None:
    """When websockets stops reading (its message queue is full: the handler is slow),
    the peer cannot be heard: the core declares nobody dead meanwhile, and gives an
    outstanding heartbeat a fresh timeout when reading resumes (rule paused-reading)."""
    messages = conn.recv_messages
    pause, resume = messages.pause, messages.resume

    def paused() -> None:
        pause()
        conn.heartbeat.pause_reading()

    def resumed() -> None:
        resume()
        conn.heartbeat.resume_reading()

    messages.pause, messages.resume = paused, resumed


def _keepalive_off(kwargs: dict[str, Any], settings: Settings) -> None:
    for name in ("ping_interval", "ping_timeout"):
        if kwargs.pop(name, None) is not None:
            raise ConfigError(
                f"{name} must stay None: websockets' keepalive is off and the core's "
                "heartbeat decides liveness; set interval and timeout in config"
            )
    if "create_connection" in kwargs:
        raise ConfigError(
            "create_connection is taken by heartbeat_websockets: subclass "
            "HeartbeatServerConnection / HeartbeatClientConnection and pass it as "
            "connection_class"
        )
    kwargs.setdefault("close_timeout", settings.config.close_timeout)


def serve(
    handler: Any,
    host: str | None = None,
    port: int | None = None,
    *,
    config: HeartbeatConfig | None = None,
    codec: AppCodec = JSON_CODEC,
    on_event: EventCallback | None = None,
    random: RandomSource | None = None,
    connection_class: type[HeartbeatServerConnection] = HeartbeatServerConnection,
    **kwargs: Any,
) -> Server:
    """``websockets.asyncio.server.serve(handler, host, port, **kwargs)`` with the core's
    heartbeat on every connection: ``config`` (a :class:`~heartbeat_core.HeartbeatConfig`),
    ``codec`` (the application-level messages), ``on_event(conn, event)``, ``random``
    (for jitter). ``ping_interval`` / ``ping_timeout`` must not be set (websockets'
    keepalive is off); ``close_timeout`` defaults to the config's."""
    settings = Settings(config, codec=codec, on_event=on_event, random=random)
    _keepalive_off(kwargs, settings)
    factory = type(connection_class.__name__, (connection_class,), {"settings": settings})
    return _ws_serve(
        handler,
        host,
        port,
        create_connection=factory,
        ping_interval=None,
        ping_timeout=None,
        **kwargs,
    )


def connect(
    uri: str,
    *,
    config: HeartbeatConfig | None = None,
    codec: AppCodec = JSON_CODEC,
    on_event: EventCallback | None = None,
    random: RandomSource | None = None,
    connection_class: type[HeartbeatClientConnection] = HeartbeatClientConnection,
    **kwargs: Any,
) -> _ws_connect:
    """``websockets.asyncio.client.connect(uri, **kwargs)`` with the core's heartbeat
    (the same arguments as :func:`serve`). Await it, use it as an async context
    manager, or iterate over it to reconnect, as with websockets."""
    settings = Settings(config, codec=codec, on_event=on_event, random=random)
    _keepalive_off(kwargs, settings)
    factory = type(connection_class.__name__, (connection_class,), {"settings": settings})
    return _ws_connect(
        uri,
        create_connection=factory,
        ping_interval=None,
        ping_timeout=None,
        **kwargs,
    )
