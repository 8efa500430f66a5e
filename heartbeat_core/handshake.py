"""The opening handshake, apart from the frames (as wsproto keeps its own).

:class:`ServerHandshake` reads an HTTP request and says what it is: a WebSocket
upgrade (:class:`~heartbeat_core.wsevents.Request`), a plain HTTP request
(:class:`~heartbeat_core.wsevents.HttpRequest`), or neither (:class:`BadRequest`);
it then writes the answer: the 101, a refusal, or a plain HTTP response, which
knows HEAD. :class:`ClientHandshake` writes the upgrade request and reads the
answer. Both hand over wsproto's frame layer once the connection is open.

Both sides bound the head they read, whatever the number of reads it comes in:
at most :data:`MAX_HEAD_LINE` bytes per line, :data:`MAX_HEADERS` header lines
and :data:`MAX_HEAD_SIZE` bytes in all. A server answers a longer request line
with 414 and the rest with 431; a client fails the handshake. A server also
refuses, before anything else reads it, an upgrade that is not HTTP/1.1 (505),
that has a body (``Transfer-Encoding``, or a ``Content-Length`` other than 0) or a
``Sec-WebSocket-Key`` that is not 16 bytes in base64 (400), or that asks for
another protocol version than 13 (426, with ``Sec-WebSocket-Version: 13``).

An ordinary upgrade request that comes whole in the first read (nearly all of
them: it passes every check above) is read, and its 101 written, without h11
(:mod:`heartbeat_core.upgrade`); anything else goes through the checks above and
then h11 and wsproto, and so does an answer that needs their checks.
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

from heartbeat_core.upgrade import accept_response, parse_upgrade, valid_key
from heartbeat_core.wsevents import Accepted, HttpRequest, Rejected, Request, accepted

__all__ = [
    "MAX_HEADERS",
    "MAX_HEAD_LINE",
    "MAX_HEAD_SIZE",
    "MAX_REJECT_BODY",
    "BadRequest",
    "BadResponse",
    "ClientHandshake",
    "HeadReader",
    "HeaderPairs",
    "ServerHandshake",
    "header_pairs",
    "http_response",
]

#: The longest line of a head (request line, status line, each header line), in bytes.
MAX_HEAD_LINE = 8 * 1024
#: The most header lines a head may have.
MAX_HEADERS = 128
#: The largest head, in bytes, up to and including its blank line.
MAX_HEAD_SIZE = 16 * 1024
#: The most bytes of a refusal's body a client keeps (the rest is not read).
MAX_REJECT_BODY = 64 * 1024

HeaderPairs: TypeAlias = Iterable[tuple[bytes | str, bytes | str]]

#: What wsproto and h11 raise on bytes that are not a valid handshake (wsproto's
#: handshake raises UnicodeError on a non-ASCII Host header).
HANDSHAKE_ERRORS = (WsRemoteProtocolError, WsLocalProtocolError, UnicodeError)


class BadRequest(Exception):
    """The client's bytes are neither a WebSocket upgrade nor a plain HTTP request
    we take: ``status`` is the answer (400, 414, 426, 431 or 505), with ``headers``."""

    def __init__(
        self, message: str, status: int = 400, headers: list[tuple[bytes, bytes]] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.headers: list[tuple[bytes, bytes]] = headers or []


class BadResponse(Exception):
    """The server's answer to our upgrade is not a WebSocket handshake we can take
    (the message says what was wrong)."""


class HeadReader:
    """Collects an HTTP head (the lines up to the blank line) across reads, bounded
    by :data:`MAX_HEAD_LINE`, :data:`MAX_HEADERS` and :data:`MAX_HEAD_SIZE` however
    the bytes are cut. Lines end with LF or CRLF, as h11 takes them."""

    __slots__ = ("_lines", "_scanned", "data", "end")

    def __init__(self) -> None:
        #: Every byte fed so far (the head, and whatever followed it).
        self.data: bytearray = bytearray()
        #: Where the head ends (after its blank line) once complete, else ``None``.
        self.end: int | None = None
        self._lines = 0  # complete lines so far
        self._scanned = 0  # where the current, unfinished line starts

    def feed(self, data: bytes) -> bool:
        """Add ``data``; True once the head is complete. Raises :class:`BadRequest`
        (414 for the first line, else 431) when the head breaks a bound."""
        buf = self.data
        buf += data
        if self.end is not None:
            return True
        pos = self._scanned
        while True:
            newline = buf.find(b"\n", pos)
            stop = len(buf) if newline < 0 else newline
            length = stop - pos
            if length and buf[stop - 1] == 13:  # (a CR is the line's end, not its content)
                length -= 1
            if length > MAX_HEAD_LINE:
                if self._lines == 0:
                    raise BadRequest(f"the first line is over {MAX_HEAD_LINE} bytes", 414)
                raise BadRequest(f"a header line is over {MAX_HEAD_LINE} bytes", 431)
            if newline < 0:
                break
            if not length:  # the blank line
                self.end = newline + 1
                break
            self._lines += 1
            if self._lines > MAX_HEADERS + 1:
                raise BadRequest(f"the head has over {MAX_HEADERS} header lines", 431)
            pos = newline + 1
        self._scanned = pos
        if (len(buf) if self.end is None else self.end) > MAX_HEAD_SIZE:
            raise BadRequest(f"the head is over {MAX_HEAD_SIZE} bytes", 431)
        return self.end is not None

    def lines(self) -> list[bytes]:
        """The complete head's lines, without line ends or the blank line."""
        assert self.end is not None
        return [line.rstrip(b"\r") for line in bytes(self.data[: self.end]).split(b"\n")[:-2]]


def parse_head(lines: list[bytes]) -> tuple[list[bytes], list[tuple[bytes, bytes]]]:
    """``(the first line's words, [(lowercased name, value), ...])`` of a head's lines
    (a line without a colon is left out: h11 judges those)."""
    headers = []
    for line in lines[1:]:
        name, colon, value = line.partition(b":")
        if colon:
            headers.append((name.strip().lower(), value.strip()))
    return (lines[0].split(b" ") if lines else []), headers


def _check_upgrade(words: list[bytes], headers: list[tuple[bytes, bytes]]) -> None:
    """Raise :class:`BadRequest` for an upgrade request RFC 6455 (4.1, 4.2.1, 4.4)
    does not allow, before h11 and wsproto judge the rest."""
    fields: dict[bytes, list[bytes]] = {}
    for name, value in headers:
        fields.setdefault(name, []).append(value)
    if not any(b"websocket" in value.lower() for value in fields.get(b"upgrade", ())):
        return  # not a WebSocket upgrade: plain HTTP, or h11's to refuse
    if words[-1:] != [b"HTTP/1.1"]:
        raise BadRequest("a WebSocket upgrade must be an HTTP/1.1 request", 505)
    if b"transfer-encoding" in fields or any(v != b"0" for v in fields.get(b"content-length", ())):
        raise BadRequest("a WebSocket upgrade request has no body")
    versions = fields.get(b"sec-websocket-version", [])
    if versions and versions != [b"13"]:
        raise BadRequest(
            "this server speaks WebSocket version 13 only",
            426,
            [(b"Sec-WebSocket-Version", b"13")],
        )
    keys = fields.get(b"sec-websocket-key", [])
    if len(keys) != 1 or not valid_key(keys[0]):
        raise BadRequest("Sec-WebSocket-Key must be one 16-byte value in base64")


def _plain_http(words: list[bytes], headers: list[tuple[bytes, bytes]]) -> HttpRequest:
    """The plain HTTP request a head is (one h11 and wsproto did not take as an
    upgrade), or :class:`BadRequest`."""
    if (
        len(words) == 3
        and words[0] in (b"GET", b"HEAD")
        and words[2].startswith(b"HTTP/1.")
        and not any(name == b"upgrade" for name, _ in headers)
    ):
        return HttpRequest(
            method=words[0].decode("ascii"),
            target=words[1].decode("ascii", "replace"),
            headers=headers,
        )
    raise BadRequest("not a WebSocket upgrade request")


def _request(event: object) -> Request:
    """The :class:`Request` for wsproto's."""
    assert isinstance(event, ws.Request)  # the only event a server's handshake has
    return Request(
        host=event.host,
        target=event.target,
        subprotocols=list(event.subprotocols),
        extra_headers=list(event.extra_headers),
    )


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

    __slots__ = ("_fast", "_h11", "_head", "_http", "_leftover", "_raw", "_reading", "_request")

    def __init__(self) -> None:
        # h11's handshake, made when a request needs it (see heartbeat_core.upgrade).
        self._h11: H11Handshake | None = None
        #: Whether an ordinary upgrade is read without h11 (a test turns it off).
        self._fast = True
        # The request's bytes, bounded, until the head is complete (made at the first
        # read the fast path does not take).
        self._head: HeadReader | None = None
        self._reading = True  # until the head is complete
        self._request: Request | None = None
        self._http: HttpRequest | None = None
        # The head the fast path read, for h11 should the answer need it.
        self._raw = b""
        # Bytes after the request's blank line: the first input of the frame layer.
        self._leftover = b""

    @property
    def request(self) -> Request | None:
        """The pending upgrade request (between :class:`Request` and the answer)."""
        return self._request

    @property
    def http_request(self) -> HttpRequest | None:
        """The pending plain HTTP request (between :class:`HttpRequest` and the answer)."""
        return self._http

    def receive_data(self, data: bytes) -> Request | HttpRequest | None:
        """Feed request bytes. Returns the :class:`Request` or :class:`HttpRequest` once
        the request's head is complete, ``None`` while more is needed. Raises
        :class:`BadRequest` (with the status to answer) when the bytes can be neither,
        or break a bound of the head or a rule of RFC 6455 (see the module)."""
        if not self._reading:
            # Sent before our answer: a client should not, but nothing received is
            # lost (they reach the frame layer if we accept).
            self._leftover += data
            return None
        head = self._head
        if (
            self._fast
            and (head is None or not head.data)
            and len(data) <= MAX_HEAD_LINE
            and data.count(b"\n") <= MAX_HEADERS + 2
        ):
            # The usual first read: a whole head, within every bound of HeadReader. If
            # it is an ordinary upgrade, h11 (and our checks, which it passes) can wait.
            fast = parse_upgrade(data)
            if fast is not None:
                self._reading = False
                self._raw = data
                return self._pending(fast)
        if head is None:
            head = self._head = HeadReader()
        if not head.feed(data):
            if head.data and head.data[0] < 0x21:  # (h11's early verdict: a TLS hello...)
                raise BadRequest("not an HTTP request")
            return None
        self._reading = False
        self._head = None
        words, headers = parse_head(head.lines())
        _check_upgrade(words, headers)
        request_bytes = bytes(head.data)
        h11 = self._h11 = H11Handshake(ConnectionType.SERVER)
        try:
            h11.receive_data(request_bytes)
            event = next(h11.events(), None)
        except HANDSHAKE_ERRORS:
            self._http = _plain_http(words, headers)
            return self._http
        if event is None:  # (h11 wants more: a head it does not end where we do)
            raise BadRequest("not an HTTP request")
        self._leftover = request_bytes[head.end :]
        return self._pending(_request(event))

    def _pending(self, request: Request) -> Request:
        self._request = request
        return request

    def accept(
        self, subprotocol: str | None, pairs: list[tuple[bytes, bytes]]
    ) -> tuple[bytes, Accepted, bytes]:
        """Accept the pending upgrade: ``(the 101 response, the Accepted event, the bytes
        that followed the request)``. The caller checks that an upgrade is pending and
        that the client offered ``subprotocol``."""
        request = self._request
        assert request is not None
        data = None
        if self._h11 is None:  # the fast path read the request: answer it alike
            data = accept_response(request, subprotocol, pairs)
        if data is None:
            accept = ws.AcceptConnection(subprotocol=subprotocol, extra_headers=pairs)
            data = self._wsproto().send(accept)
        self._request = None
        return data, accepted(subprotocol, pairs), self._leftover

    def reject(self, status: int, body: bytes, pairs: list[tuple[bytes, bytes]]) -> bytes:
        """Refuse the pending upgrade with an HTTP response."""
        h11 = self._wsproto()
        self._request = None
        pairs = [*pairs]
        pairs.append((b"content-length", b"%d" % len(body)))
        return h11.send(
            ws.RejectConnection(status_code=status, headers=pairs, has_body=True)
        ) + h11.send(ws.RejectData(data=body, body_finished=True))

    def respond(self, status: int, body: bytes, pairs: list[tuple[bytes, bytes]]) -> bytes:
        """Answer the pending plain HTTP request (no body for HEAD)."""
        request, self._http = self._http, None
        head = request is not None and request.method == "HEAD"
        return http_response(status, body, pairs, head=head)

    def _wsproto(self) -> H11Handshake:
        """h11's handshake holding the pending request (given the head the fast path
        read, when it did: h11 then answers exactly as if it had read it first)."""
        h11 = self._h11
        if h11 is None:
            h11 = self._h11 = H11Handshake(ConnectionType.SERVER)
            h11.receive_data(self._raw)
            replayed = next(h11.events(), None)
            assert _request(replayed) == self._request  # (what the fast path read)
        return h11


class ClientHandshake:
    """The client's side of the opening handshake."""

    __slots__ = ("_body", "_body_size", "_h11", "_head", "_reject", "started")

    def __init__(self) -> None:
        self._h11 = H11Handshake(ConnectionType.CLIENT)
        self._head: HeadReader | None = HeadReader()
        self._reject: ws.RejectConnection | None = None
        self._body: list[bytes] = []
        self._body_size = 0
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
        complete, or :data:`MAX_REJECT_BODY` long), or ``None`` while more is needed.
        Raises :class:`BadResponse`, saying what was wrong, on a response we cannot
        take: over a bound of the head (as a server's are), not HTTP, or a 101 that
        does not answer our request."""
        head = self._head
        if head is not None:
            try:
                if not head.feed(data):
                    return None
            except BadRequest as error:
                raise BadResponse(f"the server's response is too large: {error}") from None
            self._head = None
            data = bytes(head.data)
        try:
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
                    self._body_size += len(event.data)
                    if event.body_finished or self._body_size >= MAX_REJECT_BODY:
                        return self._rejected()
        except HANDSHAKE_ERRORS as error:
            raise BadResponse(_response_error(error)) from None
        return None

    def _rejected(self) -> Rejected:
        assert self._reject is not None
        return Rejected(
            status=self._reject.status_code,
            headers=list(self._reject.headers),
            body=b"".join(self._body)[:MAX_REJECT_BODY],
        )


def _response_error(error: Exception) -> str:
    """What was wrong with the server's response, from wsproto's or h11's error."""
    text = str(error)
    word, _, name = text.rpartition(" ")
    if text == "Bad accept token":
        return (
            "the server's Sec-WebSocket-Accept does not answer our Sec-WebSocket-Key "
            "(a proxy or server that does not speak WebSocket correctly)"
        )
    if word == "unrecognized subprotocol":
        return f"the server chose the subprotocol {name!r}, which we did not offer"
    if word == "unrecognized extension":
        return f"the server accepted the extension {name!r}, which we did not offer"
    if text.startswith("Missing header"):
        return f"the server's 101 response is missing a header: {text.partition(', ')[2]}"
    return f"the server's response is not a valid HTTP/1.1 WebSocket handshake ({text})"
