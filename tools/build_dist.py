"""Build the sdist and the wheel afresh, and check them as an index would.

    python tools/build_dist.py [OUTDIR]      (default build/dist; `make dist`)

``python -m build`` makes the sdist, then the wheel from the unpacked sdist (so the
sdist is proven to build). Any line of its output that mentions a warning fails the
run, and so does ``twine check --strict``. ``PYTHONDONTWRITEBYTECODE`` is left out
of the build's environment: with it set, setuptools warns that it skips
byte-compiling, a warning about the caller's shell, not about the project.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WARNING = re.compile(r"warn", re.IGNORECASE)


def build(outdir: Path) -> list[str]:
    """Build into ``outdir`` (emptied first); return the output lines that warn."""
    shutil.rmtree(outdir, ignore_errors=True)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    result = subprocess.run(
        [sys.executable, "-m", "build", "--outdir", str(outdir), str(ROOT)],
        cwd=ROOT,
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
