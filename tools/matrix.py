"""The version matrix: the built wheel, installed, on every other CPython 3.10-3.13 here.

    python tools/matrix.py [DISTDIR]      (default build/dist; `make matrix`)

`make test` runs everything on the default interpreter (this one) from the source
tree. For every other CPython from 3.10 to 3.13 found on this machine (``python3.X``
on PATH, or under pyenv's versions), this script makes a fresh venv, installs the
wheel from DISTDIR and the test dependency group, and runs tests/core and tests/adapters
(the contract suite, over both drivers and both loops) against the installed wheel: the
tests are copied into a scratch folder with no source beside them, and
``HEARTBEAT_TEST_INSTALLED=1`` makes the run fail unless every package comes from the
venv's site-packages (the ``installed from`` line shows where). One line per version
at the end. A version that is not found is reported; under CI (``CI=true``) it fails
the run.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MINORS = (10, 11, 12, 13)
# The core, and the contract suite (tests/adapters: every shared behaviour over asyncio, asyncio
# on uvloop and threading). tests/asyncio and tests/threading run on the default interpreter only:
# with them the whole CI came to about 15 minutes, its limit.
SUITES = ("tests/core", "tests/adapters")
PACKAGES = (
    "heartbeat_core",
    "heartbeat_asyncio",
    "heartbeat_threading",
    "heartbeat_cli",
    "heartbeat_metrics",
)
#: -x: the first failure is enough to mark the version; no cache written anywhere.
PYTEST_ARGS = ("-x", "-q", "-p", "no:cacheprovider")
SUMMARY = re.compile(r"^=*\s*(\d+ (passed|failed|error).*) in [\d.]+s")


def _version_of(python: str) -> tuple[int, int, int] | None:
    try:
        out = subprocess.run(
            [
                python,
                "-c",
                "import sys, platform; print(platform.python_implementation(),"
                " *sys.version_info[:3])",
            ],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout.split()
    except (OSError, subprocess.SubprocessError):
        return None
    if len(out) != 4 or out[0] != "CPython":
        return None
    return int(out[1]), int(out[2]), int(out[3])


def find_interpreters() -> dict[int, tuple[str, tuple[int, int, int]]]:
    """minor -> (interpreter, version) for each CPython 3.10-3.13 that runs here."""
    found: dict[int, tuple[str, tuple[int, int, int]]] = {}
    pyenv = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    for minor in MINORS:
        candidates = [shutil.which(f"python3.{minor}")]
        candidates += sorted(
            (str(p) for p in pyenv.glob(f"3.{minor}.*/bin/python3.{minor}")),
            key=lambda p: [int(x) for x in re.findall(r"\d+", Path(p).parents[1].name)],
            reverse=True,
        )
        for python in candidates:
            if python is None:
                continue
            version = _version_of(python)  # (a pyenv shim may exist but not run)
            if version is not None and version[:2] == (3, minor):
                found[minor] = (python, version)
                break
    return found


def _run(cmd: list[str], log: Path, **kwargs: object) -> int:
    with log.open("a") as out:
        out.write(f"$ {' '.join(cmd)}\n")
        out.flush()
        return subprocess.run(
            cmd, stdout=out, stderr=subprocess.STDOUT, check=False, **kwargs
        ).returncode  # type: ignore[call-overload]


def _scratch_tests(where: Path) -> None:
    """The tests and what they read (the README's examples), with no source beside them;
    pytest's settings from pyproject.toml, less ``pythonpath`` (which names the source)."""
    shutil.copytree(
        ROOT / "tests",
        where / "tests",
        ignore=shutil.ignore_patterns("__pycache__", "node_modules"),
    )
    shutil.copy2(ROOT / "README.md", where / "README.md")
    lines = (ROOT / "pyproject.toml").read_text().splitlines()
    start = lines.index("[tool.pytest.ini_options]")
    section = [lines[start]]
    for line in lines[start + 1 :]:
        if line.startswith("["):
            break
        if not line.startswith(("pythonpath", "testpaths")):
            section.append(line)
    (where / "pyproject.toml").write_text("\n".join(section) + "\n")


def run_version(python: str, wheel: Path, tmp: Path, log: Path) -> tuple[bool, str, float]:
    """(passed, what happened, seconds) for one interpreter."""
    started = time.monotonic()
    env_dir = tmp / "venv"
    vpy = str(env_dir / "bin" / "python")
    quiet = ("--quiet", "--disable-pip-version-check")
    steps = [
        [python, "-m", "venv", str(env_dir)],
        [vpy, "-m", "pip", "install", *quiet, "--upgrade", "pip>=25.1"],  # for --group
        [vpy, "-m", "pip", "install", *quiet, str(wheel), "--group", "test"],
    ]
    for step in steps:
        if _run(step, log, cwd=ROOT) != 0:
            return False, f"setup failed: {' '.join(step[:4])} (see {log})", 0.0
    run_dir = tmp / "run"
    _scratch_tests(run_dir)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["HEARTBEAT_TEST_INSTALLED"] = "1"
    where = (
        subprocess.run(
            [
                vpy,
                "-c",
                "import importlib, os\n"
                f"for n in {PACKAGES!r}:\n"
                "    m = importlib.import_module(n)\n"
                "    print(n, m.__version__, os.path.dirname(m.__file__))",
            ],
            cwd=run_dir,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        .stdout.strip()
        .splitlines()
    )
    for line in where:
        print(f"    installed from: {line}")
    with log.open("a") as out:
        out.write("\n".join(where) + "\n")
    result = subprocess.run(
        [vpy, "-m", "pytest", *PYTEST_ARGS, *SUITES],
        cwd=run_dir,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    with log.open("a") as out:
        out.write(result.stdout + result.stderr)
    summary = next(
        (
            m.group(1)
            for line in reversed(result.stdout.splitlines())
            if (m := SUMMARY.match(line.strip("= ")))
        ),
        f"pytest exited {result.returncode}",
    )
    if result.returncode != 0:
        tail = "\n".join(result.stdout.splitlines()[-30:])
        print(f"    --- last lines (whole log: {log}) ---\n{tail}")
    return result.returncode == 0, summary, time.monotonic() - started


def main() -> int:
    dist = Path(sys.argv[1] if len(sys.argv) > 1 else "build/dist")
    if not dist.is_absolute():
        dist = ROOT / dist
    wheels = sorted(dist.glob("*.whl"))
    if len(wheels) != 1:
        raise SystemExit(f"matrix: expected one wheel in {dist}, found {len(wheels)}")
    wheel = wheels[0]
    logs = ROOT / "build" / "matrix"
    shutil.rmtree(logs, ignore_errors=True)
    logs.mkdir(parents=True)
    default = sys.version_info[:3]
    found = find_interpreters()
    lines = [
        f"matrix: CPython {'.'.join(map(str, default))} (default): everything, from the "
        "source tree: passed (make lint typecheck pytest, above)"
    ]
    failed = False
    for minor in MINORS:
        if minor == default[1]:
            continue
        if minor not in found:
            required = os.environ.get("CI", "").lower() in ("1", "true", "yes")
            failed |= required
            lines.append(
                f"matrix: CPython 3.{minor}: not found on this machine: "
                f"{'FAILED (CI requires it)' if required else 'skipped'}"
            )
            continue
        python, version = found[minor]
        label = ".".join(map(str, version))
        print(
            f"matrix: CPython {label} ({python}): {wheel.name} + test group, {' '.join(SUITES)}",
            flush=True,
        )
        with tempfile.TemporaryDirectory(prefix=f"hb-matrix-3.{minor}-") as tmp:
            ok, summary, seconds = run_version(python, wheel, Path(tmp), logs / f"3.{minor}.log")
        failed |= not ok
        lines.append(
            f"matrix: CPython {label}: installed wheel, {len(SUITES)} suites: "
            f"{summary} ({seconds:.0f} s with setup): {'passed' if ok else 'FAILED'}"
        )
        print(lines[-1], flush=True)
    print("\n".join(["", *lines]))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
