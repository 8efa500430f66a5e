"""Hand-made WebSocket bytes for the fault tests: frames (valid or deliberately broken),
upgrade requests and responses, and a small parser for what our side sends back.

Nothing here uses wsproto: the point is to produce bytes a real library would never
produce, and to check ours with an independent reader.
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
    "SENDABLE_CODES",
    "Frame",
    "FrameReader",
    "accept_key",
    "apply_mask",
    "close_payload",
    "frame",
    "legal_sent_code",
    "upgrade_request",
    "upgrade_response",
]

CONT, TEXT, BINARY, CLOSE, PING, PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA

# Codes an endpoint may put in a close frame (RFC 6455 7.4.1 / 7.4.2, IANA registry).
SENDABLE_CODES = frozenset({1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014})

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
FIXED_KEY = base64.b64encode(b"heartbeat-faults").decode()  # 16 bytes -> a valid key


def legal_sent_code(code: int) -> bool:
    return code in SENDABLE_CODES or 3000 <= code <= 4999


def accept_key(key: str | bytes) -> str:
    raw = key.encode() if isinstance(key, str) else key
    return base64.b64encode(hashlib.sha1(raw + _GUID).digest()).decode()


def frame(
    opcode: int,
    payload: bytes = b"",
    *,
    fin: bool = True,
    rsv: int = 0,
    mask: bytes | None = b"\x11\x22\x33\x44",
    length: int | None = None,
) -> bytes:
    """One frame. ``mask=None`` sends it unmasked (server style). ``length``
    overrides the announced payload length (to lie about it)."""
    n = len(payload) if length is None else length
    first = (0x80 if fin else 0) | ((rsv & 0x7) << 4) | (opcode & 0xF)
    mbit = 0x80 if mask is not None else 0
    if n < 126:
        head = struct.pack("!BB", first, mbit | n)
    elif n < 1 << 16:
        head = struct.pack("!BBH", first, mbit | 126, n)
    else:
        head = struct.pack("!BBQ", first, mbit | 127, n)
    if mask is None:
        return head + payload
    return head + mask + apply_mask(payload, mask)


def apply_mask(payload: bytes, key: bytes) -> bytes:
    """XOR with the repeated 4-byte key (fast enough for megabytes)."""
    n = len(payload)
    if not n or key == b"\0\0\0\0":
        return payload
    stream = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(stream, "big")).to_bytes(n, "big")


def close_payload(code: int | None = 1000, reason: str | bytes = b"") -> bytes:
    if code is None:
        return b""
    raw = reason.encode() if isinstance(reason, str) else reason
    return struct.pack("!H", code) + raw


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


@dataclass(frozen=True)
class Frame:
    fin: bool
    rsv: int
    opcode: int
    masked: bool
    payload: bytes

    @property
    def close_code(self) -> int | None:
        if self.opcode != CLOSE or len(self.payload) < 2:
            return None
        return int(struct.unpack("!H", self.payload[:2])[0])

    @property
    def close_reason(self) -> bytes:
        return self.payload[2:]


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
        buf = self._buf
        if len(buf) < 2:
            return None
        b0, b1 = buf[0], buf[1]
        masked = bool(b1 & 0x80)
        n = b1 & 0x7F
        pos = 2
        if n == 126:
            if len(buf) < 4:
                return None
            n = struct.unpack_from("!H", buf, 2)[0]
            pos = 4
        elif n == 127:
            if len(buf) < 10:
                return None
            n = struct.unpack_from("!Q", buf, 2)[0]
            pos = 10
        if n > self.max_payload:
            raise ValueError(f"frame of {n} bytes")
        key = b""
        if masked:
            if len(buf) < pos + 4:
                return None
            key = bytes(buf[pos : pos + 4])
            pos += 4
        if len(buf) < pos + n:
            return None
        payload = bytes(buf[pos : pos + n])
        if masked:
            payload = apply_mask(payload, key)
        del buf[: pos + n]
        f = Frame(bool(b0 & 0x80), (b0 >> 4) & 7, b0 & 0xF, masked, payload)
        if masked != self.expect_masked:
            raise ValueError(f"masking wrong: {f}")
        if f.rsv:
            raise ValueError(f"RSV bits set: {f}")
        if f.opcode not in (CONT, TEXT, BINARY, CLOSE, PING, PONG):
            raise ValueError(f"bad opcode: {f}")
        if f.opcode >= 8:
            if len(payload) > 125 or not f.fin:
                raise ValueError(f"bad control frame: {f}")
            if f.opcode == CLOSE:
                if len(payload) == 1:
                    raise ValueError("close payload of 1 byte")
                code = f.close_code
                if code is not None and not legal_sent_code(code):
                    raise ValueError(f"illegal close code sent: {code}")
                f.close_reason.decode("utf-8")  # raises on invalid UTF-8
        return f
