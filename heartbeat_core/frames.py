"""Just enough of RFC 6455 framing for the heartbeat's hot path.

A server spends most of its heartbeat time parsing one tiny masked pong per
connection per interval and building one ping, and a busy one parsing short
messages. wsproto does all of it correctly but generally; here it is done
directly for the common shape: reads of well-formed pings, pongs and whole
short messages (any number of them, the last perhaps cut by the read and
completed by the next), arriving while wsproto sits between frames and
messages. Anything else goes to wsproto untouched.

:class:`FrameBoundary` follows frame boundaries in the bytes handed to
wsproto (headers only; payloads are skipped by length), so the connection
knows when wsproto holds no partial frame, and counts the frames of the data
message in progress, so that a message in too many frames is refused before
wsproto parses any of them.
"""

from __future__ import annotations

__all__ = [
    "MAX_FRAGMENTS",
    "OP_BINARY",
    "OP_PING",
    "OP_PONG",
    "OP_TEXT",
    "MAX_SIMPLE_RUN",
    "FrameBoundary",
    "server_data_frame",
    "server_frame",
    "simple_prefix",
    "unmask",
    "unmask_frame",
]

OP_TEXT = 0x1
OP_BINARY = 0x2
OP_PING = 0x9
OP_PONG = 0xA

#: The most frames a message may come in by default: each costs a parse, and a peer that
#: splits a message into thousands of tiny frames would make us pay for every one.
MAX_FRAGMENTS = 1024

#: The most frames simple_prefix() takes in one call. A connection carries out one run
#: before it parses the next, so a flood the state fails (rule peer-ping) costs one run's
#: parse, not the whole read's.
MAX_SIMPLE_RUN = 256

# First header bytes of the frames simple_prefix() takes: FIN set, no reserved bits.
_SIMPLE_HEADS = frozenset({0x80 | OP_TEXT, 0x80 | OP_BINARY, 0x80 | OP_PING, 0x80 | OP_PONG})


def server_frame(opcode: int, payload: bytes) -> bytes:
    """An unmasked (server-to-client) control frame; ``payload`` is at most 125 bytes."""
    return bytes((0x80 | opcode, len(payload))) + payload


# Headers of unmasked, unfragmented data frames with a 7-bit length, by opcode and length.
_DATA_HEADS = {
    opcode: tuple(bytes((0x80 | opcode, n)) for n in range(126)) for opcode in (OP_TEXT, OP_BINARY)
}


def server_data_frame(opcode: int, payload: bytes) -> bytes:
    """An unmasked (server-to-client), unfragmented text or binary frame: what wsproto's
    server sends for a whole message, built without it. ``opcode`` is :data:`OP_TEXT`
    (``payload`` already UTF-8) or :data:`OP_BINARY`."""
    length = len(payload)
    if length < 126:
        return _DATA_HEADS[opcode][length] + payload
    if length < 65536:
        return bytes((0x80 | opcode, 126)) + length.to_bytes(2, "big") + payload
    return bytes((0x80 | opcode, 127)) + length.to_bytes(8, "big") + payload


def simple_prefix(
    data: bytes, masked: bool, start: int = 0, limit: int = MAX_SIMPLE_RUN
) -> tuple[list[tuple[int, bytes]], int, bool]:
    """The simple frames that ``data[start:]`` begins with, at most ``limit`` of them:
    ``(frames, used, more)``.

    A simple frame has FIN set, no reserved bits and masking as required, and is a
    ping or pong (payload <= 125 bytes) or a whole text or binary message (payload
    < 64 KiB); ``frames`` are their ``(opcode, payload)``, unmasked, text undecoded,
    and they fill ``data[start:used]``. At ``used``, ``data`` ends, the ``limit``-th
    frame ended (``more`` false: call again from ``used``), or something else
    begins: when ``more`` is true, the start of a frame that may yet prove simple
    (an incomplete header, or a simple frame's incomplete payload: at most 64 KiB
    and its header), which the caller may keep until the next read completes it;
    when false, a frame wsproto must parse (a fragment, a close frame, a longer
    payload, a 64-bit length, a length not in its shortest encoding)."""
    end = len(data)
    if masked and end >= 6 and not start:
        first, length = data[0], data[1] - 0x80
        if length == end - 6 and length <= 125 and first in _SIMPLE_HEADS:
            # The common read: exactly one short masked frame (length >= 0: mask bit set).
            return [(first & 0x0F, unmask_frame(data, length))], end, False
    frames: list[tuple[int, bytes]] = []
    pos = start
    key_size = 4 if masked else 0
    while pos < end and len(frames) < limit:
        first = data[pos]
        if first not in _SIMPLE_HEADS:
            return frames, pos, False
        if end - pos < 2:
            return frames, pos, True
        second = data[pos + 1]
        if (second >> 7) != masked:
            return frames, pos, False
        length = second & 0x7F
        at = pos + 2
        if length > 125:
            if length == 127 or first & 0x08:  # a 64-bit length, or a long control frame
                return frames, pos, False
            if at + 2 > end:
                return frames, pos, True
            length = int.from_bytes(data[at : at + 2], "big")
            if length < 126:  # (RFC 6455 5.2: the shortest length encoding)
                return frames, pos, False
            at += 2
        start = at + key_size
        stop = start + length
        if stop > end:
            return frames, pos, True
        payload = unmask(data, at, length) if masked else bytes(data[start:stop])
        frames.append((first & 0x0F, payload))
        pos = stop
    return frames, pos, False


# Multiplying a 4-byte masking key by _REPEAT[n] repeats it over n bytes (and up to 4 more).
_REPEAT = tuple(sum(1 << (32 * i) for i in range(n // 4 + 1)) for n in range(126))


def unmask_frame(data: bytes, length: int) -> bytes:
    """The payload of a masked frame with a 7-bit length (``length`` <= 125) that is
    all of ``data``: ``unmask(data, 2, length)``, computed on one integer (an idle
    connection's pong, a busy one's small message: a third cheaper)."""
    x = int.from_bytes(data, "little") >> 16  # the key, then the payload
    return ((x >> 32) ^ (x & 0xFFFFFFFF) * _REPEAT[length]).to_bytes(length + 4, "little")[:length]


def unmask(data: bytes, key_at: int, length: int) -> bytes:
    """The ``length`` payload bytes after the 4-byte masking key at ``key_at``, unmasked."""
    start = key_at + 4
    if length <= 4:  # the key needs no repeating (a heartbeat pong's payload is short)
        key = data[key_at : key_at + length]
    else:
        key = (data[key_at:start] * (length // 4 + 1))[:length]
    masked = int.from_bytes(data[start : start + length], "little")
    return (masked ^ int.from_bytes(key, "little")).to_bytes(length, "little")


class FrameBoundary:
    """Tracks whether a byte stream fed to :meth:`feed` ends between two frames, and
    how many frames the data message in progress has had."""

    __slots__ = ("_fragments", "_head", "_skip", "max_fragments")

    def __init__(self, max_fragments: int = MAX_FRAGMENTS) -> None:
        self._skip = 0  # payload bytes of the current frame still to come
        self._head = b""  # an incomplete frame header
        self._fragments = 0  # non-final frames of the data message in progress
        #: The most frames a data message may come in.
        self.max_fragments: int = max_fragments

    @property
    def between_frames(self) -> bool:
        return not self._skip and not self._head

    def feed(self, data: bytes) -> bool:
        """Account for ``data``, the next bytes of the stream. False as soon as a data
        message is seen to need more than ``max_fragments`` frames (its last header
        read had FIN clear); the rest of ``data`` is then left unread."""
        skip = self._skip
        if skip >= len(data):
            self._skip = skip - len(data)
            return True
        if self._head:
            data = self._head + data[skip:]
            self._head = b""
            pos = 0
        else:
            pos = skip
        self._skip = 0
        end = len(data)
        while pos < end:
            if end - pos < 2:
                self._head = data[pos:]
                return True
            second = data[pos + 1]
            length = second & 0x7F
            size = 2 + (4 if second & 0x80 else 0)
            if length == 126:
                size += 2
            elif length == 127:
                size += 8
            if end - pos < size:
                self._head = data[pos:]
                return True
            first = data[pos]
            if not first & 0x08:  # a data frame (text, binary, continuation)
                if first & 0x80:
                    self._fragments = 0
                else:
                    self._fragments += 1
                    if self._fragments >= self.max_fragments:
                        return False
            if length == 126:
                length = int.from_bytes(data[pos + 2 : pos + 4], "big")
            elif length == 127:
                length = int.from_bytes(data[pos + 2 : pos + 10], "big")
            pos += size + length
        self._skip = pos - end
        return True
