"""TCP keepalive: apply a :class:`~heartbeat_core.tcp.TcpKeepalive` to a socket.

Off by default; a belt-and-braces setting under the WebSocket heartbeat (the kernel
probes an idle connection and gives up after ``count`` unanswered probes).
"""

from __future__ import annotations

import logging
import socket

from heartbeat_core.tcp import TcpKeepalive

__all__ = ["TcpKeepalive", "apply_keepalive"]

log = logging.getLogger("heartbeat_threading")


def apply_keepalive(sock: socket.socket, keepalive: TcpKeepalive) -> list[str]:
    """Set the options ``keepalive`` names that this platform has; return their names."""
    applied = []
    for level_name, option_name, value in keepalive.socket_options():
        level = getattr(socket, level_name, None)
        option = getattr(socket, option_name, None)
        if level is None or option is None:
            log.debug("TCP keepalive: %s is not available on this platform", option_name)
            continue
        sock.setsockopt(level, option, value)
        applied.append(option_name)
    return applied
