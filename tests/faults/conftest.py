"""Fixtures of the fault suite: one fresh server per test, for each adapter."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from .harness import ADAPTERS, FAST, ServerHandle, running_server, write_results


@pytest.fixture(params=ADAPTERS)
def adapter(request: pytest.FixtureRequest) -> str:
    name = str(request.param)
    pytest.importorskip(f"heartbeat_{name}")
    return name


@pytest.fixture
def server(adapter: str) -> Iterator[ServerHandle]:
    """An echo server with fast heartbeats and a 0.5 s handshake timeout."""
    with running_server(adapter, FAST, handshake_timeout=0.5) as handle:
        yield handle


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    path = os.environ.get("HEARTBEAT_FAULTS_REPORT")
    if path:
        write_results(path)
