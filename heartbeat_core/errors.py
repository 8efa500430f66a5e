"""The exception hierarchy of heartbeat-core.

Every exception the library raises on purpose derives from :class:`HeartbeatError`:

.. tested: errors-tree

.. code-block:: text

    HeartbeatError
    ├── ConfigError (also a ValueError)    bad configuration, raised at construction
    ├── LocalProtocolError                 the caller misused the API; nothing changed
    └── ConnectionClosedError              an operation needs an open connection
        └── HandshakeError                 the opening handshake failed
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "ConfigWarning",
    "ConnectionClosedError",
    "HandshakeError",
    "HeartbeatError",
    "LocalProtocolError",
]


class HeartbeatError(Exception):
    """Root of every exception heartbeat-core raises on purpose."""


class ConfigError(HeartbeatError, ValueError):
    """A configuration value is out of range or inconsistent.

    Raised when a configuration object is constructed, never later, so a bad
    setting fails at start-up rather than at the first heartbeat.
    """


class LocalProtocolError(HeartbeatError):
    """The caller broke the API's contract (time ran backwards, an event after
    the end, an operation in the wrong state). The call changed nothing."""


class ConnectionClosedError(HeartbeatError):
    """The operation needs an open connection, and this one is closing or closed.

    ``code`` and ``reason`` are the close code and reason of the connection
    (1006 and an empty reason when no close frame was exchanged).
    """

    def __init__(self, message: str, code: int = 1006, reason: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason


class HandshakeError(ConnectionClosedError):
    """The WebSocket opening handshake failed (refused, wrong status, bad response).

    ``status`` is the HTTP status the server answered with, or ``None`` when no
    HTTP response was received.
    """

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class ConfigWarning(UserWarning):
    """A configuration is legal but risky (see :meth:`HeartbeatConfig.findings`)."""
