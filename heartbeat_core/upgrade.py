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

import base64
import binascii
import hashlib
import re

from wsproto.utilities import split_comma_header

from heartbeat_core.wsevents import Request

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
_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

# Headers wsproto reads once (a repeat: h11 and wsproto judge the request).
_SINGLE = frozenset(
    (b"host", b"upgrade", b"connection", b"sec-websocket-key", b"sec-websocket-version")
)
# Headers h11 rewrites or refuses (and Host, which it writes first).
_H11_ONLY = frozenset((b"content-length", b"transfer-encoding", b"host"))
# Host values as wsproto reads them (IDNA), remembered: every client of a server
# sends much the same Host. Bounded: cleared when full.
_HOSTS: dict[bytes, str] = {}
_MAX_HOSTS = 64
# Header names and values nearly every client sends, one object each: a server keeps
# every connection's request headers (``conn.headers``), and 10,000 connections would
# otherwise hold 10,000 copies of b"sec-websocket-version" and b"13".
_SHARED: dict[bytes, bytes] = {
    word: word
    for word in (
        b"upgrade",
        b"connection",
        b"sec-websocket-key",
        b"sec-websocket-version",
        b"origin",
        b"user-agent",
        b"websocket",
        b"Upgrade",
        b"13",
    )
}


def valid_key(key: bytes) -> bool:
    """Whether ``key`` is a ``Sec-WebSocket-Key``: 16 bytes in base64."""
    if len(key) != 24 or not key.endswith(b"=="):  # 16 bytes in base64: 22 + padding
        return False
    try:
        return len(base64.b64decode(key, validate=True)) == 16
    except binascii.Error:
        return False


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
    if (
        len(single) != len(_SINGLE)
        or single[b"upgrade"].lower() != b"websocket"
        or single[b"sec-websocket-version"] != b"13"
        or not valid_key(single[b"sec-websocket-key"])
        or "upgrade" not in [token.lower() for token in split_comma_header(single[b"connection"])]
    ):
        return None
    host = _host(single[b"host"])
    if host is None:
        return None
    return Request(
        host=host, target=match[1].decode("ascii"), subprotocols=subprotocols, extra_headers=headers
    )


def accept_response(
    request: Request, subprotocol: str | None, pairs: list[tuple[bytes, bytes]]
) -> bytes | None:
    """The 101 answering ``request`` (read by :func:`parse_upgrade`) with
    ``subprotocol`` (one the client offered) and the extra headers ``pairs``, as
    h11 writes it; ``None`` when a header needs h11's checks or rewriting."""
    lines = [b"HTTP/1.1 101 Switching Protocols", b"Upgrade: websocket", b"Connection: Upgrade"]
    key = next(value for name, value in request.extra_headers if name == b"sec-websocket-key")
    lines.append(b"Sec-WebSocket-Accept: " + base64.b64encode(hashlib.sha1(key + _GUID).digest()))
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
