"""What we ship: the wheel and the sdist that `make dist` built (``HEARTBEAT_DIST``), or,
when that is not set, ones this module builds with tools/build_dist.py (which fails on
any build warning and runs ``twine check --strict``)."""

from __future__ import annotations

import email
import email.message
import os
import subprocess
import sys
import tarfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

import heartbeat_core

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = [
    "heartbeat_core",
    "heartbeat_asyncio",
    "heartbeat_threading",
    "heartbeat_cli",
    "heartbeat_websockets",
    "heartbeat_aiohttp",
    "heartbeat_asgi",
    "heartbeat_metrics",
]
STATIC = sorted(p.name for p in (ROOT / "adapters" / "heartbeat_cli" / "static").iterdir())


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    given = os.environ.get("HEARTBEAT_DIST")
    if given:
        yield ROOT / given
        return
    pytest.importorskip("build")
    outdir = tmp_path_factory.mktemp("dist")
    result = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "build_dist.py"), str(outdir)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    yield outdir


@pytest.fixture(scope="module")
def wheel(dist: Path) -> zipfile.ZipFile:
    (path,) = dist.glob("*.whl")
    return zipfile.ZipFile(path)


@pytest.fixture(scope="module")
def sdist_names(dist: Path) -> set[str]:
    (path,) = dist.glob("*.tar.gz")
    with tarfile.open(path) as archive:
        names = archive.getnames()
    top = f"heartbeat_core-{heartbeat_core.__version__}/"
    assert all(name == top.rstrip("/") or name.startswith(top) for name in names)
    return {name.removeprefix(top) for name in names}


def _metadata(wheel: zipfile.ZipFile) -> email.message.Message:
    (name,) = [n for n in wheel.namelist() if n.endswith(".dist-info/METADATA")]
    return email.message_from_bytes(wheel.read(name))


def test_the_artifacts_carry_the_code_version(dist: Path) -> None:
    version = heartbeat_core.__version__
    assert sorted(p.name for p in dist.iterdir()) == [
        f"heartbeat_core-{version}-py3-none-any.whl",
        f"heartbeat_core-{version}.tar.gz",
    ]


def test_the_wheel_has_every_package_typed_and_the_static_files(wheel: zipfile.ZipFile) -> None:
    names = set(wheel.namelist())
    for package in PACKAGES:
        assert f"{package}/__init__.py" in names, package
        assert f"{package}/py.typed" in names, package
    assert STATIC == [
        "dashboard.css",
        "dashboard.html",
        "dashboard.js",
        "heartbeat-client.js",
    ]
    for name in STATIC:
        assert f"heartbeat_cli/static/{name}" in names, name
        source = (ROOT / "adapters" / "heartbeat_cli" / "static" / name).read_bytes()
        assert wheel.read(f"heartbeat_cli/static/{name}") == source
    # Nothing but the packages and their metadata (no tests, no adapters/ prefix).
    tops = {name.split("/")[0] for name in names}
    assert tops == {*PACKAGES, f"heartbeat_core-{heartbeat_core.__version__}.dist-info"}


def test_the_wheel_metadata(wheel: zipfile.ZipFile) -> None:
    meta = _metadata(wheel)
    assert meta["Name"] == "heartbeat-core"
    assert meta["Version"] == heartbeat_core.__version__
    assert meta["License-Expression"] == "MIT"
    assert meta.get_all("License-File") == ["LICENSE"]
    assert meta["Requires-Python"] == ">=3.10"
    assert meta["Author"]
    assert meta["Keywords"]
    classifiers = set(meta.get_all("Classifier") or [])
    for minor in (10, 11, 12, 13):
        assert f"Programming Language :: Python :: 3.{minor}" in classifiers
    assert "Typing :: Typed" in classifiers
    assert any(c.startswith("Development Status :: ") for c in classifiers)
    # What users install: wsproto, and the rest only when they ask for it (uvloop, a
    # framework for its integration). No test or lint tool.
    extras = ["uvloop", "websockets", "aiohttp", "asgi", "fastapi", "metrics"]
    requires = meta.get_all("Requires-Dist") or []
    assert requires[0] == "wsproto>=1.2"
    assert all(any(f'extra == "{x}"' in r for x in extras) for r in requires[1:]), requires
    assert meta.get_all("Provides-Extra") == extras
    license_name = f"heartbeat_core-{heartbeat_core.__version__}.dist-info/licenses/LICENSE"
    assert wheel.read(license_name) == (ROOT / "LICENSE").read_bytes()
    entry_points = wheel.read(
        f"heartbeat_core-{heartbeat_core.__version__}.dist-info/entry_points.txt"
    ).decode()
    assert "heartbeat = heartbeat_cli.app:main" in entry_points


def test_the_sdist_has_what_its_own_make_test_needs(sdist_names: set[str]) -> None:
    for name in [
        "LICENSE",
        "README.md",
        "CHANGELOG.md",
        "Makefile",
        "pyproject.toml",
        ".ci/run",
        "tools/build_dist.py",
        "tools/check_wheel.py",
        "tools/matrix.py",
        "docs/conf.py",
        "docs/index.rst",
        "docs/deprecation.rst",
        "docs/_static/dashboard.png",
        "examples/tutorial_server.py",
        "tests/conftest.py",
        "tests/core/test_core_machine.py",
        "tests/interop/node/package.json",
        "tests/interop/node/package-lock.json",
        "tests/browser/node/package-lock.json",
        "benchmarks/bench_core.py",
        *(f"adapters/heartbeat_cli/static/{name}" for name in STATIC),
    ]:
        assert name in sdist_names, name
    tracked = subprocess.run(
        ["git", "ls-files", "tests", "docs", "examples", "tools"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    if tracked.returncode == 0 and tracked.stdout:  # (not in an unpacked sdist)
        missing = set(tracked.stdout.split()) - sdist_names
        assert not missing, sorted(missing)
    for name in sdist_names:
        assert "__pycache__" not in name and "node_modules" not in name, name
        assert not name.startswith(("docs/_build", "docs/_generated", "build/", ".venv")), name
