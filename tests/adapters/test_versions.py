"""Every package of the distribution tells the same version: the core's, which the build reads."""

from __future__ import annotations

import importlib
from importlib import metadata

import pytest

import heartbeat_core


@pytest.mark.parametrize("package", ["heartbeat_asyncio", "heartbeat_threading", "heartbeat_cli"])
def test_every_package_has_the_distributions_version(package: str) -> None:
    module = importlib.import_module(package)
    assert module.__version__ == heartbeat_core.__version__
    assert module.__version__ == metadata.version("heartbeat-core")
    assert "__version__" in module.__all__
