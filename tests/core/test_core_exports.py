"""Every public name is where ``__all__`` says it is."""

from __future__ import annotations

import importlib
import pkgutil
from importlib import metadata

import pytest

import heartbeat_core

PUBLIC_MODULES = sorted(
    info.name
    for info in pkgutil.walk_packages(heartbeat_core.__path__, prefix="heartbeat_core.")
    if not info.name.rsplit(".", 1)[-1].startswith("_")
)


def test_package_exports_exist() -> None:
    assert len(set(heartbeat_core.__all__)) == len(heartbeat_core.__all__)
    for name in heartbeat_core.__all__:
        assert hasattr(heartbeat_core, name), name


@pytest.mark.parametrize("module_name", PUBLIC_MODULES)
def test_module_exports_exist(module_name: str) -> None:
    module = importlib.import_module(module_name)
    exported = getattr(module, "__all__", None)
    assert exported is not None, f"{module_name} has no __all__"
    assert len(set(exported)) == len(exported)
    for name in exported:
        assert hasattr(module, name), f"{module_name}.{name}"


def test_top_level_names_come_from_the_modules() -> None:
    from_modules = set()
    for module_name in PUBLIC_MODULES:
        from_modules |= set(importlib.import_module(module_name).__all__)
    assert set(heartbeat_core.__all__) - {"__version__"} <= from_modules


def test_version() -> None:
    assert heartbeat_core.__version__.count(".") == 2


def test_the_installed_version_is_the_one_in_the_code() -> None:
    """The build reads ``heartbeat_core.__version__`` (pyproject.toml: dynamic), so the
    installed distribution's metadata says the same (a stale install says otherwise)."""
    assert metadata.version("heartbeat-core") == heartbeat_core.__version__
