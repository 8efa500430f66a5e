"""The opening handshake's bounds and rules (heartbeat_core.handshake), through the
sans-IO connection: request and response heads bounded however they are cut, strict
upgrade requests, and client errors that say what was wrong."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from wsproto.handshake import H11Handshake

from heartbeat_core import (
    Accepted,
    CloseTransport,
    HandshakeFailed,
    HeartbeatConnection,
    HttpRequest,
    Rejected,
    Request,
    Role,
)
from heartbeat_core.handshake import (
    MAX_HEAD_LINE,
    MAX_HEAD_SIZE,
    MAX_HEADERS,
    MAX_REJECT_BODY,
    HeadReader,
)
from tests.support.frames import FIXED_KEY, accept_key, upgrade_request, websocket_key


def answer(request: bytes, chunk: int | None = None) -> tuple[list[object], bytes]:
    """A fresh server's events and answer for ``request``, fed in ``chunk``-byte reads."""
    server = HeartbeatConnection(Role.SERVER)
    events: list[object] = []
    step = chunk or len(request)
    for i in range(0, len(request), step):
        events += server.receive_data(request[i : i + step], 0.0)
        if events:
            break
    return events, server.data_to_send()


def status(data: bytes) -> int:
    return int(data.split(b" ", 2)[1])


def padded(n: int, size: int = 10) -> str:
    return "".join(f"X-H{i}: {'v' * size}\r\n" for i in range(n))


# ---------------------------------------------------------------- request heads


@pytest.mark.parametrize("chunk", [None, 1000, 7])
@pytest.mark.parametrize(
    ("request_bytes", "code"),
    [
        # As many headers as allowed: taken. One more: 431.
        (upgrade_request(extra=padded(MAX_HEADERS - 5)), 101),
        (upgrade_request(extra=padded(MAX_HEADERS - 4)), 431),
        # A header line at the bound, and past it.
        (upgrade_request(extra=f"X-Long: {'a' * (MAX_HEAD_LINE - 8)}\r\n"), 101),
        (upgrade_request(extra=f"X-Long: {'a' * (MAX_HEAD_LINE - 7)}\r\n"), 431),
        # A request line past the bound: 414.
        (upgrade_request(target="/" + "p" * MAX_HEAD_LINE), 414),
        # Lines each within bounds, the head past MAX_HEAD_SIZE in all.
        (upgrade_request(extra=padded(40, 500)), 431),
    ],
)
def test_request_heads_are_bounded_whatever_the_reads(
    request_bytes: bytes, code: int, chunk: int | None
) -> None:
    events, data = answer(request_bytes, chunk)
    if code == 101:
        assert isinstance(events[0], Request)
        return
    assert events == [CloseTransport()]
    assert status(data) == code
    assert data.endswith(b"\n") and b"Bad WebSocket upgrade request: " in data


def test_an_endless_line_is_refused_once_it_passes_the_bound() -> None:
    # No newline ever comes: refused as soon as the line is too long, not at the timeout.
    server = HeartbeatConnection(Role.SERVER)
    assert server.receive_data(b"GET /" + b"a" * (MAX_HEAD_LINE - 5), 0.0) == []
    assert server.receive_data(b"a", 0.0) == [CloseTransport()]
    assert status(server.data_to_send()) == 414
    server = HeartbeatConnection(Role.SERVER)
    assert server.receive_data(b"GET / HTTP/1.1\r\nX: " + b"a" * MAX_HEAD_LINE, 0.0) == [
        CloseTransport()
    ]
    assert status(server.data_to_send()) == 431


@pytest.mark.parametrize("start", [b"\x16\x03\x01\x02\x00", b" GET", b"\r"])
def test_a_request_that_cannot_be_http_is_refused_at_its_first_byte(start: bytes) -> None:
    # As h11 judges: a TLS hello sent to a plain server gets its 400 at once, not at
    # the handshake timeout (it may never hold a blank line).
    server = HeartbeatConnection(Role.SERVER)
    assert server.receive_data(b"", 0.0) == []
    assert server.receive_data(start, 0.0) == [CloseTransport()]
    assert status(server.data_to_send()) == 400


def test_a_head_of_bare_lf_lines_is_taken_as_h11_takes_it() -> None:
    request = upgrade_request().replace(b"\r\n", b"\n")
    events, _ = answer(request, 3)
    assert isinstance(events[0], Request)


def test_the_bytes_after_the_head_reach_the_frame_layer() -> None:
    server = HeartbeatConnection(Role.SERVER)
    (request,) = server.receive_data(upgrade_request() + b"\x89\x80\0\0\0\0", 0.0)
    assert isinstance(request, Request)
    server.accept(now=0.0)
    assert server.data_to_send().endswith(b"\r\n\r\n\x8a\x00")  # the 101, then the pong


@settings(max_examples=200, deadline=None)
@given(
    headers=st.integers(0, 2 * MAX_HEADERS),
    size=st.integers(0, 3 * MAX_HEAD_LINE // 2),
    cuts=st.lists(st.integers(1, 20_000), max_size=5),
)
def test_the_verdict_does_not_depend_on_how_the_head_is_cut(
    headers: int, size: int, cuts: list[int]
) -> None:
    request = upgrade_request(extra=padded(headers) + f"X-Big: {'b' * size}\r\n")
    whole, whole_data = answer(request)
    reader_events: list[object] = []
    server = HeartbeatConnection(Role.SERVER)
    pos = 0
    for cut in [*sorted(cuts), len(request)]:
        if reader_events or cut <= pos:
            continue
        reader_events += server.receive_data(request[pos:cut], 0.0)
        pos = cut
    assert [type(e) for e in reader_events] == [type(e) for e in whole]
    assert server.data_to_send() == whole_data


def test_head_reader_keeps_nothing_past_the_bound() -> None:
    reader = HeadReader()
    with pytest.raises(Exception, match="over"):
        reader.feed(b"GET / HTTP/1.1\r\n" + b"X: y\r\n" * (MAX_HEAD_SIZE // 6))
    reader = HeadReader()
    assert not reader.feed(b"GET / HTTP/1.1\r\nHost: x\r\n")
    assert reader.feed(b"\r\n") and reader.lines() == [b"GET / HTTP/1.1", b"Host: x"]
    assert reader.feed(b"more") and reader.end == len(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")


# ---------------------------------------------------------------- strict upgrades


def _request(version: bytes = b"HTTP/1.1", extra: bytes = b"", key: bytes | None = None) -> bytes:
    key_line = b"Sec-WebSocket-Key: %s\r\n" % (key if key is not None else FIXED_KEY.encode())
    return (
        b"GET / "
        + version
        + b"\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        + key_line
        + b"Sec-WebSocket-Version: 13\r\n"
        + extra
        + b"\r\n"
    )


@pytest.mark.parametrize(
    ("request_bytes", "code"),
    [
        (_request(b"HTTP/1.0"), 505),
        (_request(b"HTTP/2.0"), 505),
        (_request(key=b"not-base64!"), 400),
        (_request(key=b"c2hvcnQ="), 400),  # base64, but 5 bytes
        (_request(key=b"aGVhcnRiZWF0LWZhdWx0cyE="), 400),  # 24 characters, 17 bytes
        (_request(key=b"aGVhcnRiZWF0LWZhdWx0c*=="), 400),  # not the base64 alphabet
        (_request(extra=b"Sec-WebSocket-Key: " + FIXED_KEY.encode() + b"\r\n"), 400),
        (_request(extra=b"Transfer-Encoding: chunked\r\n"), 400),
        (_request(extra=b"Content-Length: 5\r\n"), 400),
        (_request().replace(b"Version: 13", b"Version: 8"), 426),
        (_request(extra=b"Sec-WebSocket-Version: 8\r\n"), 426),
    ],
)
def test_strict_upgrade_requests(request_bytes: bytes, code: int) -> None:
    events, data = answer(request_bytes)
    assert events == [CloseTransport()]
    assert status(data) == code
    if code == 426:
        assert b"\r\nSec-WebSocket-Version: 13\r\n" in data


def test_what_strictness_still_takes() -> None:
    for request_bytes in (_request(extra=b"Content-Length: 0\r\n"), _request()):
        events, _ = answer(request_bytes)
        assert isinstance(events[0], Request)
    # A plain HTTP/1.0 request (not an upgrade) is still plain HTTP.
    events, _ = answer(b"GET /health HTTP/1.0\r\n\r\n")
    assert type(events[0]).__name__ == "HttpRequest"


def test_a_head_h11_does_not_end_where_we_do_is_a_bad_request(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for request_bytes in (b"\r\nGET / HTTP/1.1\r\n\r\n", b"\n"):
        events, data = answer(request_bytes)
        assert events == [CloseTransport()] and status(data) == 400
    # Should h11 ever want more of a head we hold complete, the request is refused. (A
    # tab in a value: a request the fast path leaves to h11.)
    monkeypatch.setattr(H11Handshake, "events", lambda self: iter(()))
    events, data = answer(upgrade_request(extra="X-Tab: a\tb\r\n"))
    assert events == [CloseTransport()] and status(data) == 400


def test_header_lines_without_a_colon_are_left_to_h11() -> None:
    events, _ = answer(b"GET /x HTTP/1.1\r\nno colon here\r\n\r\n")
    assert events == [HttpRequest(method="GET", target="/x", headers=[])]


# ---------------------------------------------------------------- the client's side


def client_answered(response: bytes, *, subprotocols: tuple[str, ...] = ()) -> list[object]:
    client = HeartbeatConnection(Role.CLIENT)
    client.initiate("h", subprotocols=subprotocols)
    key = websocket_key(client.data_to_send())
    return client.receive_data(response.replace(b"{accept}", accept_key(key).encode()), 0.0)


_101 = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"


@pytest.mark.parametrize(
    ("response", "reason"),
    [
        (_101 + b"Sec-WebSocket-Accept: d3Jvbmc=\r\n\r\n", "Sec-WebSocket-Accept does not answer"),
        (
            _101 + b"Sec-WebSocket-Accept: {accept}\r\nSec-WebSocket-Extensions: zip\r\n\r\n",
            "accepted the extension 'zip', which we did not offer",
        ),
        (
            _101 + b"Sec-WebSocket-Accept: {accept}\r\nSec-WebSocket-Protocol: chat\r\n\r\n",
            "chose the subprotocol 'chat', which we did not offer",
        ),
        (
            b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n\r\n",
            "missing a header: 'Upgrade: websocket'",
        ),
        (b"HTTP/1.1 abc\r\n\r\n", "not a valid HTTP/1.1 WebSocket handshake"),
        (
            _101 + b"X-Pad: " + b"p" * 90_000 + b"\r\n\r\n",
            f"too large: a header line is over {MAX_HEAD_LINE} bytes",
        ),
        (
            _101 + padded(MAX_HEADERS + 1).encode() + b"\r\n",
            f"too large: the head has over {MAX_HEADERS} header lines",
        ),
    ],
)
def test_a_bad_answer_fails_the_client_with_its_reason(response: bytes, reason: str) -> None:
    events = client_answered(response)
    assert len(events) == 2 and events[1] == CloseTransport()
    assert isinstance(events[0], HandshakeFailed) and reason in events[0].reason


def test_the_client_takes_a_good_answer_with_what_it_offered() -> None:
    response = _101 + b"Sec-WebSocket-Accept: {accept}\r\nSec-WebSocket-Protocol: chat\r\n\r\n"
    (accepted,) = client_answered(response, subprotocols=("chat",))
    assert accepted == Accepted(subprotocol="chat", extra_headers=[])


def test_the_client_reads_a_head_in_pieces() -> None:
    client = HeartbeatConnection(Role.CLIENT)
    client.initiate("h")
    response = (
        _101
        + b"Sec-WebSocket-Accept: %s\r\n\r\n"
        % accept_key(websocket_key(client.data_to_send())).encode()
    )
    assert client.receive_data(response[:30], 0.0) == []
    assert client.receive_data(response[30:], 0.0) == [Accepted(extra_headers=[])]


def test_a_refusal_keeps_at_most_max_reject_body_bytes() -> None:
    client = HeartbeatConnection(Role.CLIENT)
    client.initiate("h")
    body = b"b" * (3 * MAX_REJECT_BODY)
    head = b"HTTP/1.1 403 Forbidden\r\nContent-Length: %d\r\n\r\n" % len(body)
    assert client.receive_data(head + body[:1000], 0.0) == []
    events = client.receive_data(body[1000:], 0.0)
    assert events == [
        Rejected(
            status=403,
            headers=[(b"content-length", b"%d" % len(body))],
            body=body[:MAX_REJECT_BODY],
        ),
        CloseTransport(),
    ]
