"""``Transport``: a non-blocking socket on a :class:`Reactor`, asyncio's transport for threads.

It carries bytes and nothing else, on the I/O thread only: it reads into the
reactor's shared buffer and hands each read to its protocol (the connection),
queues writes and flushes them as the socket takes them, pauses and resumes
reading, closes once everything is written, or drops the socket at once. A
server's TLS handshake is stepped here, without blocking the loop. When the
socket is gone, for whatever reason, the protocol hears it exactly once.
"""

from __future__ import annotations

import logging
import selectors
import socket
import ssl
from collections import deque
from typing import Protocol

from heartbeat_core.errors import ConfigError
from heartbeat_threading.reactor import Reactor

__all__ = ["DEFAULT_WRITE_LIMIT", "Transport", "TransportProtocol", "check_write_limit"]

logger: logging.Logger = logging.getLogger("heartbeat_threading")

#: Bytes that may wait to be written before a connection's ``send()`` blocks.
DEFAULT_WRITE_LIMIT = 64 * 1024

_READ, _WRITE = selectors.EVENT_READ, selectors.EVENT_WRITE
_WOULD_BLOCK = (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError, InterruptedError)
_MAX_READS = 16  # reads per readiness event, so one busy peer cannot starve the others


def check_write_limit(write_limit: int) -> int:
    """Raise :class:`ConfigError` unless ``write_limit`` is a positive int."""
    if isinstance(write_limit, bool) or not isinstance(write_limit, int) or write_limit < 1:
        raise ConfigError(
            f"write_limit must be a positive int (bytes), got {write_limit!r}: "
            f"pass e.g. the default {DEFAULT_WRITE_LIMIT}"
        )
    return write_limit


class TransportProtocol(Protocol):
    """What a :class:`Transport` calls, on the I/O thread."""

    def _data_received(self, data: bytes | None) -> None:
        """Bytes read (``None``: end of file; the transport then closes after flushing)."""

    def _written(self, nbytes: int) -> None:
        """``nbytes`` of what :meth:`Transport.write` queued went to the kernel."""

    def _connection_lost(self, error: OSError | None) -> None:
        """The socket is closed (``error``: the read or write that failed, if one did)."""


class _Released:
    """The protocol of a transport whose socket is gone: hears nothing more."""

    def _data_received(self, data: bytes | None) -> None:
        pass

    def _written(self, nbytes: int) -> None:
        pass

    def _connection_lost(self, error: OSError | None) -> None:
        pass

    def __str__(self) -> str:
        return "a released connection"


_RELEASED = _Released()


class Transport:
    """One socket, driven by its reactor's loop. I/O thread only."""

    __slots__ = (
        "_closing",
        "_mask",
        "_protocol",
        "_reactor",
        "_reading",
        "_tls_handshake",
        "_tls_want",
        "_wpos",
        "_wq",
        "sock",
    )

    def __init__(
        self,
        sock: socket.socket,
        reactor: Reactor,
        protocol: TransportProtocol,
        *,
        tls_handshake: bool = False,
    ) -> None:
        #: The socket; ``None`` once it was closed.
        self.sock: socket.socket | None = sock
        self._reactor = reactor
        self._protocol = protocol
        self._tls_handshake = tls_handshake  # a server's TLS handshake is still to be done
        self._tls_want = _READ
        self._reading = True
        self._closing = False
        self._mask = 0
        self._wq: deque[bytes] | None = None  # (made when needed: an idle socket has none)
        self._wpos = 0

    @property
    def reading(self) -> bool:
        """Reading is on (not paused)."""
        return self._reading

    @property
    def is_closing(self) -> bool:
        """:meth:`close` or :meth:`abort` was called, or the socket is gone."""
        return self._closing or self.sock is None

    def start(self) -> None:
        """Watch the socket."""
        self._interest()

    def write(self, data: bytes) -> None:
        sock = self.sock
        if sock is None:
            return
        if self._wq is None and not self._closing:
            # Nothing waits (a heartbeat, mostly): straight to the socket, queue the rest.
            try:
                n = sock.send(data)
            except _WOULD_BLOCK:
                n = 0
            except OSError as exc:
                logger.debug("writing to %s failed: %s", self._protocol, exc)
                self._release(exc)
                return
            if n:
                self._protocol._written(n)
            if n == len(data):
                return
            data = data[n:]
        if self._wq is None:
            self._wq = deque()
        self._wq.append(data)
        self._flush()

    def close(self) -> None:
        """Stop reading; close the socket once everything queued is written."""
        if not self._closing:
            self._closing = True
            self._flush()

    def abort(self) -> None:
        """Close the socket now; what waits to be written is dropped."""
        self._release(None)

    def pause_reading(self) -> None:
        self._reading = False
        self._interest()

    def resume_reading(self) -> None:
        self._reading = True
        self._interest()

    # --------------------------------------------------------------- internal

    def _interest(self) -> None:
        sock = self.sock
        if sock is None:
            return
        if self._tls_handshake:
            mask = self._tls_want
        else:
            mask = _READ if self._reading and not self._closing else 0
            if self._wq:
                mask |= _WRITE
        if mask == self._mask:
            return
        selector = self._reactor.selector
        if self._mask == 0:
            selector.register(sock, mask, self._ready)
        elif mask == 0:
            selector.unregister(sock)
        else:
            selector.modify(sock, mask, self._ready)
        self._mask = mask

    def _ready(self, mask: int) -> None:
        if self._tls_handshake:
            self._tls_step()
            return
        if mask & _WRITE:
            self._flush()
        if mask & _READ:
            self._read()

    def _tls_step(self) -> None:
        sock = self.sock
        assert isinstance(sock, ssl.SSLSocket)
        try:
            sock.do_handshake()
        except ssl.SSLWantReadError:
            self._tls_want = _READ
        except ssl.SSLWantWriteError:
            self._tls_want = _WRITE
        except OSError as exc:  # ssl.SSLError included
            logger.debug("TLS handshake with %s failed: %s", self._protocol, exc)
            self._release(None)
            return
        else:
            self._tls_handshake = False
            self._interest()
            self._read()
            return
        self._interest()

    def _read(self) -> None:
        view = self._reactor.read_view
        for _ in range(_MAX_READS):
            sock = self.sock
            if sock is None or not self._reading or self._closing:
                return
            try:
                n = sock.recv_into(view)
            except _WOULD_BLOCK:
                return
            except OSError as exc:  # reset, TLS alert...: the socket is gone
                logger.debug("reading from %s failed: %s", self._protocol, exc)
                self._release(exc)
                return
            if n == 0:
                self._protocol._data_received(None)
                self.close()  # as asyncio's transports do after an end of file
                return
            self._protocol._data_received(bytes(view[:n]))
            if n < len(view) and not (isinstance(sock, ssl.SSLSocket) and sock.pending()):
                return
        sock = self.sock
        if isinstance(sock, ssl.SSLSocket) and sock.pending():
            self._reactor.call_soon(self._read)  # decrypted bytes select() cannot see

    def _flush(self) -> None:
        wq, sock = self._wq, self.sock
        if sock is None:
            return
        written = 0
        while wq:
            chunk = wq[0]
            try:
                n = sock.send(memoryview(chunk)[self._wpos :])
            except _WOULD_BLOCK:
                break
            except OSError as exc:
                logger.debug("writing to %s failed: %s", self._protocol, exc)
                self._release(exc)
                return
            written += n
            self._wpos += n
            if self._wpos == len(chunk):
                wq.popleft()
                self._wpos = 0
        if written:
            self._protocol._written(written)
        if not wq:
            self._wq = None
            if self._closing:
                self._release(None)
                return
        self._interest()

    def _release(self, error: OSError | None) -> None:
        sock = self.sock
        if sock is None:
            return
        self.sock = None
        if self._mask:
            self._reactor.selector.unregister(sock)
            self._mask = 0
        sock.close()
        self._wq = None
        # Forget the protocol: no cycle keeps a released connection alive until the
        # garbage collector runs (a flood of abandoned handshakes is freed at once).
        protocol, self._protocol = self._protocol, _RELEASED
        protocol._connection_lost(error)
