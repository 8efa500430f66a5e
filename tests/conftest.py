"""Which copy of the packages the tests exercise.

`make test` runs them against the source tree. The version matrix (tools/matrix.py)
runs them against a wheel installed in a fresh venv and sets
``HEARTBEAT_TEST_INSTALLED=1``: then the run stops at once if any package was
imported from anywhere but site-packages, since it would not be testing the wheel.
pytest's header shows where each package came from.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path

import pytest

PACKAGES = ("heartbeat_core", "heartbeat_asyncio", "heartbeat_threading", "heartbeat_cli")

# The public real-socket fixtures (heartbeat_link_proxy, heartbeat_frozen_peer, ...), loaded
# as users load them. (Not by an entry point: a plugin loaded that way would import the
# packages before coverage starts measuring them.)
pytest_plugins = ["heartbeat_threading.testing.plugin"]


def _origins() -> dict[str, Path]:
    return {
        name: Path(importlib.import_module(name).__file__ or "").resolve().parent
        for name in PACKAGES
    }


def pytest_configure(config: pytest.Config) -> None:
    if os.environ.get("HEARTBEAT_TEST_INSTALLED") != "1":
        return
    wrong = {name: path for name, path in _origins().items() if "site-packages" not in path.parts}
    if wrong:
        raise pytest.UsageError(f"HEARTBEAT_TEST_INSTALLED=1, but not installed: {wrong}")


def pytest_report_header(config: pytest.Config) -> list[str]:
    return [f"{name} from {path}" for name, path in _origins().items()]
