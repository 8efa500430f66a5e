"""TCP keepalive for asyncio sockets: apply :class:`heartbeat_core.tcp.TcpKeepalive`.

Off by default. Kernel keepalive is a belt-and-braces setting under the
WebSocket heartbeat: it notices a vanished peer on an idle connection even if
the heartbeat interval is long, and ``user_timeout`` bounds how long written
data may stay unacknowledged. Options the platform lacks are skipped.
"""

from __future__ import annotations

import logging
import socket
from typing import Any

from heartbeat_core.tcp import TcpKeepalive

__all__ = ["TcpKeepalive", "apply_keepalive"]

logger = logging.getLogger("heartbeat_asyncio")


def apply_keepalive(sock: Any, keepalive: TcpKeepalive) -> list[str]:
    """Set ``keepalive``'s options on ``sock`` (a socket or asyncio's ``TransportSocket``).

    Returns the names of the options that were set; those the platform does not
    have are skipped (logged at debug level).
    """
    applied: list[str] = []
    for level_name, option_name, value in keepalive.socket_options():
        level = getattr(socket, level_name, None)
        option = getattr(socket, option_name, None)
        if level is None or option is None:
            logger.debug("TCP keepalive: %s is not available here; skipped", option_name)
            continue
        sock.setsockopt(level, option, value)
        applied.append(option_name)
    return applied
