"""``python -m heartbeat_cli``: the ``heartbeat`` command (see :mod:`heartbeat_cli.app`)."""

from __future__ import annotations

import sys

from heartbeat_cli.app import main

__all__: list[str] = []

if __name__ == "__main__":
    sys.exit(main())
