"""Fixtures of the browser tests: Debian's Chromium and playwright-core, installed on demand.

The first run may install them (``apt-get install chromium`` as root, ``npm ci`` in
tests/browser/node), each bounded by 300 s; afterwards the browser tests take seconds.
They are skipped, with the reason, only where Chromium cannot be installed.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from .harness import Browser, ensure_chromium, ensure_playwright

ARTIFACTS = Path(os.environ.get("HEARTBEAT_ARTIFACTS", "test-artifacts"))


@pytest.fixture(scope="session")
def node_with_playwright() -> str:
    """``node``, with playwright-core installed next to driver.js."""
    node, reason = ensure_playwright()
    if node is None:
        pytest.skip(reason or "node is missing")
    return node


@pytest.fixture(scope="session")
def chromium(node_with_playwright: str) -> str:
    """Make sure /usr/bin/chromium exists (apt-get as root when missing); returns node."""
    reason = ensure_chromium()
    if reason is not None:
        pytest.skip(reason)
    return node_with_playwright


@pytest.fixture
def browser(chromium: str, tmp_path: Path) -> Iterator[Browser]:
    """A fresh headless Chromium (its own --user-data-dir), closed after the test."""
    driver = Browser(chromium, tmp_path / "chromium-profile")
    try:
        yield driver
    finally:
        driver.close()


@pytest.fixture
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS.resolve()
