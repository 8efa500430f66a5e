"""Hand-made WebSocket bytes: frames (valid or deliberately broken), close payloads,
upgrade requests and responses, and an independent parser for what our side sends.

Nothing here uses wsproto: the point is to produce bytes a real library would never
produce, and to check ours with a reader that shares no code with the library.

Building: ``frame`` (masked by default, as a client sends; ``mask=None`` as a server
sends), ``frame_header`` (a header alone, for payloads sent separately), ``close_frame``
and ``close_payload``. ``ZERO_MASK`` is a real mask key that leaves the payload readable
on the wire. Parsing: ``parse_frames`` (every complete frame in some bytes, lenient),
``take_frame`` (the first frame off a buffer), ``frame_size`` (how many bytes the first
frame needs, to read exactly one from a stream) and ``FrameReader`` (incremental, and
strict: it rejects whatever RFC 6455 forbids a sender).
"""

from __future__ import annotations

import base64
import hashlib
import struct
from dataclasses import dataclass

__all__ = [
    "CONT",
    "TEXT",
    "BINARY",
    "CLOSE",
    "PING",
    "PONG",
    "MASK",
    "ZERO_MASK",
    "SENDABLE_CODES",
    "FIXED_KEY",
    "Frame",
    "FrameReader",
    "accept_key",
    "apply_mask",
    "close_frame",
    "close_payload",
    "frame",
    "frame_header",
    "frame_size",
    "legal_sent_code",
    "parse_frames",
    "take_frame",
    "upgrade_request",
    "upgrade_response",
    "websocket_key",
]

CONT, TEXT, BINARY, CLOSE, PING, PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA

#: The mask key ``frame`` uses unless told otherwise (any key will do: peers unmask).
MASK = b"\x11\x22\x33\x44"
#: A mask key of zeros: the frame is masked, and its payload is sent as is.
ZERO_MASK = b"\0\0\0\0"

# Codes an endpoint may put in a close frame (RFC 6455 7.4.1 / 7.4.2, IANA registry).
SENDABLE_CODES = frozenset({1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014})

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
FIXED_KEY = base64.b64encode(b"heartbeat-faults").decode()  # 16 bytes -> a valid key


def legal_sent_code(code: int) -> bool:
    return code in SENDABLE_CODES or 3000 <= code <= 4999


# ---------------------------------------------------------------- the opening handshake


def accept_key(key: str | bytes) -> str:
    """The ``Sec-WebSocket-Accept`` value for the client's ``Sec-WebSocket-Key``."""
    raw = key.encode() if isinstance(key, str) else key
    return base64.b64encode(hashlib.sha1(raw + _GUID).digest()).decode()


def upgrade_request(
    host: str = "127.0.0.1", target: str = "/", key: str = FIXED_KEY, extra: str = ""
) -> bytes:
    return (
        f"GET {target} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
        f"Sec-WebSocket-Version: 13\r\n{extra}\r\n"
    ).encode()


def upgrade_response(key: str | bytes) -> bytes:
    return (
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Accept: {accept_key(key)}\r\n\r\n"
    ).encode()


def websocket_key(head: bytes) -> bytes:
    """The ``Sec-WebSocket-Key`` of a request head (``b""`` when there is none)."""
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"sec-websocket-key":
            return value.strip()
    return b""


# ---------------------------------------------------------------- building frames


def frame_header(
    opcode: int, length: int, *, fin: bool = True, rsv: int = 0, mask: bytes | None = None
) -> bytes:
    """The header of a frame announcing ``length`` payload bytes, with ``mask`` (the key)
    at its end when given. Unmasked by default; with ``mask=ZERO_MASK`` the payload can
    follow as is."""
    first = (0x80 if fin else 0) | ((rsv & 0x7) << 4) | (opcode & 0xF)
    mbit = 0x80 if mask is not None else 0
    if length < 126:
        head = struct.pack("!BB", first, mbit | length)
    elif length < 1 << 16:
        head = struct.pack("!BBH", first, mbit | 126, length)
    else:
        head = struct.pack("!BBQ", first, mbit | 127, length)
    return head if mask is None else head + mask


def frame(
    opcode: int,
    payload: bytes = b"",
    *,
    fin: bool = True,
    rsv: int = 0,
    mask: bytes | None = MASK,
    length: int | None = None,
) -> bytes:
    """One frame, masked with ``mask`` (as a client sends); ``mask=None`` sends it unmasked
    (as a server sends). ``length`` overrides the announced payload length (to lie about
    it, or to send the payload separately)."""
    n = len(payload) if length is None else length
    head = frame_header(opcode, n, fin=fin, rsv=rsv, mask=mask)
    return head + (payload if mask is None else apply_mask(payload, mask))


def close_frame(
    code: int | None = 1000, reason: str | bytes = b"", *, mask: bytes | None = MASK
) -> bytes:
    """A close frame with ``close_payload(code, reason)``, masked like ``frame``."""
    return frame(CLOSE, close_payload(code, reason), mask=mask)


def apply_mask(payload: bytes, key: bytes) -> bytes:
    """XOR with the repeated 4-byte key (fast enough for megabytes)."""
    n = len(payload)
    if not n or key == ZERO_MASK:
        return payload
    stream = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(stream, "big")).to_bytes(n, "big")


def close_payload(code: int | None = 1000, reason: str | bytes = b"") -> bytes:
    """The payload of a close frame: the code (none for ``None``), then the reason."""
    if code is None:
        return b""
    raw = reason.encode() if isinstance(reason, str) else reason
    return struct.pack("!H", code) + raw


# ---------------------------------------------------------------- parsing frames


@dataclass(frozen=True)
class Frame:
    fin: bool
    rsv: int
    opcode: int
    masked: bool
    payload: bytes  # unmasked

    @property
    def close_code(self) -> int | None:
        if self.opcode != CLOSE or len(self.payload) < 2:
            return None
        return int(struct.unpack("!H", self.payload[:2])[0])

    @property
    def close_reason(self) -> bytes:
        return self.payload[2:]


def _header(data: bytes | bytearray) -> tuple[int, int] | None:
    """``(payload length, header size with the mask key)`` of the frame at the start of
    ``data``, once its length field is complete."""
    if len(data) < 2:
        return None
    n, pos = data[1] & 0x7F, 2
    if n == 126:
        if len(data) < 4:
            return None
        n, pos = struct.unpack_from("!H", data, 2)[0], 4
    elif n == 127:
        if len(data) < 10:
            return None
        n, pos = struct.unpack_from("!Q", data, 2)[0], 10
    return int(n), pos + (4 if data[1] & 0x80 else 0)


def frame_size(data: bytes | bytearray) -> int:
    """How many bytes the frame at the start of ``data`` takes, header and payload, as far
    as ``data`` tells: while its length field is incomplete, the bytes needed to read it.
    Reading until ``len(data) >= frame_size(data)`` reads exactly one frame."""
    header = _header(data)
    if header is None:
        return 2 if len(data) < 2 else {126: 4, 127: 10}[data[1] & 0x7F]
    n, pos = header
    return pos + n


def take_frame(buf: bytearray, max_payload: int | None = None) -> Frame | None:
    """Remove the first frame from ``buf`` and return it, masked or not (``None`` while it
    is incomplete); ``ValueError`` as soon as it announces more than ``max_payload``
    bytes."""
    header = _header(buf)
    if header is None:
        return None
    n, pos = header
    if max_payload is not None and n > max_payload:
        raise ValueError(f"frame of {n} bytes")
    if len(buf) < pos + n:
        return None
    b0, b1 = buf[0], buf[1]
    masked = bool(b1 & 0x80)
    payload = bytes(buf[pos : pos + n])
    if masked:
        payload = apply_mask(payload, bytes(buf[pos - 4 : pos]))
    del buf[: pos + n]
    return Frame(bool(b0 & 0x80), (b0 >> 4) & 7, b0 & 0xF, masked, payload)


def parse_frames(data: bytes, *, complete: bool = False) -> list[Frame]:
    """Every complete frame in ``data``, masked or not. A partial frame at the end is
    ignored, or with ``complete=True`` a ``ValueError``. Lenient otherwise: nothing
    checks what the frames contain (``FrameReader`` does)."""
    buf = bytearray(data)
    frames = []
    while (f := take_frame(buf)) is not None:
        frames.append(f)
    if complete and buf:
        raise ValueError(f"{len(buf)} bytes of a partial frame at the end: {bytes(buf[:20])!r}")
    return frames


class FrameReader:
    """Incremental parser of frames (either direction). Raises ValueError on
    anything RFC 6455 forbids a sender to produce."""

    def __init__(self, *, expect_masked: bool, max_payload: int = 1 << 26) -> None:
        self.expect_masked = expect_masked
        self.max_payload = max_payload
        self._buf = bytearray()

    @property
    def pending(self) -> int:
        return len(self._buf)

    def feed(self, data: bytes) -> list[Frame]:
        self._buf += data
        out: list[Frame] = []
        while True:
            f = self._next()
            if f is None:
                return out
            out.append(f)

    def _next(self) -> Frame | None:
        f = take_frame(self._buf, self.max_payload)
        if f is None:
            return None
        if f.masked != self.expect_masked:
            raise ValueError(f"masking wrong: {f}")
        if f.rsv:
            raise ValueError(f"RSV bits set: {f}")
        if f.opcode not in (CONT, TEXT, BINARY, CLOSE, PING, PONG):
            raise ValueError(f"bad opcode: {f}")
        if f.opcode >= 8:
            if len(f.payload) > 125 or not f.fin:
                raise ValueError(f"bad control frame: {f}")
            if f.opcode == CLOSE:
                if len(f.payload) == 1:
                    raise ValueError("close payload of 1 byte")
                code = f.close_code
                if code is not None and not legal_sent_code(code):
                    raise ValueError(f"illegal close code sent: {code}")
                f.close_reason.decode("utf-8")  # raises on invalid UTF-8
        return f
