"""Fixtures of the fault suite: one fresh server per test, for each adapter; and the
LinkProxy case's process, started as soon as its test is collected (that test runs
last, so its two minutes overlap the rest of the suite)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from .harness import ADAPTERS, FAST, ServerHandle, running_server, write_results

#: The LinkProxy case's healthy phase: two minutes (HEARTBEAT_PROXY_SECONDS shortens it).
HEALTHY_SECONDS = float(os.environ.get("HEARTBEAT_PROXY_SECONDS", "120"))
_LINK_PROXY_TEST = "test_a_healthy_peer_survives_delay_and_stalls_and_a_cut_off_one_is_found"
_link_proxy_run: subprocess.Popen[str] | None = None


@pytest.hookimpl(trylast=True)  # after -k / -m have deselected what they deselect
def pytest_collection_modifyitems(
    session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
) -> None:
    global _link_proxy_run
    chosen = [item for item in items if item.name == _LINK_PROXY_TEST]
    if not chosen or _link_proxy_run is not None:
        return
    for item in chosen:  # last: it waits for a run that started now
        items.remove(item)
        items.append(item)
    _link_proxy_run = subprocess.Popen(
        [sys.executable, str(Path(__file__).with_name("link_proxy_run.py")), str(HEALTHY_SECONDS)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.fixture
def link_proxy_run() -> subprocess.Popen[str]:
    """The LinkProxy case's process, started at collection (see the module's docstring)."""
    assert _link_proxy_run is not None, "started when the test was collected"
    return _link_proxy_run


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
    if _link_proxy_run is not None and _link_proxy_run.poll() is None:
        _link_proxy_run.kill()  # (the session ended early: stop the process we started)
        _link_proxy_run.communicate(timeout=10)
    path = os.environ.get("HEARTBEAT_FAULTS_REPORT")
    if path:
        write_results(path)
