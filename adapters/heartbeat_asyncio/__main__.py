"""``python -m heartbeat_asyncio``: the ``heartbeat`` command (see :mod:`heartbeat_asyncio.cli`)."""

from __future__ import annotations

import sys

from heartbeat_asyncio.cli import main

__all__: list[str] = []

if __name__ == "__main__":
    sys.exit(main())
