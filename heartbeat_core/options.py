"""A connection's options, validated once for every driver.

``serve()`` and ``connect()`` in both drivers take the same options; they build a
:class:`ConnectionOptions` first, so a bad value is a
:class:`~heartbeat_core.errors.ConfigError` from the call that was given it, before
anything listens or connects, never a failure of some later connection.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from heartbeat_core.codec import JSON_CODEC, AppCodec
from heartbeat_core.config import DEFAULT_MAX_QUEUE, DEFAULT_MAX_QUEUE_BYTES, HeartbeatConfig
from heartbeat_core.connection import HeartbeatConnection, Role
from heartbeat_core.errors import ConfigError
from heartbeat_core.queue import ReceiveQueue
from heartbeat_core.randomness import RandomSource
from heartbeat_core.tcp import TcpKeepalive

__all__ = ["DEFAULT_MAX_SIZE", "DEFAULT_OPEN_TIMEOUT", "ConnectionOptions"]

#: The largest message a connection takes by default (1 MiB).
DEFAULT_MAX_SIZE = 1 << 20
#: The opening handshake's bound by default, in seconds.
DEFAULT_OPEN_TIMEOUT = 10.0


@dataclass(frozen=True, slots=True, kw_only=True)
class ConnectionOptions:
    """Everything a driver needs to make a connection's core and receive queue."""

    #: The heartbeat's timing rules (``None``: the defaults).
    config: HeartbeatConfig | None = None
    #: The application-level heartbeat format.
    codec: AppCodec = JSON_CODEC
    #: The largest incoming message (``None``: unbounded); larger ones close with 1009.
    max_size: int | None = DEFAULT_MAX_SIZE
    #: Unread messages before reading pauses (see :class:`ReceiveQueue`).
    max_queue: int = DEFAULT_MAX_QUEUE
    #: Unread message bytes before reading pauses.
    max_queue_bytes: int = DEFAULT_MAX_QUEUE_BYTES
    #: The bound on the opening handshake (rule ``open-timeout``).
    open_timeout: float = DEFAULT_OPEN_TIMEOUT
    #: TCP keepalive for the connection's socket (``None``: off).
    keepalive: TcpKeepalive | None = None

    def __post_init__(self) -> None:
        if self.config is None:
            object.__setattr__(self, "config", HeartbeatConfig())
        elif not isinstance(self.config, HeartbeatConfig):
            raise ConfigError(f"config must be a HeartbeatConfig or None, got {self.config!r}")
        if not isinstance(self.codec, AppCodec):
            raise ConfigError(f"codec must be an AppCodec, got {self.codec!r}")
        size = self.max_size
        if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 1):
            raise ConfigError(f"max_size must be a positive int or None, got {size!r}")
        timeout = self.open_timeout
        if (
            isinstance(timeout, bool)
            or not isinstance(timeout, (int, float))
            or not (math.isfinite(timeout) and timeout > 0)
        ):
            raise ConfigError(
                f"open_timeout must be a finite number of seconds > 0, got {timeout!r}"
            )
        if self.keepalive is not None and not isinstance(self.keepalive, TcpKeepalive):
            raise ConfigError(f"keepalive must be a TcpKeepalive or None, got {self.keepalive!r}")
        ReceiveQueue(self.max_queue, self.max_queue_bytes)  # validates both bounds

    def new_core(self, role: Role, *, random: RandomSource | None = None) -> HeartbeatConnection:
        """A fresh sans-IO connection with these options."""
        return HeartbeatConnection(
            role,
            self.config,
            codec=self.codec,
            max_message_size=self.max_size,
            random=random,
            open_timeout=self.open_timeout,
        )

    def new_queue(self) -> ReceiveQueue:
        """A fresh receive queue with these bounds."""
        return ReceiveQueue(self.max_queue, self.max_queue_bytes)
