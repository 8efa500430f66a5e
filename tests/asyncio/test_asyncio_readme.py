"""The README's asyncio example runs as written."""

from __future__ import annotations

import pathlib
import subprocess
import sys

from tests.support.docblocks import doc_block

ROOT = pathlib.Path(__file__).resolve().parents[2]


def readme_example() -> str:
    return doc_block("README.md", "readme-asyncio")


def test_readme_asyncio_example_runs(tmp_path: pathlib.Path) -> None:
    script = tmp_path / "example.py"
    script.write_text(readme_example(), encoding="utf-8")
    env_path = f"{ROOT}{':'}{ROOT / 'adapters'}"
    result = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=30,
        env={"PYTHONPATH": env_path, "PATH": "/usr/bin:/bin"},
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "echo: hello" in result.stdout
    assert "closed: 1000 local" in result.stdout
    assert "reconnecting client got: again" in result.stdout
