"""Who may see the dashboard: its ``Host`` and ``Origin`` checks.

A page on any web site can open a WebSocket to ``ws://127.0.0.1:8765/_dashboard``
(browsers send its ``Origin``, they do not stop it), and a DNS name the attacker
controls can be rebound to this address so that the browser treats this server as
the attacker's site (it sends the attacker's name as ``Host``). So the dashboard
answers only:

* requests whose ``Host`` is an IP address (which DNS cannot rebind), ``localhost``
  or a name the operator allowed (``allowed_hosts``);
* feed connections from its own page (``Origin`` of the same host and port as the
  request's ``Host``) or from an origin the operator allowed (``allowed_origins``);
  a client that sends no ``Origin`` is not a browser page, and is let in.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from urllib.parse import urlsplit

from heartbeat_core.policy import HttpAnswer

__all__ = ["Access", "header", "refused"]

_DEFAULT_PORTS = {"http": 80, "https": 443}


def header(headers: Iterable[tuple[bytes, bytes]], name: bytes) -> str | None:
    """The first header called ``name`` (lower case), decoded; None if there is none."""
    for key, value in headers:
        if key.lower() == name:
            return value.decode("latin-1")
    return None


def refused(status: int, text: str) -> HttpAnswer:
    """A plain-text refusal for ``process_request``."""
    return status, [("Content-Type", "text/plain; charset=utf-8")], text.encode() + b"\n"


def _host_port(netloc: str, scheme: str = "http") -> tuple[str, int | None] | None:
    """``(host, port)`` of ``host[:port]`` (IPv6 in brackets), lower-cased; None if bad."""
    try:
        parts = urlsplit(f"//{netloc}")
        port = parts.port if parts.port is not None else _DEFAULT_PORTS.get(scheme)
    except ValueError:
        return None
    return (parts.hostname, port) if parts.hostname else None


class Access:
    """The dashboard's ``Host`` and ``Origin`` rules (see the module's docstring)."""

    def __init__(
        self, *, allowed_hosts: Iterable[str] = (), allowed_origins: Iterable[str] = ()
    ) -> None:
        #: Host names answered besides IP addresses and ``localhost`` (lower case).
        self.allowed_hosts: frozenset[str] = frozenset(h.lower() for h in allowed_hosts)
        #: Origins whose pages may read the feed besides the dashboard's own.
        self.allowed_origins: frozenset[str] = frozenset(
            o.lower().rstrip("/") for o in allowed_origins
        )

    def host_allowed(self, host: str | None) -> bool:
        """A request with this ``Host`` header may be answered."""
        parsed = _host_port(host or "")
        if parsed is None:
            return False
        name = parsed[0]
        if name == "localhost" or name in self.allowed_hosts:
            return True
        try:
            ipaddress.ip_address(name)
        except ValueError:
            return False
        return True

    def origin_allowed(self, origin: str, host: str) -> bool:
        """A page of ``origin`` may read the feed of a request made to ``host``."""
        origin = origin.lower().rstrip("/")
        if origin in self.allowed_origins:
            return True
        parts = urlsplit(origin)
        if parts.scheme not in _DEFAULT_PORTS:
            return False  # e.g. "null" (a sandboxed or file: page)
        return _host_port(parts.netloc, parts.scheme) == _host_port(host, parts.scheme)

    def origin_is_here(self, origin: str, here: object) -> bool:
        """The feed's own check, where the request's ``Host`` is not kept but the address
        it reached (``here``: the socket's ``(address, port, ...)``) is: an allowed
        origin, or a page of this port reached by that address, ``localhost`` or an
        allowed host name."""
        origin = origin.lower().rstrip("/")
        if origin in self.allowed_origins:
            return True
        parts = urlsplit(origin)
        theirs = _host_port(parts.netloc, parts.scheme)
        if not isinstance(here, tuple) or theirs is None or parts.scheme not in _DEFAULT_PORTS:
            return False
        name, port = theirs
        return port == here[1] and (
            name in (str(here[0]), "localhost") or name in self.allowed_hosts
        )
