"""TCP keepalive settings: a belt-and-braces option below the WebSocket heartbeat.

:class:`TcpKeepalive` is pure data: :meth:`TcpKeepalive.socket_options` names
the options to set. :func:`apply_keepalive` sets them on a socket the driver
owns: it resolves the names on the platform's ``socket`` module (the one place
the core touches ``socket``, for its constants; it does no I/O), skips those
the platform lacks, and calls ``setsockopt``. :func:`check_reuse_port` is the
rule both drivers' ``serve(reuse_port=...)`` follow.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Protocol

from heartbeat_core.errors import ConfigError

__all__ = ["SupportsSetsockopt", "TcpKeepalive", "apply_keepalive", "check_reuse_port"]

logger: logging.Logger = logging.getLogger("heartbeat_core")


class SupportsSetsockopt(Protocol):
    """What :func:`apply_keepalive` needs: a ``socket.socket``, or asyncio's
    ``TransportSocket`` (``transport.get_extra_info("socket")``)."""

    def setsockopt(self, level: int, option: int, value: int, /) -> None:
        """Set a socket option (as ``socket.socket.setsockopt``)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class TcpKeepalive:
    """Kernel keepalive probes: the first after ``idle`` s of silence, then every
    ``interval`` s, giving up after ``count`` unanswered probes. ``user_timeout``
    (Linux ``TCP_USER_TIMEOUT``) bounds how long sent data may stay unacknowledged."""

    idle: float = 30.0
    interval: float = 10.0
    count: int = 3
    user_timeout: float | None = None

    def __post_init__(self) -> None:
        for name in ("idle", "interval"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 1):
                raise ConfigError(f"TcpKeepalive.{name} must be >= 1 second, got {value!r}")
        if isinstance(self.count, bool) or not isinstance(self.count, int) or self.count < 1:
            raise ConfigError(f"TcpKeepalive.count must be an int >= 1, got {self.count!r}")
        if self.user_timeout is not None and not (
            isinstance(self.user_timeout, (int, float))
            and math.isfinite(self.user_timeout)
            and self.user_timeout > 0
        ):
            raise ConfigError(
                f"TcpKeepalive.user_timeout must be > 0 seconds or None, got {self.user_timeout!r}"
            )

    def socket_options(self) -> list[tuple[str, str, int]]:
        """``(level name, option name, value)`` for ``setsockopt``, by ``socket`` attribute name."""
        options = [
            ("SOL_SOCKET", "SO_KEEPALIVE", 1),
            ("IPPROTO_TCP", "TCP_KEEPIDLE", max(1, round(self.idle))),
            ("IPPROTO_TCP", "TCP_KEEPINTVL", max(1, round(self.interval))),
            ("IPPROTO_TCP", "TCP_KEEPCNT", self.count),
        ]
        if self.user_timeout is not None:
            options.append(
                ("IPPROTO_TCP", "TCP_USER_TIMEOUT", max(1, round(self.user_timeout * 1000)))
            )
        return options


def apply_keepalive(sock: SupportsSetsockopt, keepalive: TcpKeepalive) -> list[str]:
    """Set ``keepalive``'s options on ``sock``; return the names of those set.

    Options this platform's ``socket`` module lacks (e.g. ``TCP_USER_TIMEOUT``
    outside Linux) are skipped and logged at debug level on the
    ``heartbeat_core`` logger. Raises what ``sock.setsockopt``
    raises (``OSError``, e.g. on a closed socket); options set before the
    failure stay set.
    """
    import socket

    applied: list[str] = []
    for level_name, option_name, value in keepalive.socket_options():
        level = getattr(socket, level_name, None)
        option = getattr(socket, option_name, None)
        if level is None or option is None:
            logger.debug(
                "TCP keepalive: %s is not available on this platform; skipped", option_name
            )
            continue
        sock.setsockopt(level, option, value)
        applied.append(option_name)
    return applied


def check_reuse_port(reuse_port: object, *, available: bool) -> bool:
    """``serve(reuse_port=...)``: whether to set ``SO_REUSEPORT`` on the listening sockets.

    With it, several processes (or servers) may listen on the same address and port,
    and the kernel spreads new connections among them. ``available`` says whether the
    platform's ``socket`` module has ``SO_REUSEPORT`` (the driver looks). Raises
    :class:`~heartbeat_core.errors.ConfigError` when ``reuse_port`` is not a bool, or
    is true where the platform has no ``SO_REUSEPORT`` (e.g. Windows).
    """
    if not isinstance(reuse_port, bool):
        raise ConfigError(f"reuse_port must be True or False, got {reuse_port!r}")
    if reuse_port and not available:
        raise ConfigError(
            "reuse_port=True needs SO_REUSEPORT, which this platform does not have; "
            "run one server process per port instead"
        )
    return reuse_port
