"""The opening handshake, apart from the frames (as wsproto keeps its own).

:class:`ServerHandshake` reads an HTTP request and says what it is: a WebSocket
upgrade (:class:`~heartbeat_core.wsevents.Request`), a plain HTTP request
(:class:`~heartbeat_core.wsevents.HttpRequest`), or neither (:class:`BadRequest`);
it then writes the answer: the 101, a refusal, or a plain HTTP response, which
knows HEAD. :class:`ClientHandshake` writes the upgrade request and reads the
answer. Both hand over wsproto's frame layer once the connection is open.
"""

from __future__ import annotations

from collections.abc import Iterable
from http import HTTPStatus
from typing import TypeAlias

import wsproto.events as ws
from wsproto.connection import Connection as WsFrames
from wsproto.connection import ConnectionType
from wsproto.handshake import H11Handshake
from wsproto.utilities import LocalProtocolError as WsLocalProtocolError
from wsproto.utilities import RemoteProtocolError as WsRemoteProtocolError

from heartbeat_core.wsevents import Accepted, HttpRequest, Rejected, Request

__all__ = [
    "BadRequest",
    "ClientHandshake",
    "HeaderPairs",
    "ServerHandshake",
    "header_pairs",
    "http_response",
]

HeaderPairs: TypeAlias = Iterable[tuple[bytes | str, bytes | str]]

#: What wsproto and h11 raise on bytes that are not a valid handshake (wsproto's
#: handshake raises UnicodeError on a non-ASCII Host header).
HANDSHAKE_ERRORS = (WsRemoteProtocolError, WsLocalProtocolError, UnicodeError)


class BadRequest(Exception):
    """The client's bytes are neither a WebSocket upgrade nor a plain HTTP request."""


def header_pairs(headers: HeaderPairs) -> list[tuple[bytes, bytes]]:
    """Headers as ``(bytes, bytes)`` pairs (names ASCII, values Latin-1)."""
    return [
        (
            name.encode("ascii") if isinstance(name, str) else name,
            value.encode("latin-1") if isinstance(value, str) else value,
        )
        for name, value in headers
    ]


def http_response(
    status: int, body: bytes, headers: list[tuple[bytes, bytes]], *, head: bool = False
) -> bytes:
    """An HTTP/1.1 response that closes the connection. For a HEAD request the body
    is left out, but ``content-length`` still gives its size (RFC 9110 9.3.2)."""
    try:
        phrase = HTTPStatus(status).phrase.encode("ascii")
    except ValueError:
        phrase = b"Unknown"
    lines = [b"HTTP/1.1 %d %s" % (status, phrase)]
    lines += [b"%s: %s" % pair for pair in headers]
    lines += [b"content-length: %d" % len(body), b"connection: close", b"", b""]
    return b"\r\n".join(lines) + (b"" if head else body)


class ServerHandshake:
    """The server's side of the opening handshake."""

    __slots__ = ("_h11", "_head", "_http", "_leftover", "_request")

    def __init__(self) -> None:
        self._h11 = H11Handshake(ConnectionType.SERVER)
        # The request's bytes, kept until it is understood, to describe plain HTTP.
        self._head = bytearray()
        self._request: ws.Request | None = None
        self._http: HttpRequest | None = None
        # Bytes after the request's blank line: the first input of the frame layer.
        self._leftover = b""

    @property
    def request(self) -> ws.Request | None:
        """The pending upgrade request (between :class:`Request` and the answer)."""
        return self._request

    @property
    def http_request(self) -> HttpRequest | None:
        """The pending plain HTTP request (between :class:`HttpRequest` and the answer)."""
        return self._http

    def receive_data(self, data: bytes) -> Request | HttpRequest | None:
        """Feed request bytes. Returns the :class:`Request` or :class:`HttpRequest` once
        the request is complete, ``None`` while more is needed. Raises
        :class:`BadRequest` when the bytes can be neither."""
        if self._request is not None or self._http is not None:
            # Sent before our answer: a client should not, but nothing received is
            # lost (they reach the frame layer if we accept).
            self._leftover += data
            return None
        self._head += data
        try:
            self._h11.receive_data(data)
            request = next(self._h11.events(), None)
        except HANDSHAKE_ERRORS:
            self._http = self._plain_http()
            return self._http
        if request is None:
            return None
        assert isinstance(request, ws.Request)  # the only event a server's handshake has
        self._request = request
        self._leftover = bytes(self._head.partition(b"\r\n\r\n")[2])
        self._head = bytearray()
        return Request(
            host=request.host,
            target=request.target,
            subprotocols=list(request.subprotocols),
            extra_headers=list(request.extra_headers),
        )

    def _plain_http(self) -> HttpRequest:
        head, sep, _ = bytes(self._head).partition(b"\r\n\r\n")
        self._head = bytearray()
        lines = head.split(b"\r\n")
        parts = lines[0].split(b" ")
        headers = []
        for line in lines[1:]:
            name, colon, value = line.partition(b":")
            if colon:
                headers.append((name.strip().lower(), value.strip()))
        if (
            sep
            and len(parts) == 3
            and parts[0] in (b"GET", b"HEAD")
            and parts[2].startswith(b"HTTP/1.")
            and not any(name == b"upgrade" for name, _ in headers)
        ):
            return HttpRequest(
                method=parts[0].decode("ascii"),
                target=parts[1].decode("ascii", "replace"),
                headers=headers,
            )
        raise BadRequest("not a WebSocket upgrade request")

    def accept(
        self, subprotocol: str | None, pairs: list[tuple[bytes, bytes]]
    ) -> tuple[bytes, Accepted, bytes]:
        """Accept the pending upgrade: ``(the 101 response, the Accepted event, the bytes
        that followed the request)``. The caller checks that an upgrade is pending and
        that the client offered ``subprotocol``."""
        data = self._h11.send(ws.AcceptConnection(subprotocol=subprotocol, extra_headers=pairs))
        self._request = None
        return data, Accepted(subprotocol=subprotocol, extra_headers=pairs), self._leftover

    def reject(self, status: int, body: bytes, pairs: list[tuple[bytes, bytes]]) -> bytes:
        """Refuse the pending upgrade with an HTTP response."""
        self._request = None
        pairs = [*pairs]
        pairs.append((b"content-length", b"%d" % len(body)))
        return self._h11.send(
            ws.RejectConnection(status_code=status, headers=pairs, has_body=True)
        ) + self._h11.send(ws.RejectData(data=body, body_finished=True))

    def respond(self, status: int, body: bytes, pairs: list[tuple[bytes, bytes]]) -> bytes:
        """Answer the pending plain HTTP request (no body for HEAD)."""
        request, self._http = self._http, None
        head = request is not None and request.method == "HEAD"
        return http_response(status, body, pairs, head=head)


class ClientHandshake:
    """The client's side of the opening handshake."""

    __slots__ = ("_body", "_h11", "_reject", "started")

    def __init__(self) -> None:
        self._h11 = H11Handshake(ConnectionType.CLIENT)
        self._reject: ws.RejectConnection | None = None
        self._body: list[bytes] = []
        #: True once :meth:`initiate` was called.
        self.started: bool = False

    def initiate(
        self, host: str, target: str, subprotocols: Iterable[str], extra_headers: HeaderPairs
    ) -> bytes:
        """The upgrade request."""
        self.started = True
        return self._h11.send(
            ws.Request(
                host=host,
                target=target,
                subprotocols=list(subprotocols),
                extra_headers=header_pairs(extra_headers),
            )
        )

    @property
    def frames(self) -> WsFrames | None:
        """wsproto's frame layer once accepted (holding any bytes after the 101)."""
        return self._h11.connection

    def receive_data(self, data: bytes) -> Accepted | Rejected | None:
        """Feed response bytes: :class:`Accepted`, :class:`Rejected` (once its body is
        complete), or ``None`` while more is needed. Raises wsproto's errors on a bad
        response."""
        self._h11.receive_data(data)
        for event in self._h11.events():
            if isinstance(event, ws.AcceptConnection):
                return Accepted(
                    subprotocol=event.subprotocol, extra_headers=list(event.extra_headers)
                )
            if isinstance(event, ws.RejectConnection):
                self._reject = event
                if not event.has_body:
                    return self._rejected()
            else:  # the last kind of event a client's handshake has
                assert isinstance(event, ws.RejectData)
                self._body.append(bytes(event.data))
                if event.body_finished:
                    return self._rejected()
        return None

    def _rejected(self) -> Rejected:
        assert self._reject is not None
        return Rejected(
            status=self._reject.status_code,
            headers=list(self._reject.headers),
            body=b"".join(self._body),
        )
