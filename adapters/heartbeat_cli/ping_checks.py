"""What ``heartbeat ping`` checks before it connects and says when it cannot: its
``-H`` headers, its URL, an interval below the servers' flood limit, and TLS spoken on
one side only."""

from __future__ import annotations

import re
import ssl
from collections.abc import Sequence

from heartbeat_cli.output import describe_connect_error
from heartbeat_core import ConfigError, HeartbeatConfig
from heartbeat_core.errors import HandshakeError
from heartbeat_core.uri import parse_uri

__all__ = ["check_url", "describe_ping_error", "flood_warning", "parse_headers"]

# What OpenSSL says when the other end answers a TLS hello with something else.
_NOT_TLS = ("WRONG_VERSION_NUMBER", "RECORD_LAYER_FAILURE", "UNKNOWN_PROTOCOL", "HTTP_REQUEST")
# An HTTP header name (RFC 9110 token).
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")


def parse_headers(lines: Sequence[str]) -> list[tuple[str, str]]:
    """``-H 'Name: value'`` options as header pairs; :class:`ValueError` says what is wrong."""
    pairs = []
    for line in lines:
        name, sep, value = line.partition(":")
        name, value = name.strip(), value.strip()
        if not sep or not name or not _TOKEN.fullmatch(name) or any(c in value for c in "\r\n"):
            raise ValueError(
                f"bad header {line!r}: write -H 'Name: value', e.g. -H 'Authorization: Bearer xyz'"
            )
        pairs.append((name, value))
    return pairs


def flood_warning(interval: float) -> str | None:
    """What to say when ``interval`` is below a heartbeat-core server's default flood limit."""
    limit = HeartbeatConfig().peer_ping_min_interval
    if interval >= limit:
        return None
    strikes = HeartbeatConfig().peer_ping_max_strikes
    return (
        f"--interval {interval:g} s is below {limit:g} s, the default flood limit of "
        f"heartbeat-core servers (heartbeat serve included): after {strikes} pings that "
        "close together they close the connection with 1008 'too many pings'"
    )


def describe_ping_error(url: str, exc: BaseException) -> str:
    """:func:`describe_connect_error`, in plain words for TLS on one side only."""
    scheme = url.partition(":")[0].lower()
    if (
        scheme == "wss"
        and isinstance(exc, ssl.SSLError)
        and not isinstance(exc, ssl.SSLCertVerificationError)
    ):
        why = getattr(exc, "reason", None) or exc
        if why in _NOT_TLS:
            return (
                "the server does not speak TLS on this port (a plain ws:// server?): "
                f"try ws:// instead of wss:// (TLS said {why})"
            )
    if (
        scheme == "ws"
        and isinstance(exc, HandshakeError)
        and exc.status is None
        and "closed during the opening handshake" in str(exc)
    ):
        return (
            "the server closed the connection without answering the upgrade: if it "
            "expects TLS on this port, try wss:// instead of ws://"
        )
    return describe_connect_error(exc)


def check_url(url: str) -> str | None:
    """``None`` when ``url`` is a usable ws:// or wss:// URL, else what is wrong."""
    try:
        parse_uri(url)
    except ConfigError as exc:
        return f"bad URL: {exc}"
    return None
