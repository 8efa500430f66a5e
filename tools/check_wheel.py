"""The wheel as a user gets it: what it installs, and the typing they see.

    python tools/check_wheel.py [DISTDIR]     (default build/dist; `make verifytypes`)

Installs the wheel from DISTDIR into a fresh venv of this interpreter, checks that it
brings in nothing but wsproto and h11, then runs ``pyright --verifytypes`` (from the
lint group) on each package as installed there. heartbeat_core must score 100 %,
each adapter package at least 98 %; what pyright finds missing is printed. Then it
installs the extras [websockets,aiohttp] into the same venv and scores the two framework
integrations (heartbeat_websockets, heartbeat_aiohttp), whose types come from them.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: package -> the least completeness score it may have.
REQUIRED = {
    "heartbeat_core": 1.0,
    "heartbeat_asyncio": 0.98,
    "heartbeat_threading": 0.98,
    "heartbeat_cli": 0.98,
    # needs no framework: plain ASGI
    "heartbeat_asgi": 0.98,
}
#: The framework integrations and heartbeat_metrics, scored after
#: ``pip install 'heartbeat-core[websockets,aiohttp,metrics]'``
#: in the same venv (their types come from the framework).
WITH_EXTRAS = {"heartbeat_websockets": 0.98, "heartbeat_aiohttp": 0.98, "heartbeat_metrics": 0.98}
EXTRAS = "websockets,aiohttp,metrics"
#: What ``pip install heartbeat-core`` may bring, besides what venv itself puts there.
RUNTIME = {"heartbeat-core", "wsproto", "h11"}
VENV_OWN = {"pip", "setuptools"}


def _pyright() -> str:
    here = Path(sys.executable).parent / "pyright"
    found = str(here) if here.exists() else shutil.which("pyright")
    if found is None:
        raise SystemExit("verifytypes: pyright not found (it is in the lint group)")
    return found


def install(wheel: Path, where: Path) -> Path:
    venv.create(where, with_pip=True)
    python = where / "bin" / "python"
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", str(wheel)],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    listed = subprocess.run(
        [str(python), "-m", "pip", "list", "--format=json"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    names = {p["name"].lower().replace("_", "-") for p in json.loads(listed)} - VENV_OWN
    print(f"verifytypes: pip install {wheel.name} in a fresh venv installed {sorted(names)}")
    if names != RUNTIME:
        raise SystemExit(f"verifytypes: FAILED: expected exactly {sorted(RUNTIME)}")
    return where


def score(package: str, env: Path) -> tuple[float, list[str]]:
    """Pyright's completeness score for ``package`` installed in ``env``, and its findings."""
    environ = dict(os.environ, VIRTUAL_ENV=str(env), PATH=f"{env / 'bin'}:{os.environ['PATH']}")
    result = subprocess.run(
        [_pyright(), "--verifytypes", package, "--ignoreexternal", "--outputjson"],
        env=environ,
        cwd=env,  # no pyproject.toml here: pyright sees the installed package only
        capture_output=True,
        text=True,
        check=False,
    )
    try:
        report = json.loads(result.stdout)["typeCompleteness"]
    except (ValueError, KeyError):
        raise SystemExit(f"verifytypes: pyright failed:\n{result.stdout}{result.stderr}") from None
    problems = [
        f"{symbol['name']}: {diagnostic['message']}"
        for symbol in report["symbols"]
        for diagnostic in symbol["diagnostics"]
        if diagnostic["severity"] == "error"
    ]
    return float(report["completenessScore"]), problems


def main() -> int:
    dist = Path(sys.argv[1] if len(sys.argv) > 1 else "build/dist")
    if not dist.is_absolute():
        dist = ROOT / dist
    wheels = sorted(dist.glob("*.whl"))
    if len(wheels) != 1:
        raise SystemExit(f"verifytypes: expected one wheel in {dist}, found {len(wheels)}")
    failed = False
    with tempfile.TemporaryDirectory(prefix="hb-verifytypes-") as tmp:
        env = install(wheels[0], Path(tmp) / "venv")
        failed |= check(REQUIRED, env)
        subprocess.run(
            [
                str(env / "bin" / "python"),
                "-m",
                "pip",
                "install",
                "--quiet",
                f"{wheels[0]}[{EXTRAS}]",
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        print(f"verifytypes: installed the extras [{EXTRAS}] for the integrations")
        failed |= check(WITH_EXTRAS, env)
    return 1 if failed else 0


def check(required: dict[str, float], env: Path) -> bool:
    """Score each package; True when one falls short."""
    failed = False
    for package, least in required.items():
        value, problems = score(package, env)
        ok = value >= least
        failed |= not ok
        print(
            f"verifytypes: pyright --verifytypes {package}: {value * 100:.1f} % "
            f"(at least {least * 100:.0f} %) {'ok' if ok else 'FAILED'}"
        )
        if not ok:
            print("".join(f"    {line}\n" for line in problems), end="")
    return failed


if __name__ == "__main__":
    sys.exit(main())
