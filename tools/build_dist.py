"""Build the sdist and the wheel afresh, and check them as an index would.

    python tools/build_dist.py [OUTDIR]      (default build/dist; `make dist`)

``python -m build`` makes the sdist, then the wheel from the unpacked sdist (so the
sdist is proven to build). It runs on a copy of the tree without what .gitignore
names (caches, .venv, build output), so a working tree where tests have run gives
the same sdist as a fresh clone. Any line of its output that mentions a warning
fails the run, and so does ``twine check --strict``. ``PYTHONDONTWRITEBYTECODE`` is
left out of the build's environment: with it set, setuptools warns that it skips
byte-compiling, a warning about the caller's shell, not about the project.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WARNING = re.compile(r"warn", re.IGNORECASE)


def _clean_copy(where: Path) -> Path:
    """The tree without .git and what .gitignore names (matched by file name)."""
    names = [".git", "*.pyc"]
    for line in (ROOT / ".gitignore").read_text().splitlines():
        pattern = line.strip().rstrip("/")
        if pattern and not pattern.startswith("#"):
            names.append(pattern.rsplit("/", 1)[-1])
    shutil.copytree(ROOT, where, ignore=shutil.ignore_patterns(*names), symlinks=True)
    return where


def build(outdir: Path) -> list[str]:
    """Build into ``outdir`` (emptied first); return the output lines that warn."""
    shutil.rmtree(outdir, ignore_errors=True)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    with tempfile.TemporaryDirectory(prefix="hb-dist-") as tmp:
        tree = _clean_copy(Path(tmp) / "heartbeat-core")
        result = subprocess.run(
            [sys.executable, "-m", "build", "--outdir", str(outdir), str(tree)],
            cwd=tree,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            check=False,
        )
    if result.returncode != 0:
        sys.stdout.write(result.stdout)
        raise SystemExit(f"dist: python -m build failed (exit {result.returncode})")
    return [line for line in result.stdout.splitlines() if WARNING.search(line)]


def main() -> int:
    outdir = Path(sys.argv[1] if len(sys.argv) > 1 else "build/dist")
    if not outdir.is_absolute():
        outdir = ROOT / outdir
    warnings = build(outdir)
    artifacts = sorted(outdir.iterdir())
    names = ", ".join(p.name for p in artifacts)
    if warnings:
        sys.stdout.write("".join(f"  {line}\n" for line in warnings))
        sys.stdout.write(f"dist: FAILED: python -m build printed {len(warnings)} warning(s)\n")
        return 1
    if len(artifacts) != 2:
        sys.stdout.write(f"dist: FAILED: expected an sdist and a wheel, got {names}\n")
        return 1
    check = subprocess.run(
        [sys.executable, "-m", "twine", "check", "--strict", *map(str, artifacts)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        check=False,
    )
    if check.returncode != 0:
        sys.stdout.write(check.stdout)
        sys.stdout.write("dist: FAILED: twine check --strict\n")
        return 1
    sys.stdout.write(f"dist: {names}: no build warning; twine check --strict passed\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
