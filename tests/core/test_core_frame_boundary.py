"""``FrameBoundary`` on every header shape, cut at every byte of the header (deterministic)."""

from __future__ import annotations

import pytest

from heartbeat_core import Accepted, HeartbeatConnection, Message, Request, Role
from heartbeat_core.frames import FrameBoundary, simple_prefix
from tests.support import frames as wsframes


def frame(length: int, *, masked: bool) -> bytes:
    """A binary frame header for ``length`` payload bytes, plus the payload."""
    mask = b"\1\2\3\4" if masked else None
    return wsframes.frame_header(wsframes.BINARY, length, mask=mask) + b"p" * length


@pytest.mark.parametrize("length", [0, 5, 125, 126, 65535, 65536])
@pytest.mark.parametrize("masked", [False, True])
def test_every_cut_of_two_frames(length: int, masked: bool) -> None:
    first = frame(length, masked=masked)
    stream = first + frame(3, masked=masked)
    ends = {len(first), len(stream)}
    header = len(first) - length
    cuts = sorted({*range(1, header + 2), len(first) - 1, len(first), len(first) + 1})
    for cut in cuts:
        tracker = FrameBoundary()
        tracker.feed(stream[:cut])
        assert tracker.between_frames == (cut in ends), cut
        tracker.feed(stream[cut:])
        assert tracker.between_frames


def test_byte_by_byte() -> None:
    stream = frame(70_000, masked=True) + frame(0, masked=False) + frame(200, masked=True)
    ends = {70_014, 70_016, len(stream)}
    tracker = FrameBoundary()
    for i in range(len(stream)):
        tracker.feed(stream[i : i + 1])
        assert tracker.between_frames == (i + 1 in ends)


def test_a_truncated_control_frame_is_kept_for_the_next_read() -> None:
    ping = bytes([0x89, 0x80 | 4]) + b"\0\0\0\0" + b"ping"
    assert simple_prefix(ping, True) == ([(0x9, b"ping")], len(ping), False)
    assert simple_prefix(ping[:-1], True) == ([], 0, True)  # kept for the next read
    assert simple_prefix(ping + ping[:3], True) == ([(0x9, b"ping")], len(ping), True)


def test_frames_sent_with_the_upgrade_request_are_delivered() -> None:
    client = HeartbeatConnection(Role.CLIENT)
    server = HeartbeatConnection(Role.SERVER)
    client.initiate("h")
    early = bytes([0x81, 0x80 | 5]) + b"\0\0\0\0" + b"early"
    (request,) = server.receive_data(client.data_to_send() + early, 0.0)
    assert isinstance(request, Request)
    assert server.accept(now=0.0) == [
        Accepted(subprotocol=None, extra_headers=[]),
        Message(data="early"),
    ]


@pytest.mark.parametrize("split", [3, 6, 11])
def test_frames_that_arrive_before_accept_are_kept(split: int) -> None:
    # Regression: a read between the Request and accept() went to wsproto, which
    # dropped it: a whole message was lost, or a partial frame misaligned the stream.
    client = HeartbeatConnection(Role.CLIENT)
    server = HeartbeatConnection(Role.SERVER)
    client.initiate("h")
    server.receive_data(client.data_to_send(), 0.0)
    text = bytes([0x81, 0x80 | 5]) + b"\0\0\0\0" + b"hello"
    assert server.receive_data(text[:split], 0.1) == []
    accepted, *events = server.accept(now=0.2)
    assert accepted == Accepted(subprotocol=None, extra_headers=[])
    if split == len(text):
        assert events == [Message(data="hello")]
    assert events + server.receive_data(text[split:], 0.3) == [Message(data="hello")]
    ping = bytes([0x89, 0x80 | 1]) + b"\0\0\0\0" + b"p"
    assert server.receive_data(ping, 0.4) == []
    assert server.data_to_send().endswith(b"\x8a\x01p")


def _data(opcode: int, fin: bool) -> bytes:
    return wsframes.frame(opcode, b"xy", fin=fin)


def test_fragments_are_counted_per_message_across_feeds() -> None:
    # max_fragments=3: a message of 3 frames passes, with pings between its
    # fragments and every header cut; the third non-final frame of one is refused.
    ping = wsframes.frame(wsframes.PING, b"p")
    three = _data(wsframes.TEXT, False) + ping + _data(wsframes.CONT, False) + ping
    three += _data(wsframes.CONT, True)
    stream = three + three
    for cut in range(1, len(stream)):
        tracker = FrameBoundary(3)
        assert tracker.feed(stream[:cut]) and tracker.feed(stream[cut:])
        assert tracker.between_frames
    refused = _data(wsframes.BINARY, False) + _data(wsframes.CONT, False) * 2
    tracker = FrameBoundary(3)
    assert tracker.feed(three + refused[:-7]) is True  # (the last header is incomplete)
    assert tracker.feed(refused[-7:]) is False


def test_a_message_refused_by_the_count_is_never_parsed() -> None:
    server = HeartbeatConnection(Role.SERVER, max_fragments=2)
    client = HeartbeatConnection(Role.CLIENT)
    client.initiate("h")
    server.receive_data(client.data_to_send(), 0.0)
    server.accept(now=0.0)
    server.data_to_send()
    events = server.receive_data(
        wsframes.frame(wsframes.PING, b"p") + _data(wsframes.BINARY, False) * 3, 0.0
    )
    # Refused before wsproto saw the read: not even the ping before it is answered.
    assert [type(e).__name__ for e in events] == ["Closing", "CloseTransport"]
    assert server.data_to_send() == b"\x88\x1f\x03\xf1message in too many fragments"
