"""Helpers for the threading adapter's tests: a timing slack, and a blocking frame reader
for raw sockets (the raw peers themselves are in ``tests.support.peers``)."""

from __future__ import annotations

import socket

from tests.support.frames import take_frame

__all__ = ["SLACK", "read_frame"]

#: Generous slack for timing bounds: other people's tests share these 2 cores.
SLACK = 1.0


def read_frame(sock: socket.socket, buf: bytearray) -> tuple[int, bytes]:
    """Read one frame from ``sock``: ``(opcode, payload)``. ``buf`` keeps leftovers."""
    while (f := take_frame(buf)) is None:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("EOF while reading a frame")
        buf.extend(chunk)
    return f.opcode, f.payload
