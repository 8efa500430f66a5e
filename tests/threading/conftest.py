"""Fixtures for the threading adapter's tests: every test must leave no thread or fd behind."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator

import pytest


def _fd_count() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.fixture(autouse=True)
def no_leaks() -> Iterator[None]:
    threads_before = set(threading.enumerate())
    fds_before = _fd_count()
    yield
    deadline = time.monotonic() + 5.0
    while True:
        extra = [t for t in threading.enumerate() if t not in threads_before and t.is_alive()]
        fds = _fd_count()
        if not extra and fds <= fds_before:
            return
        if time.monotonic() > deadline:
            pytest.fail(f"leaked threads {extra} / fds {fds - fds_before} after the test")
        time.sleep(0.01)  # bounded: threads need a moment to finish exiting
