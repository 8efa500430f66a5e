"""heartbeat_cli: the ``heartbeat`` command and the live dashboard, an application of
heartbeat-core on the asyncio driver.

``heartbeat serve`` (an echo server with supervised connections and the dashboard),
``heartbeat ping URL`` and ``heartbeat demo``; ``python -m heartbeat_cli`` is the same
command. :mod:`heartbeat_cli.registry` (what the dashboard shows) uses no asyncio and
can be fed from either driver; :mod:`heartbeat_cli.dashboard` serves it with
:func:`heartbeat_asyncio.serve`.
"""

from __future__ import annotations

from collections.abc import Sequence

from heartbeat_core import __version__

__all__ = ["__version__", "main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``heartbeat`` command (see :func:`heartbeat_cli.app.main`); returns the exit
    status."""
    # Imported here, so that importing heartbeat_cli.registry does not load asyncio.
    from heartbeat_cli.app import main as run

    return run(argv)
