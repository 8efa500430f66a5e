"""The README's threading example runs as written."""

from __future__ import annotations

import pathlib
import subprocess
import sys

from tests.support.docblocks import doc_block

ROOT = pathlib.Path(__file__).resolve().parents[2]


def readme_example() -> str:
    return doc_block("README.md", "readme-threading")


def test_readme_threading_example_runs(tmp_path: pathlib.Path) -> None:
    script = tmp_path / "example.py"
    script.write_text(readme_example(), encoding="utf-8")
    result = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=30,
        env={"PYTHONPATH": f"{ROOT}:{ROOT / 'adapters'}", "PATH": "/usr/bin:/bin"},
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "echo: hello" in result.stdout
    assert "closed: 1000 local" in result.stdout
    assert "Connected(uri=" in result.stdout
    assert "reconnecting client got: again" in result.stdout
