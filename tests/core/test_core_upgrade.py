"""The fast opening handshake (heartbeat_core.upgrade) changes what a request costs,
never its outcome: for generated requests, valid and subtly invalid, a server with
the fast path and one without it give the same events, the same answer byte for
byte and the same errors; and each kind of request the fast path is not sure of
goes to h11."""

from __future__ import annotations

import base64
import binascii

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from heartbeat_core import CloseTransport, HeartbeatConnection, Request, Role
from heartbeat_core import upgrade as fast_module
from heartbeat_core.handshake import MAX_HEAD_LINE, MAX_HEADERS, ServerHandshake
from heartbeat_core.upgrade import accept_response, parse_upgrade, valid_key
from tests.support.frames import FIXED_KEY, accept_key, upgrade_request

ORDINARY = upgrade_request(
    host="example.com:8765",
    target="/feed?x=1",
    extra="Origin: https://example.com\r\nSec-WebSocket-Protocol: chat, superchat\r\n"
    "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
    "User-Agent: test/1.0\r\n",
)


def server(fast: bool) -> HeartbeatConnection:
    conn = HeartbeatConnection(Role.SERVER)
    hs = conn._handshake
    assert isinstance(hs, ServerHandshake)
    hs._fast = fast
    conn.connection_made(0.0)
    return conn


def outcome(
    request: bytes,
    fast: bool,
    *,
    pick: int | None = None,
    headers: list[tuple[str, str]] | None = None,
    refuse: bool = False,
    chunk: int | None = None,
) -> list[object]:
    """Everything a server says and does for ``request`` and then our answer: its
    events, its bytes, and the answer's (accept with the ``pick``-th offered
    subprotocol and ``headers``, or a refusal), or the error the answer raised."""
    conn = server(fast)
    events: list[object] = []
    step = chunk or len(request) or 1
    for i in range(0, len(request), step):
        events += conn.receive_data(request[i : i + step], 0.0)
        if events:
            break
    seen: list[object] = [events, conn.data_to_send()]
    if events and isinstance(events[0], Request):
        offered = events[0].subprotocols
        subprotocol = offered[pick % len(offered)] if pick is not None and offered else None
        try:
            if refuse:
                seen.append(conn.reject(403, b"no\n", now=1.0, headers=headers or ()))
            else:
                seen.append(
                    conn.accept(now=1.0, subprotocol=subprotocol, extra_headers=headers or ())
                )
        except Exception as error:  # the same error, whichever path read the request
            seen.append((type(error), str(error)))
        seen.append(conn.data_to_send())
    return seen


def took_fast_path(request: bytes) -> bool:
    conn = server(True)
    assert isinstance(conn.receive_data(request, 0.0)[0], Request)
    hs = conn._handshake
    assert isinstance(hs, ServerHandshake)
    return hs._h11 is None


# ------------------------------------------------------------- the property

# Header values that are ordinary, and ones a little off (spaces around, a tab, a
# control byte, obs-text, nothing).
VALUES = st.sampled_from(
    ["x", "a b", "a  b", " x ", "x\t", "a\tb", "\x01", "caf\xe9", "", "a,b", "*"]
)
NAMES = st.sampled_from(["X-Thing", "x-thing", "Bad Name", "X:Y", "X\x7f", "Cookie"])

CORE: dict[str, list[str]] = {
    "Host": ["127.0.0.1", "Example.COM:80", "[::1]:8080", "xn--nxasmq6b.com", "xn--zz", "a..b"],
    "Upgrade": ["websocket", "WebSocket", "h2c", "websocket, h2c", "websocket2"],
    "Connection": ["Upgrade", "keep-alive, Upgrade", "upgrade", "close", "Upgrade,,x", "Upgrader"],
    "Sec-WebSocket-Key": [FIXED_KEY, FIXED_KEY[:-2] + "=A", "short==", FIXED_KEY.lower()],
    "Sec-WebSocket-Version": ["13", "8", " 13", "13, 8"],
}
OPTIONAL: dict[str, list[str]] = {
    "Origin": ["https://example.com", "null"],
    "Sec-WebSocket-Protocol": ["chat, superchat", "chat", "a,,b", "a  b, c", ""],
    "Sec-WebSocket-Extensions": ["permessage-deflate", "x; y=1, z"],
    "Content-Length": ["0", "0, 0", "5"],
    "Transfer-Encoding": ["chunked"],
    "Expect": ["100-continue"],
}


@st.composite
def requests(draw: st.DrawFn) -> bytes:
    """An ordinary upgrade request, then none, one or a few small changes."""
    method, target, version = "GET", draw(st.sampled_from(["/", "/a?b=c", "/%20"])), "HTTP/1.1"
    lines: list[str] = []
    for name, values in CORE.items():
        lines.append(f"{draw(st.sampled_from([name, name.lower()]))}: {values[0]}")
    for name, values in OPTIONAL.items():
        if name in ("Origin", "Sec-WebSocket-Protocol") and draw(st.booleans()):
            lines.append(f"{name}: {values[0]}")
    pipelined = False
    for _ in range(draw(st.integers(0, 3))):
        change = draw(st.integers(0, 9))
        if change == 0:
            method = draw(st.sampled_from(["HEAD", "POST", "get"]))
        elif change == 1:
            version = draw(st.sampled_from(["HTTP/1.0", "HTTP/2.0", "HTTP/1.1 "]))
        elif change == 2:
            target = draw(st.sampled_from(["*", "/caf\xe9", "/a b"]))
        elif change == 3:  # a core header with another value
            name = draw(st.sampled_from(sorted(CORE)))
            value = draw(st.sampled_from(CORE[name]))
            lines = [
                f"{name}: {value}" if line.lower().startswith(name.lower()) else line
                for line in lines
            ]
        elif change == 4 and lines:  # a line twice, or left out
            at = draw(st.integers(0, len(lines) - 1))
            lines[at : at + 1] = draw(st.sampled_from([[], [lines[at], lines[at]]]))
        elif change == 5:
            name = draw(st.sampled_from(sorted(OPTIONAL)))
            lines.append(f"{name}: {draw(st.sampled_from(OPTIONAL[name]))}")
        elif change == 6:
            lines.append(f"{draw(NAMES)}:{draw(st.sampled_from(['', ' ', '  ']))}{draw(VALUES)}")
        elif change == 7:
            lines = draw(st.permutations(lines))
        elif change == 8:
            lines.insert(draw(st.integers(0, len(lines))), draw(st.sampled_from([" x", "\tx"])))
        else:
            pipelined = True
    text = f"{method} {target} {version}\r\n" + "".join(line + "\r\n" for line in lines)
    head = (text + "\r\n").encode("latin-1")
    if draw(st.integers(0, 9)) == 0:  # a bare LF somewhere
        at = draw(st.sampled_from([i for i in range(len(head)) if head[i : i + 2] == b"\r\n"]))
        head = head[:at] + head[at + 1 :]
    if pipelined:  # bytes after the head: a masked ping
        head += b"\x89\x80\x01\x02\x03\x04"
    return head


@settings(max_examples=400, deadline=None)
@given(
    request=requests(),
    pick=st.none() | st.integers(0, 3),
    headers=st.lists(st.tuples(NAMES, VALUES), max_size=2)
    | st.sampled_from([[("Host", "x")], [("content-length", "0")], [("Set-Cookie", "a=b")]]),
    refuse=st.booleans(),
)
def test_the_fast_path_and_h11_give_the_same_outcome(
    request: bytes,
    pick: int | None,
    headers: list[tuple[str, str]],
    refuse: bool,
) -> None:
    slow = outcome(request, False, pick=pick, headers=headers, refuse=refuse)
    fast = outcome(request, True, pick=pick, headers=headers, refuse=refuse)
    assert fast == slow
    event("fast path" if parse_upgrade(request) is not None else "h11")


def decodes_to_16_bytes(key: bytes) -> bool:
    """What a Sec-WebSocket-Key must be, as base64 itself judges it."""
    if len(key) != 24 or not key.endswith(b"=="):
        return False
    try:
        return len(base64.b64decode(key, validate=True)) == 16
    except binascii.Error:
        return False


@settings(max_examples=500, deadline=None)
@given(
    st.text(alphabet="ABZabz09+/=-_ \t\n\xe9", min_size=20, max_size=26).map(
        lambda text: text.encode("latin-1")
    )
    | st.binary(min_size=16, max_size=16).map(base64.b64encode)
    | st.binary(max_size=30)
)
def test_a_key_is_valid_exactly_when_base64_decodes_it_to_16_bytes(key: bytes) -> None:
    assert valid_key(key) is decodes_to_16_bytes(key)


# ------------------------------------------------------------- the fast path


def test_an_ordinary_upgrade_is_read_and_answered_without_h11() -> None:
    assert took_fast_path(ORDINARY)
    conn = server(True)
    (request,) = conn.receive_data(ORDINARY, 0.0)
    assert request == Request(
        host="example.com:8765",
        target="/feed?x=1",
        subprotocols=["chat", "superchat"],
        extra_headers=[
            (b"upgrade", b"websocket"),
            (b"connection", b"Upgrade"),
            (b"sec-websocket-key", FIXED_KEY.encode()),
            (b"sec-websocket-version", b"13"),
            (b"origin", b"https://example.com"),
            (b"user-agent", b"test/1.0"),
        ],
    )
    conn.accept(now=1.0, subprotocol="superchat", extra_headers=[("X-Server", "ours")])
    hs = conn._handshake
    assert hs is None and conn.is_open
    assert conn.data_to_send() == (
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: " + accept_key(FIXED_KEY).encode() + b"\r\n"
        b"Sec-WebSocket-Protocol: superchat\r\nX-Server: ours\r\n\r\n"
    )
    assert outcome(ORDINARY, True, pick=1) == outcome(ORDINARY, False, pick=1)


# ---------------------------------------------------------- what goes to h11

ORDINARY_LINES = ORDINARY.decode().split("\r\n")


def altered(old: str, new: str) -> bytes:
    assert old in ORDINARY.decode()
    return ORDINARY.decode().replace(old, new, 1).encode("latin-1")


@pytest.mark.parametrize(
    "request_bytes",
    [
        pytest.param(altered("GET ", "HEAD "), id="another method"),
        pytest.param(altered("HTTP/1.1", "HTTP/1.0"), id="another version"),
        pytest.param(altered("\r\nUpgrade", "\nUpgrade"), id="a bare LF"),
        pytest.param(altered("User-Agent: ", "User-Agent:\t"), id="a tab"),
        pytest.param(altered("test/1.0", "t\xe9st"), id="obs-text"),
        pytest.param(altered("User-Agent: test/1.0", "User-Agent: test\r\n /1.0"), id="folded"),
        pytest.param(altered("User-Agent:", "User-Agent :"), id="space before the colon"),
        pytest.param(altered("Upgrade: websocket", "Upgrade: h2c"), id="not websocket"),
        pytest.param(altered("Connection: Upgrade", "Connection: close"), id="no upgrade token"),
        pytest.param(altered("Version: 13", "Version: 8"), id="another ws version"),
        pytest.param(altered(FIXED_KEY, "c2hvcnQ="), id="a bad key"),
        pytest.param(altered("Host: example.com:8765\r\n", ""), id="no host"),
        pytest.param(altered("Origin", "Host: b\r\nOrigin"), id="two hosts"),
        pytest.param(altered("Origin", "Connection: Upgrade\r\nOrigin"), id="two connections"),
        pytest.param(altered("example.com:8765", "xn--zz"), id="a host IDNA refuses"),
        pytest.param(altered("Origin", "Content-Length: 0\r\nOrigin"), id="content-length"),
        pytest.param(ORDINARY + b"\x89\x80\x01\x02\x03\x04", id="pipelined bytes"),
        pytest.param(
            altered("User-Agent", "X-Pad: " + "p" * MAX_HEAD_LINE + "\r\nUser-Agent"),
            id="longer than a head line",
        ),
        pytest.param(
            altered("User-Agent", "X: y\r\n" * (MAX_HEADERS - 8) + "User-Agent"),
            id="more lines than a head has",
        ),
    ],
)
def test_what_the_fast_path_is_not_sure_of_goes_to_h11(request_bytes: bytes) -> None:
    slow = outcome(request_bytes, False, pick=0)
    assert outcome(request_bytes, True, pick=0) == slow
    events = slow[0]
    assert isinstance(events, list)
    if events and isinstance(events[0], Request):
        assert not took_fast_path(request_bytes)


def test_the_bounds_of_a_head_hold_on_the_fast_path_too() -> None:
    # At the bounds the fast path still takes the request; one more line is a 431.
    most = altered("User-Agent", "X: y\r\n" * (MAX_HEADERS - 9) + "User-Agent")
    assert took_fast_path(most)
    events, data = outcome(most.replace(b"X: y", b"X: y\r\nX: y", 1), True)[:2]
    assert events == [CloseTransport()] and isinstance(data, bytes)
    assert data.startswith(b"HTTP/1.1 431 ")


def test_a_request_in_several_reads_goes_to_h11() -> None:
    assert outcome(ORDINARY, True, pick=0, chunk=50) == outcome(ORDINARY, False, pick=0)
    conn = server(True)
    conn.receive_data(ORDINARY[:50], 0.0)
    assert isinstance(conn.receive_data(ORDINARY[50:], 0.0)[0], Request)
    hs = conn._handshake
    assert isinstance(hs, ServerHandshake) and hs._h11 is not None


@pytest.mark.parametrize(
    ("pick", "headers"),
    [
        pytest.param(None, [("Host", "elsewhere")], id="a Host header h11 writes first"),
        pytest.param(None, [("Content-Length", "0, 0")], id="a header h11 rewrites"),
        pytest.param(None, [("X-Tab", "a\tb")], id="a tab h11 judges"),
        pytest.param(None, [("X-Bad", "a\nb")], id="a value h11 refuses"),
        pytest.param(None, [("Bad Name", "x")], id="a name h11 refuses"),
        pytest.param(0, [], id="a subprotocol with two spaces inside"),
    ],
)
def test_an_answer_that_needs_h11_gets_it(pick: int | None, headers: list[tuple[str, str]]) -> None:
    request = altered("chat, superchat", "a  b")
    assert took_fast_path(request)
    fast = outcome(request, True, pick=pick, headers=headers)
    assert fast == outcome(request, False, pick=pick, headers=headers)
    parsed = parse_upgrade(request)
    assert parsed is not None
    pairs = [(name.encode(), value.encode()) for name, value in headers]
    assert accept_response(parsed, parsed.subprotocols[0] if pick == 0 else None, pairs) is None


def test_a_refusal_after_the_fast_path_is_h11s() -> None:
    fast = outcome(ORDINARY, True, refuse=True, headers=[("X-Why", "policy")])
    assert fast == outcome(ORDINARY, False, refuse=True, headers=[("X-Why", "policy")])
    assert isinstance(fast[-1], bytes) and fast[-1].startswith(b"HTTP/1.1 403 ")


def test_hosts_are_remembered_within_a_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fast_module, "_HOSTS", {})
    for i in range(fast_module._MAX_HOSTS + 1):
        request = parse_upgrade(altered("example.com:8765", f"host{i}.example"))
        assert request is not None and request.host == f"host{i}.example"
    assert len(fast_module._HOSTS) == 1  # cleared when full, then the last one
    again = parse_upgrade(altered("example.com:8765", "xn--nxasmq6b.com"))
    assert again is not None and again.host == "βόλοσ.com"
    assert parse_upgrade(altered("example.com:8765", "xn--nxasmq6b.com")) == again


def test_an_empty_read_first_changes_nothing() -> None:
    conn = server(True)
    assert conn.receive_data(b"", 0.0) == []
    assert isinstance(conn.receive_data(ORDINARY, 0.0)[0], Request)
    hs = conn._handshake
    assert isinstance(hs, ServerHandshake) and hs._h11 is None  # (the fast path took it)
