"""The ordinary WebSocket upgrade, read and answered without h11.

Nearly every client sends the same kind of request: ``GET <target> HTTP/1.1``
with CRLF line ends, one ``Host``, ``Upgrade: websocket``, ``Connection:
Upgrade``, a key and version 13, perhaps an ``Origin``, subprotocols,
extensions and a few more headers, and nothing after the blank line. h11 and
wsproto take about a hundred microseconds to read such a request and write
the 101; two regular expressions and a loop over the headers do it in a few.

:func:`parse_upgrade` returns the :class:`~heartbeat_core.wsevents.Request`
the slow path makes of such a head (the same host, target, subprotocols and
headers, in the same order), or ``None`` for anything it is not sure of: another method or version,
a bare LF, a folded or non-ASCII line, a repeated or missing header, a body
header, bytes after the head. :func:`accept_response` writes the 101 byte for
byte as h11 would, or ``None`` when an extra header needs h11's checks. On
``None`` the caller hands the request to h11 and wsproto, which judge it as
they always did: the fast path changes what a request costs, never its outcome
(tests/core/test_core_upgrade.py compares both on generated requests).
"""

from __future__ import annotations

import binascii
import hashlib
import re

from wsproto.utilities import split_comma_header

from heartbeat_core.wsevents import Request, request

__all__ = ["accept_response", "parse_upgrade", "valid_key"]

_TOKEN = rb"[-!#$%&'*+.^_`|~0-9A-Za-z]+"
# The whole head: request line, header lines of printable ASCII, the blank line, and
# nothing after it. (Tabs, obs-text, control bytes and folded lines are h11's to judge.)
_HEAD = re.compile(rb"GET ([\x21-\x7e]+) HTTP/1\.1\r\n((?:" + _TOKEN + rb":[ -~]*\r\n)*)\r\n")
_LINE = re.compile(rb"(" + _TOKEN + rb"):([ -~]*)\r\n")
_NAME = re.compile(_TOKEN)
# A value h11 takes as it is (a narrower rule than its field-value: printable ASCII
# with single spaces inside, or nothing).
_VALUE = re.compile(rb"(?:[!-~]+(?: [!-~]+)*)?")
_KEY = re.compile(rb"[A-Za-z0-9+/]{22}==")
_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

# Headers wsproto reads once (a repeat: h11 and wsproto judge the request).
_SINGLE = frozenset(
    (b"host", b"upgrade", b"connection", b"sec-websocket-key", b"sec-websocket-version")
)
# The 101's first lines, as h11 writes them.
_101 = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade"
# Headers h11 rewrites or refuses (and Host, which it writes first).
_H11_ONLY = frozenset((b"content-length", b"transfer-encoding", b"host"))
# Host values as wsproto reads them (IDNA), remembered: every client of a server
# sends much the same Host. Bounded: cleared when full.
_HOSTS: dict[bytes, str] = {}
_MAX_HOSTS = 64
# Header names nearly every client sends: lowercase, and as clients usually spell them.
_USUAL_NAMES = {
    b"host": b"Host",
    b"upgrade": b"Upgrade",
    b"connection": b"Connection",
    b"sec-websocket-key": b"Sec-WebSocket-Key",
    b"sec-websocket-version": b"Sec-WebSocket-Version",
    b"origin": b"Origin",
    b"user-agent": b"User-Agent",
}
# Those names and the usual values, one object each: a server keeps every connection's
# request headers (``conn.headers``), and 10,000 connections would otherwise hold
# 10,000 copies of b"sec-websocket-version" and b"13".
_SHARED: dict[bytes, bytes] = {
    word: word for word in (*_USUAL_NAMES, b"websocket", b"Upgrade", b"13")
}
# A name as a client spelled it -> the shared lowercase name, read without a lower() call.
_NAMES: dict[bytes, bytes] = {
    spelling: _SHARED[name]
    for name, spelled in _USUAL_NAMES.items()
    for spelling in (name, spelled)
}


def valid_key(key: bytes) -> bool:
    """Whether ``key`` is a ``Sec-WebSocket-Key``: 16 bytes in base64 (22 characters of
    the alphabet and the padding, which is what ``base64.b64decode(key, validate=True)``
    accepts and decodes to 16 bytes)."""
    return _KEY.fullmatch(key) is not None


def _host(value: bytes) -> str | None:
    """``value`` decoded as wsproto decodes a Host (``None`` where that fails)."""
    host = _HOSTS.get(value)
    if host is None:
        try:
            host = value.decode("idna")
        except UnicodeError:
            return None
        if len(_HOSTS) >= _MAX_HOSTS:
            _HOSTS.clear()
        _HOSTS[value] = host
    return host


def parse_upgrade(data: bytes) -> Request | None:
    """The upgrade request wsproto would make of ``data`` (a complete head and nothing
    more), or ``None`` when the head is not an ordinary, valid upgrade request. (The
    caller checks the head's bounds; the key is checked here, as the slow path does.)"""
    match = _HEAD.fullmatch(data)
    if match is None:
        return None
    single: dict[bytes, bytes] = {}
    subprotocols: list[str] = []
    headers: list[tuple[bytes, bytes]] = []
    for raw_name, raw_value in _LINE.findall(match[2]):
        name = _NAMES.get(raw_name)
        if name is None:
            name = raw_name.lower()
            name = _SHARED.get(name, name)
        value = raw_value.strip(b" ")  # (h11 strips the spaces around a value)
        value = _SHARED.get(value, value)
        if name in _SINGLE:
            if name in single:
                return None
            single[name] = value
            if name == b"host":
                continue  # (wsproto keeps Host apart from the headers)
        elif name == b"sec-websocket-protocol":
            subprotocols.extend(split_comma_header(value))
            continue
        elif name == b"sec-websocket-extensions":
            split_comma_header(value)  # (as wsproto does: not ASCII would raise)
            continue
        elif name in _H11_ONLY:
            return None
        headers.append((name, value))
    if len(single) != len(_SINGLE):
        return None
    connection = single[b"connection"]
    if (
        single[b"upgrade"].lower() != b"websocket"
        or single[b"sec-websocket-version"] != b"13"
        or _KEY.fullmatch(single[b"sec-websocket-key"]) is None  # (valid_key, inline)
        or (
            connection.lower() != b"upgrade"  # (the usual value, without splitting it)
            and "upgrade" not in [token.lower() for token in split_comma_header(connection)]
        )
    ):
        return None
    host = _host(single[b"host"])
    if host is None:
        return None
    return request(host, match[1].decode("ascii"), subprotocols, headers)


def accept_response(
    request: Request, subprotocol: str | None, pairs: list[tuple[bytes, bytes]]
) -> bytes | None:
    """The 101 answering ``request`` (read by :func:`parse_upgrade`) with
    ``subprotocol`` (one the client offered) and the extra headers ``pairs``, as
    h11 writes it; ``None`` when a header needs h11's checks or rewriting."""
    key = next(value for name, value in request.extra_headers if name == b"sec-websocket-key")
    accept = binascii.b2a_base64(hashlib.sha1(key + _GUID).digest(), newline=False)
    lines = [_101, b"Sec-WebSocket-Accept: " + accept]
    if subprotocol is not None:
        offered = subprotocol.encode("ascii")
        if _VALUE.fullmatch(offered) is None:
            return None
        lines.append(b"Sec-WebSocket-Protocol: " + offered)
    for name, value in pairs:
        if (
            _NAME.fullmatch(name) is None
            or _VALUE.fullmatch(value) is None
            or name.lower() in _H11_ONLY
        ):
            return None
        lines.append(name + b": " + value)
    lines.append(b"\r\n")
    return b"\r\n".join(lines)
