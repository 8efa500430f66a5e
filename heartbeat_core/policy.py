"""What a server answers, decided once for every driver.

:class:`ServerPolicy` turns a :class:`~heartbeat_core.wsevents.Request` into an
accept or a refusal and a :class:`~heartbeat_core.wsevents.HttpRequest` into an
HTTP answer, by calling the application's hooks: ``process_request`` (first, for
both kinds: it may refuse a request by answering it, e.g. 403 for a foreign
``Origin``), ``select_subprotocol`` and ``http_handler``. A hook that raises, or
answers something unusable, gets the client a 500 and the server a log line; no
hook means no subprotocol, and a 426 for plain HTTP. A server that is shutting
down answers 503.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TypeAlias

from heartbeat_core.connection import HeartbeatConnection
from heartbeat_core.errors import ConfigError
from heartbeat_core.uri import loggable
from heartbeat_core.wsevents import ConnectionEvent, HttpRequest, Request

__all__ = [
    "UPGRADE_REQUIRED",
    "HttpAnswer",
    "HttpHandler",
    "ProcessRequest",
    "SelectSubprotocol",
    "ServerPolicy",
    "check_application",
]

#: ``select_subprotocol(offered) -> chosen or None``.
SelectSubprotocol: TypeAlias = Callable[[Sequence[str]], "str | None"]
#: ``(status, headers, body)``.
HttpAnswer: TypeAlias = tuple[int, Sequence[tuple[str, str]], bytes]
#: ``http_handler(target) -> (status, headers, body) or None`` (``None``: 426).
HttpHandler: TypeAlias = Callable[[str], "HttpAnswer | None"]
#: ``process_request(request) -> (status, headers, body) or None``: called first for every
#: request (an upgrade or plain HTTP); an answer refuses it, ``None`` lets it through.
ProcessRequest: TypeAlias = Callable[[Request | HttpRequest], "HttpAnswer | None"]

#: The answer to plain HTTP when no handler answers it.
UPGRADE_REQUIRED: HttpAnswer = (
    426,
    [("Upgrade", "websocket"), ("Sec-WebSocket-Version", "13")],
    b"Upgrade Required: this is a WebSocket endpoint.\n",
)
_SERVER_ERROR: HttpAnswer = (500, [], b"Internal Server Error\n")


def check_application(
    handler: object, on_message: object, *, handler_runs: str, on_message_runs: str, kind: str
) -> None:
    """``serve(handler, on_message=...)``: raise :class:`ConfigError` unless exactly one
    of them is given, and it is callable. ``handler_runs`` and ``on_message_runs`` say,
    for the message, what each choice costs in the driver (e.g. "a thread per
    connection"); ``kind`` is how the application writes them (``"def"`` or
    ``"async def"``)."""
    if (handler is None) == (on_message is None):
        raise ConfigError(
            "serve() takes a handler(conn) or on_message=(conn, message), exactly one: "
            f"pass handler for {handler_runs}, on_message for {on_message_runs}"
        )
    if handler is not None and not callable(handler):
        raise ConfigError(f"handler must be a callable ({kind} handler(conn)), got {handler!r}")
    if on_message is not None and not callable(on_message):
        raise ConfigError(
            f"on_message must be a callable ({kind} on_message(conn, message)), got {on_message!r}"
        )


def _callable_or_none(name: str, value: object) -> None:
    if value is not None and not callable(value):
        raise ConfigError(f"{name} must be a callable or None, got {value!r}")


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerPolicy:
    """A server's answers to the opening handshake. Validated at construction."""

    select_subprotocol: SelectSubprotocol | None = None
    http_handler: HttpHandler | None = None
    process_request: ProcessRequest | None = None
    #: Where failures of the hooks are logged (the driver's logger).
    logger: logging.Logger = field(default=logging.getLogger("heartbeat_core"))

    def __post_init__(self) -> None:
        _callable_or_none("select_subprotocol", self.select_subprotocol)
        _callable_or_none("http_handler", self.http_handler)
        _callable_or_none("process_request", self.process_request)

    def answer(
        self,
        core: HeartbeatConnection,
        request: Request | HttpRequest,
        now: float,
        *,
        refusing: bool = False,
    ) -> list[ConnectionEvent]:
        """Answer ``request`` on ``core``; return the events the answer caused (an
        ``Accepted``, or a ``CloseTransport`` after a refusal or an HTTP answer).
        ``refusing``: the server is shutting down (503)."""
        if self.process_request is not None:
            refusal = self._refusal(request)
            if refusal is not None:
                status, headers, body = refusal
                if isinstance(request, HttpRequest):
                    return core.respond(status, body, now=now, headers=headers)
                return core.reject(status, body, now=now, headers=headers)
        if isinstance(request, HttpRequest):
            status, headers, body = self._http(request)
            return core.respond(status, body, now=now, headers=headers)
        if refusing:
            return core.reject(503, b"Server shutting down\n", now=now)
        subprotocol = None
        if self.select_subprotocol is not None and request.subprotocols:
            try:
                subprotocol = self.select_subprotocol(request.subprotocols)
            except Exception:
                self.logger.exception("select_subprotocol failed on %r", request.subprotocols)
                return core.reject(500, _SERVER_ERROR[2], now=now)
            if subprotocol is not None and subprotocol not in request.subprotocols:
                self.logger.error(
                    "select_subprotocol returned %r, which the client did not offer (%r): "
                    "return one of the offered subprotocols or None",
                    subprotocol,
                    request.subprotocols,
                )
                return core.reject(500, _SERVER_ERROR[2], now=now)
        return core.accept(now=now, subprotocol=subprotocol)

    def _refusal(self, request: Request | HttpRequest) -> HttpAnswer | None:
        """``process_request``'s answer, checked (a 4xx or 5xx for an upgrade, 200-599
        for plain HTTP); a 500 when it raises or answers something unusable."""
        assert self.process_request is not None
        lowest = 200 if isinstance(request, HttpRequest) else 400
        try:
            answer = self.process_request(request)
            if answer is None:
                return None
            return _checked(answer, lowest)
        except Exception:
            self.logger.exception("process_request failed on %s", loggable(request.target))
            return _SERVER_ERROR

    def _http(self, request: HttpRequest) -> HttpAnswer:
        if self.http_handler is None:
            return UPGRADE_REQUIRED
        try:
            answer = self.http_handler(request.target)
            if answer is None:
                return UPGRADE_REQUIRED
            return _checked(answer, 200)
        except Exception:
            self.logger.exception("http_handler failed on %s", loggable(request.target))
            return _SERVER_ERROR


def _checked(answer: HttpAnswer, lowest: int) -> HttpAnswer:
    """``answer`` as ``(status, headers, body)``; TypeError unless status is an int in
    ``lowest``-599 and body is bytes."""
    status, headers, body = answer
    if not (isinstance(status, int) and lowest <= status <= 599):
        raise TypeError(f"status must be an int in {lowest}-599, got {status!r}")
    if not isinstance(body, bytes):
        raise TypeError(f"body must be bytes, got {type(body).__name__}")
    return status, list(headers), body
