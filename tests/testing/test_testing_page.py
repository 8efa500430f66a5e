"""docs/testing.rst runs as written: its console sessions print what the page shows,
its hypothesis example passes as a user's test module would, and so do its fixtures
example (its doctests run in tests/examples/test_docs.py)."""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path

from tests.cli.harness import SLACK, child_env
from tests.support.docblocks import doc_block, output_matches, session

ROOT = Path(__file__).resolve().parents[2]
PAGE = "docs/testing.rst"


def _console(block: str, status: int) -> None:
    """Run the block's one command from the checkout; its output is what the block shows."""
    ((command, shown),) = session(block)
    argv = shlex.split(command)
    assert argv[0] == "heartbeat"
    proc = subprocess.run(
        [sys.executable, "-m", "heartbeat_cli", *argv[1:]],
        cwd=ROOT,
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=SLACK * 4,
        check=False,
    )
    assert proc.returncode == status, proc.stderr
    actual = proc.stdout.splitlines()
    assert output_matches(shown, actual), "\n".join(actual)


def test_the_safe_settings_session() -> None:
    _console(doc_block(PAGE, "testing-simulate-safe"), 0)


def test_the_unsafe_settings_session() -> None:
    _console(doc_block(PAGE, "testing-simulate-unsafe"), 1)


def _run_as_a_test_module(source: str, tmp_path: Path) -> str:
    module = tmp_path / "test_from_the_page.py"
    module.write_text(source, encoding="utf-8")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:randomly",
            "-p",
            "no:cacheprovider",
            str(module),
        ],
        cwd=tmp_path,
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=SLACK * 6,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def test_the_hypothesis_example_passes(tmp_path: Path) -> None:
    out = _run_as_a_test_module(doc_block(PAGE, "testing-hypothesis"), tmp_path)
    assert "2 passed" in out


def test_the_fixtures_example_passes(tmp_path: Path) -> None:
    (tmp_path / "conftest.py").write_text(doc_block(PAGE, "testing-conftest"), encoding="utf-8")
    out = _run_as_a_test_module(doc_block(PAGE, "testing-fixtures"), tmp_path)
    assert "2 passed" in out
