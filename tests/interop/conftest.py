"""Fixtures for the interop tests: our adapters, a loop for the peers, Node and its ``ws``."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from .harness import AdapterShim, LoopThread, NodeProcess, node_tools, prepare_node

ADAPTERS = ["asyncio", "threading"]

#: Figures measured by the tests (RTTs, sweeps survived...), printed at the end of the run
#: and written to test-artifacts/interop-figures.json.
FIGURES: dict[str, dict[str, Any]] = {}


@pytest.fixture(params=ADAPTERS)
def adapter(request: pytest.FixtureRequest) -> Iterator[AdapterShim]:
    """One of our two adapters, behind the blocking shim; everything it opened is closed after."""
    shim = AdapterShim(request.param)
    try:
        yield shim
    finally:
        shim.shutdown()


@pytest.fixture
def peer_loop() -> Iterator[LoopThread]:
    """An event loop in a thread of its own, for the third-party Python peers."""
    loop = LoopThread("peers")
    try:
        yield loop
    finally:
        loop.stop()


@pytest.fixture
def figures(request: pytest.FixtureRequest) -> dict[str, Any]:
    """A dict the test fills with what it measured (keyed by the test id)."""
    return FIGURES.setdefault(request.node.name, {})


@pytest.fixture(scope="session")
def node() -> str:
    """The ``node`` executable, with ``ws`` installed in tests/interop/node (``npm ci``)."""
    tools = node_tools()
    if tools is None:
        missing = [name for name in ("node", "npm") if shutil.which(name) is None]
        pytest.skip(f"the Node.js peers need node and npm on PATH; not found: {', '.join(missing)}")
    node_exe, npm = tools
    prepare_node(npm)
    return node_exe


@pytest.fixture
def node_peer(node: str) -> Iterator[Callable[..., NodeProcess]]:
    """Start Node scripts from tests/interop/node; every one is killed at teardown."""
    started: list[NodeProcess] = []

    def start(script: str, **env: str) -> NodeProcess:
        proc = NodeProcess(node, script, env)
        started.append(proc)
        return proc

    try:
        yield start
    finally:
        for proc in started:
            proc.stop()


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not FIGURES:
        return
    terminalreporter.section("interop figures")
    for name, values in sorted(FIGURES.items()):
        if values:
            terminalreporter.write_line(f"{name}: {json.dumps(values, sort_keys=True)}")
    out = Path(os.environ.get("HEARTBEAT_ARTIFACTS", "test-artifacts"))
    try:
        out.mkdir(parents=True, exist_ok=True)
        (out / "interop-figures.json").write_text(json.dumps(FIGURES, indent=2, sort_keys=True))
    except OSError:
        pass
