"""parse_uri: a table of good and bad URIs, and properties over arbitrary text."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from heartbeat_core.errors import ConfigError
from heartbeat_core.uri import WebSocketURI, parse_uri

GOOD = [
    # uri, secure, host, port, target, Host header
    ("ws://localhost:8765/", False, "localhost", 8765, "/", "localhost:8765"),
    ("ws://example.com", False, "example.com", 80, "/", "example.com"),
    ("wss://example.com", True, "example.com", 443, "/", "example.com"),
    ("ws://example.com:80/chat", False, "example.com", 80, "/chat", "example.com"),
    ("wss://example.com:443/", True, "example.com", 443, "/", "example.com"),
    ("wss://example.com:80/", True, "example.com", 80, "/", "example.com:80"),
    ("ws://example.com:443/", False, "example.com", 443, "/", "example.com:443"),
    ("WS://Example.COM/Path", False, "example.com", 80, "/Path", "example.com"),
    ("wSs://h:1/", True, "h", 1, "/", "h:1"),
    ("ws://h:65535/", False, "h", 65535, "/", "h:65535"),
    ("ws://h:08080/", False, "h", 8080, "/", "h:8080"),
    ("ws://h:/", False, "h", 80, "/", "h"),  # an empty port is the default (RFC 3986)
    ("ws://h/a/b?x=1&y=%20", False, "h", 80, "/a/b?x=1&y=%20", "h"),
    ("ws://h?x=1", False, "h", 80, "/?x=1", "h"),
    ("ws://h/?", False, "h", 80, "/", "h"),  # an empty query is dropped
    ("ws://h/a;p", False, "h", 80, "/a;p", "h"),
    ("ws://127.0.0.1:9000/ws", False, "127.0.0.1", 9000, "/ws", "127.0.0.1:9000"),
    ("ws://[::1]:8765/", False, "::1", 8765, "/", "[::1]:8765"),
    ("wss://[2001:DB8::1]/", True, "2001:db8::1", 443, "/", "[2001:db8::1]"),
    ("ws://[::ffff:127.0.0.1]/", False, "::ffff:127.0.0.1", 80, "/", "[::ffff:127.0.0.1]"),
    ("ws://my_host.local:1/", False, "my_host.local", 1, "/", "my_host.local:1"),
]

BAD = [
    # uri, a fragment of the message
    (b"ws://h/", "must be a str"),
    (None, "must be a str"),
    ("", "no scheme"),
    ("http://h/", "use ws:// instead of http://"),
    ("https://h/", "use wss:// instead of https://"),
    ("ftp://h/", "scheme 'ftp', not ws or wss"),
    ("localhost:8765", "scheme 'localhost'"),
    ("//h/", "no scheme"),
    ("1ws://h/", "no scheme"),
    ("ws//h/", "no scheme"),
    ("ws:h", "no host"),
    ("ws:/h", "no host"),
    ("ws:///path", "no host"),
    ("ws://:80/", "no host"),
    ("ws://::1/", "an IPv6 address goes in brackets"),
    ("ws://h:x/", "bad port 'x'"),
    ("ws://h:0/", "bad port '0'"),
    ("ws://h:65536/", "bad port '65536'"),
    ("ws://h:99999/", "bad port '99999'"),
    ("ws://h:+80/", "bad port '+80'"),
    ("ws://h:-1/", "bad port '-1'"),
    ("ws://h:80:81/", "bad port '80:81'"),
    ("ws://h:0000080/", "bad port"),
    ("wss://h:1e3/", "default (443 for wss://)"),
    ("ws://h/#top", "fragment (#top)"),
    ("ws://h/#", "fragment"),
    ("ws://h#x", "fragment"),
    ("ws://user@h/", "user info"),
    ("ws://user:secret@h/", "credentials in a header"),
    ("ws://h /", "whitespace (' ' at index 6)"),
    (" ws://h/", "whitespace"),
    ("ws://h/\n", "whitespace ('\\n'"),
    ("ws://h/a\tb", "whitespace"),
    ("ws://h/\u00a0", "whitespace"),
    ("ws://h/\x00", "control character ('\\x00'"),
    ("ws://h/\x7f", "control character"),
    ("ws://h/\x1b[0m", "control character"),
    ("ws://bücher.example/", "non-ASCII character ('ü' at index 6)"),
    ("ws://h/caf\u00e9", "percent-encode it (UTF-8)"),
    ("ws://[::1/", "'[::1' in 'ws://[::1/' is not an IPv6 address in brackets"),
    ("ws://[::1?x", "not an IPv6 address in brackets"),
    ("ws://::1]/", "no host"),
    ("ws://h]/", "contains ']'"),
    ("ws://[abc]/", "'[abc]' in 'ws://[abc]/' is not an IPv6 address"),
    ("ws://[127.0.0.1]/", "write an IPv6 address as ws://[::1]:8765/"),
    ("ws://[]/", "write an IPv6 address as"),
    ("ws://[::1]x/", "unexpected 'x' after the host"),
    ("ws://[::1]8080/", "put the port after a colon"),
    ("ws://h\\x/", "contains '\\\\'"),
    ("ws://a[::1]/", "contains '['"),
    ("ws://h<x>/", "contains '<>'"),
]


@pytest.mark.parametrize(("uri", "secure", "host", "port", "target", "header"), GOOD)
def test_good(uri: str, secure: bool, host: str, port: int, target: str, header: str) -> None:
    parsed = parse_uri(uri)
    assert parsed == WebSocketURI(secure=secure, host=host, port=port, target=target)
    assert parsed.host_header == header


@pytest.mark.parametrize(("uri", "message"), BAD)
def test_bad(uri: object, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_uri(uri)  # type: ignore[arg-type]
    assert message in str(info.value)
    # Every message says what to write instead (or what to remove).
    text = str(info.value)
    assert any(word in text for word in ("write", "use ", "remove", "put ")), text


def test_percent_in_host_is_left_to_the_resolver() -> None:
    # RFC 3986 allows percent-encoded host names; resolving them is the driver's business.
    assert parse_uri("ws://h%41/").host == "h%41"


@pytest.mark.parametrize(
    "uri",
    [
        "ws://user:secret@h/",
        "http://user:secret@h/",
        "ws://a@b@h/",
        "ws://user:se#cret@h/",
        "ws://user:se cret@h/",
        "ws://user:secret@h:99999/",
    ],
)
def test_credentials_are_never_repeated(uri: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_uri(uri)
    assert "secret" not in str(info.value)
    assert "cret" not in str(info.value)
    assert "user" not in str(info.value).replace("user info (user:password@)", "")
    assert "***@" in str(info.value)


def test_bad_port_is_config_error_not_bare_value_error() -> None:
    with pytest.raises(ConfigError) as info:
        parse_uri("ws://h:99999/")
    assert isinstance(info.value, ValueError)  # ConfigError is also a ValueError
    assert "1 to 65535" in str(info.value)


def test_uri_is_frozen_slotted_keyword_only() -> None:
    uri = parse_uri("ws://h/")
    with pytest.raises(dataclasses.FrozenInstanceError):
        uri.port = 1  # type: ignore[misc]
    assert not hasattr(uri, "__dict__")
    with pytest.raises(TypeError):
        WebSocketURI(False, "h", 80, "/")  # type: ignore[call-arg]


# ------------------------------------------------------------------ properties

_LABEL = st.text("abcdefghijklmnopqrstuvwxyz0123456789-_", min_size=1, max_size=12)
_HOSTS = st.one_of(
    st.lists(_LABEL, min_size=1, max_size=4).map(".".join),
    st.ip_addresses(v=4).map(str),
    st.ip_addresses(v=6).map(str),
)
_SEGMENT = st.text("abcXYZ019-._~!$&'()*+,;=:@%", max_size=8)


@settings(max_examples=300, deadline=None)
@given(
    secure=st.booleans(),
    upper=st.booleans(),
    host=_HOSTS,
    port=st.none() | st.integers(1, 65535),
    path=st.lists(_SEGMENT, max_size=4).map(lambda segments: "".join("/" + s for s in segments)),
    query=st.none() | st.text("abc=&%20+/?:@", max_size=10),
)
def test_components_round_trip(
    secure: bool,
    upper: bool,
    host: str,
    port: int | None,
    path: str,
    query: str | None,
) -> None:
    scheme = "wss" if secure else "ws"
    netloc = f"[{host}]" if ":" in host else host
    uri = f"{scheme.upper() if upper else scheme}://{netloc}"
    if port is not None:
        uri += f":{port}"
    uri += path + ("" if query is None else f"?{query}")
    parsed = parse_uri(uri)
    assert parsed.secure is secure
    assert parsed.host == host.lower()
    default = 443 if secure else 80
    assert parsed.port == (default if port is None else port)
    assert parsed.target == (path or "/") + (f"?{query}" if query else "")
    header = parsed.host_header
    assert header.startswith(netloc.lower())
    assert header.endswith("" if parsed.port == default else f":{parsed.port}")
    # Parsing what it stands for again gives the same result.
    assert parse_uri(f"{scheme}://{header}{parsed.target}") == parsed


_URI_ALPHABET = st.sampled_from(list("ws:/[]@#?%.:0123456789abcHW \t\n\x00\x7fé\u00a0\\+-"))
_URI_LIKE = st.builds(
    lambda scheme, rest: scheme + rest,
    st.sampled_from(["ws://", "wss://", "WS://", "http://", "ws:", ""]),
    st.text(_URI_ALPHABET, max_size=30),
)


@settings(max_examples=1000, deadline=None)
@given(st.one_of(st.text(), _URI_LIKE))
def test_never_raises_anything_but_config_error(uri: str) -> None:
    try:
        parsed = parse_uri(uri)
    except ConfigError as exc:
        assert str(exc)
        return
    # What it accepted is usable: ASCII, no whitespace or control characters.
    assert 1 <= parsed.port <= 65535
    assert parsed.host
    assert parsed.target.startswith("/")
    for text in (parsed.host, parsed.target, parsed.host_header):
        assert text.isascii() and text.isprintable() and " " not in text
    assert "#" not in parsed.target
    assert "@" not in parsed.host_header


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.binary(), st.integers(), st.floats(), st.lists(st.text())))
def test_non_str_is_config_error(value: object) -> None:
    with pytest.raises(ConfigError, match="must be a str"):
        parse_uri(value)  # type: ignore[arg-type]


class TestLoggable:
    """What log lines show of a target or URI (query strings and user info may be secrets)."""

    def test_queries_and_user_info_are_hidden_by_default(self) -> None:
        from heartbeat_core.uri import loggable

        assert loggable("/chat?token=s3cret") == "/chat?..."
        assert loggable("/chat") == "/chat"
        assert loggable("wss://me:pw@example.org/x?t=1") == "wss://...@example.org/x?..."

    def test_log_queries_shows_them_and_takes_only_a_bool(self) -> None:
        from heartbeat_core.uri import log_queries, loggable

        try:
            log_queries(True)
            assert loggable("/chat?token=s3cret") == "/chat?token=s3cret"
            assert loggable("ws://me:pw@h/x?t=1") == "ws://...@h/x?t=1"  # (never a password)
        finally:
            log_queries(False)
        assert loggable("/chat?token=s3cret") == "/chat?..."
        with pytest.raises(ConfigError, match="True or False"):
            log_queries("yes")  # type: ignore[arg-type]
