"""WebSocket URIs, parsed once for every driver.

:func:`parse_uri` turns ``ws://host[:port]/path?query`` or ``wss://...`` into a
frozen :class:`WebSocketURI`: where to connect, and the request target and
``Host`` header to send. Anything a WebSocket client cannot use raises
:class:`~heartbeat_core.errors.ConfigError`, with a message saying what was
wrong and what to write instead, before anything connects.

The URI is split here (RFC 3986, for the one form a WebSocket client accepts),
not by ``urllib.parse``, whose checks of bracketed hosts and ports differ
between Python versions and which raises a bare ``ValueError`` for some ports.
"""

from __future__ import annotations

import ipaddress
import re
import string
from dataclasses import dataclass

from heartbeat_core.errors import ConfigError

__all__ = ["WebSocketURI", "log_queries", "loggable", "parse_uri"]

_DEFAULT_PORTS = {"ws": 80, "wss": 443}
_SCHEME_HINTS = {
    "http": " (use ws:// instead of http://)",
    "https": " (use wss:// instead of https://)",
}
_FORM = "write ws://host[:port]/path, or wss://... for TLS"
# RFC 3986 reg-name: unreserved, percent-encoded and sub-delims characters.
_HOST_CHARS = frozenset(string.ascii_letters + string.digits + "-._~%!$&'()*+,;=")
# RFC 3986 scheme, at the start of a URI.
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*):")
# The authority's user info, hidden from error messages: it may hold a password.
_USERINFO = re.compile(r"^([^:/?#]*:?//)[^/?]*@")


@dataclass(frozen=True, slots=True, kw_only=True)
class WebSocketURI:
    """A parsed ``ws://`` or ``wss://`` URI (see :func:`parse_uri`).

    ``host`` is lower-case, without brackets for an IPv6 address; ``port`` is
    the URI's port or the scheme's default (80, 443); ``target`` is the path
    (``/`` when empty) plus ``?query`` when there is one: the request target of
    the opening handshake.
    """

    #: ``wss://``: connect with TLS.
    secure: bool
    #: Host name or IP address to connect to (IPv6 without brackets).
    host: str
    #: TCP port, 1-65535.
    port: int
    #: Request target: path plus ``?query``.
    target: str

    @property
    def host_header(self) -> str:
        """The ``Host`` header: the host (an IPv6 address in brackets), plus ``:port``
        when the port is not the scheme's default."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        if self.port == (443 if self.secure else 80):
            return host
        return f"{host}:{self.port}"


def _shown(uri: str) -> str:
    return repr(_USERINFO.sub(r"\1***@", uri))


def _bad_character(uri: str) -> str | None:
    """Why ``uri`` cannot be sent as it is, or None."""
    if uri.isascii() and uri.isprintable() and " " not in uri:
        return None
    for index, char in enumerate(uri):
        if char.isspace():
            return (
                f"whitespace ({char!r} at index {index}): remove it, or percent-encode it "
                "in the path or query (a space is %20)"
            )
        if not char.isprintable():
            return (
                f"a control character ({char!r} at index {index}): remove it, or "
                "percent-encode it in the path or query"
            )
        if not char.isascii():
            return (
                f"a non-ASCII character ({char!r} at index {index}): percent-encode it "
                "(UTF-8) in the path or query, and write an international host name in "
                "its ASCII form (xn--...)"
            )
    raise AssertionError("unreachable: the checks above found a bad character")


def _split_authority(netloc: str, uri: str) -> tuple[str, str]:
    """``(host, port text)`` of an authority without user info."""
    if netloc.startswith("["):
        host, bracket, rest = netloc[1:].partition("]")
        try:
            if not bracket:
                raise ValueError("no closing bracket")
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ConfigError(
                f"{netloc!r} in {_shown(uri)} is not an IPv6 address in brackets: write an "
                "IPv6 address as ws://[::1]:8765/, and a host name without brackets"
            ) from None
    else:
        host, colon, port = netloc.partition(":")
        rest = colon + port
        if not host:
            raise ConfigError(
                f"no host in {_shown(uri)}: {_FORM} (an IPv6 address goes in brackets, "
                "e.g. ws://[::1]:8765/)"
            )
        bad = sorted(set(host) - _HOST_CHARS)
        if bad:
            raise ConfigError(
                f"the host {host!r} in {_shown(uri)} contains {''.join(bad)!r}, which a "
                f"host name cannot: {_FORM}"
            )
    if rest and not rest.startswith(":"):
        raise ConfigError(
            f"unexpected {rest!r} after the host in {_shown(uri)}: put the port after a "
            "colon (ws://[::1]:8765/)"
        )
    return host.lower(), rest[1:]


def parse_uri(uri: str) -> WebSocketURI:
    """Parse a ``ws://`` or ``wss://`` URI (the scheme in any case).

    Returns a :class:`WebSocketURI`. Raises
    :class:`~heartbeat_core.errors.ConfigError` saying what to write instead
    when ``uri`` is not a str; contains whitespace, a control character or a
    non-ASCII character; has another scheme or none; has no host, or a bad
    one (a host name with characters RFC 3986 does not allow, or something in
    brackets that is not an IPv6 address); has a port that is not a number
    from 1 to 65535; carries user info (``user:password@``: send credentials
    in a header instead; the message never repeats them); or has a fragment
    (``#...``), which is never sent to the server. An empty port
    (``ws://host:/``) means the default, as in RFC 3986.
    """
    if not isinstance(uri, str):
        raise ConfigError(
            f"the URI must be a str, got {type(uri).__name__} {uri!r}: "
            f"{_FORM}, e.g. 'ws://localhost:8765/'"
        )
    bad = _bad_character(uri)
    if bad is not None:
        raise ConfigError(f"the URI {_shown(uri)} contains {bad}")
    match = _SCHEME.match(uri)
    scheme = match.group(1).lower() if match else ""
    if scheme not in _DEFAULT_PORTS:
        said = f"scheme {scheme!r}, not ws or wss" if scheme else "no scheme"
        raise ConfigError(
            f"the URI {_shown(uri)} has {said}{_SCHEME_HINTS.get(scheme, '')}: {_FORM}"
        )
    if "#" in uri:
        fragment = _USERINFO.sub(r"\1***@", uri).partition("#")[2]
        raise ConfigError(
            f"the URI {_shown(uri)} has a fragment (#{fragment}), which is never sent "
            "to the server: remove it"
        )
    rest = uri[len(scheme) + 1 :]
    if not rest.startswith("//"):
        raise ConfigError(f"no host in {_shown(uri)}: {_FORM}")
    rest = rest[2:]
    end = len(rest)
    for separator in "/?":
        index = rest.find(separator)
        if 0 <= index < end:
            end = index
    netloc, path_query = rest[:end], rest[end:]
    if "@" in netloc:
        raise ConfigError(
            f"the URI {_shown(uri)} carries user info (user:password@): remove it and send "
            "credentials in a header instead, e.g. extra_headers=[('Authorization', ...)]"
        )
    host, port_text = _split_authority(netloc, uri)
    port = _DEFAULT_PORTS[scheme]
    if port_text:
        if not (port_text.isdigit() and len(port_text) <= 5 and 1 <= int(port_text) <= 65535):
            raise ConfigError(
                f"bad port {port_text!r} in {_shown(uri)}: write a number from 1 to 65535 "
                f"after the host, or leave it out for the default ({port} for {scheme}://)"
            )
        port = int(port_text)
    path, _, query = path_query.partition("?")
    target = (path or "/") + (f"?{query}" if query else "")
    return WebSocketURI(secure=scheme == "wss", host=host, port=port, target=target)


# Whether log lines show query strings (log_queries()); a list, so that no `global` is needed.
_SHOW_QUERIES = [False]


def log_queries(show: bool) -> None:
    """Make the library's log lines show request targets' and URIs' query strings
    (``show=True``) or hide them (``False``, the default: queries often carry tokens).
    Process-wide; ``heartbeat serve --log-query`` turns them on. Raises
    :class:`~heartbeat_core.errors.ConfigError` unless ``show`` is a bool."""
    if not isinstance(show, bool):
        raise ConfigError(f"log_queries() takes True or False, got {show!r}")
    _SHOW_QUERIES[0] = show


def loggable(target: str) -> str:
    """A request target or URI as log lines show it: its query string replaced by
    ``?...`` and a URI's user info by ``...@`` (both may hold secrets), unless
    :func:`log_queries` asked for queries."""
    target = _USERINFO.sub(r"\1...@", target)
    if _SHOW_QUERIES[0]:
        return target
    path, sep, _ = target.partition("?")
    return path + ("?..." if sep else "")
