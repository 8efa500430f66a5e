"""The documentation: its doctests pass, its other code is executed or checked, its
generated figures cover the code they are drawn from, and the site builds with no warnings."""

from __future__ import annotations

import doctest
import importlib.util
import re
import shlex
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from heartbeat_core import TRANSITIONS, HeartbeatConfig, HeartbeatPhase
from heartbeat_core.actions import Abort, CloseTransport, PeerDead, RttSample, SendClose, SendPing

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
PAGES = sorted(DOCS.rglob("*.rst"))
PAGES = [p for p in PAGES if "_build" not in p.parts and "_generated" not in p.parts]


def _hbdocs() -> ModuleType:
    spec = importlib.util.spec_from_file_location("hbdocs", DOCS / "_ext" / "hbdocs.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["hbdocs"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


hbdocs = _hbdocs()


def _rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


@pytest.mark.parametrize("page", [p for p in PAGES if ">>> " in p.read_text()], ids=_rel)
def test_doctests(page: Path) -> None:
    result = doctest.testfile(
        str(page),
        module_relative=False,
        optionflags=doctest.ELLIPSIS,
        raise_on_error=False,
        verbose=False,
    )
    assert result.attempted > 0
    assert result.failed == 0, f"{result.failed} doctest(s) failed in {_rel(page)}"


_DIRECTIVE = re.compile(r"^\s*\.\. (code-block|code|sourcecode|literalinclude)::\s*(\S*)", re.M)


def test_every_code_block_is_tested_or_checked() -> None:
    """Python appears only as doctests or as files included from examples/ (which the tests
    run); other code blocks are console sessions (checked below) or program output."""
    for page in PAGES:
        for kind, argument in _DIRECTIVE.findall(page.read_text()):
            if kind == "literalinclude":
                target = (page.parent / argument).resolve()
                assert target.is_file(), f"{_rel(page)}: {argument} does not exist"
                assert target.parent == ROOT / "examples", f"{_rel(page)}: {argument}"
                assert (ROOT / "tests" / "examples").is_dir()
            else:
                assert argument in ("console", "text"), f"{_rel(page)}: a {argument} block"


def _console_commands() -> list[tuple[Path, list[str]]]:
    commands = []
    for page in PAGES:
        blocks = re.split(r"^\.\. code-block:: console\s*$", page.read_text(), flags=re.M)[1:]
        for block in blocks:
            for line in block.splitlines()[1:]:
                if line and not line.startswith("   "):
                    break
                if line.strip().startswith("$ "):
                    commands.append((page, shlex.split(line.strip()[2:])))
    return commands


def test_console_commands_are_real() -> None:
    """Every ``heartbeat`` command line parses with the real parser; every example file a
    command runs exists."""
    from heartbeat_asyncio.cli import build_parser

    commands = _console_commands()
    assert any(argv[0] == "heartbeat" for _, argv in commands)
    for page, argv in commands:
        if argv[0] == "heartbeat":
            build_parser().parse_args(argv[1:])  # exits (SystemExit) on a bad option
        elif argv[0] == "python" and argv[1].startswith("examples/"):
            assert (ROOT / argv[1]).is_file(), f"{_rel(page)}: {argv}"


def test_state_diagram_draws_every_transition() -> None:
    svg = hbdocs.state_svg()
    drawn: set[int] = set()
    for label in re.findall(r"<title>([^.]+)\. ", svg):
        for part in label.split(", "):
            first, _, last = part.partition("\u2013")
            drawn.update(range(int(first), int(last or first) + 1))
    assert drawn == set(range(1, len(TRANSITIONS) + 1))
    for phase in HeartbeatPhase:
        assert f">{phase.name}</text>" in svg
    table = hbdocs.transitions_table()
    for number, t in enumerate(TRANSITIONS, 1):
        assert f"   * - {number}\n     - ``{t.source.name}``\n     - {t.trigger}\n" in table


def test_diagram_follows_the_table() -> None:
    """Drawn from the table given, not from a copy: a changed table changes the figure."""
    fewer = hbdocs.state_svg(TRANSITIONS[:3])
    assert fewer != hbdocs.state_svg()
    assert len(re.findall("<title>", fewer)) == 3


def test_timeline_is_a_real_run_with_ping_pong_timeout_close_abort() -> None:
    steps = hbdocs.run_timeline()
    kinds = [type(a) for step in steps for a in step.actions]
    for kind in (SendPing, RttSample, PeerDead, SendClose, CloseTransport, Abort):
        assert kind in kinds
    assert steps[-1].phase is HeartbeatPhase.CLOSED
    svg = hbdocs.timeline_svg(steps)
    for text in ("ping #1", "pong #1", "ping #2", "timeout 0.5 s", "close 1011", "Abort"):
        assert text in svg


def test_every_rule_is_explained_under_its_name() -> None:
    names = hbdocs.rule_names()
    assert {t.rule for t in TRANSITIONS} <= set(names)
    page = (DOCS / "explanation" / "timing-rules.rst").read_text()
    for name in names:
        assert f".. _rule-{name}:\n\n``{name}``\n" in page, name


def test_configuration_table_has_every_field_and_default() -> None:
    table = hbdocs.config_table(HeartbeatConfig, "t")
    for name, default in (("interval", "20.0"), ("timeout", "10.0"), ("jitter", "0.0")):
        assert f"   * - ``{name}``\n     - ``float``\n     - ``{default}``" in table
    assert "(undocumented)" not in table
    assert table.count("   * - ``") == len(HeartbeatConfig.__dataclass_fields__)


def test_docs_build_without_warnings(tmp_path: Path) -> None:
    """``make docs`` in short: the whole site, warnings as errors."""
    pytest.importorskip("sphinx")
    pytest.importorskip("furo")
    pytest.importorskip("myst_parser")
    result = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html",
         "-d", str(tmp_path / "doctrees"), str(DOCS), str(tmp_path / "html")],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    assert (tmp_path / "html" / "explanation" / "timing-rules.html").is_file()
    assert (tmp_path / "html" / "_images" / "states.svg").is_file()


@pytest.mark.parametrize("package", ["heartbeat_asyncio", "heartbeat_threading"])
def test_listed_connection_attributes_exist(package: str) -> None:
    """The attributes the reference lists by hand are the ones the drivers set."""
    import importlib

    module = importlib.import_module(package)
    page = (DOCS / "reference" / f"{package.split('_')[1]}.rst").read_text()
    listed = re.findall(r"^   ``(\w+)``\n      ", page, re.M)
    assert len(listed) >= 5
    source = Path(module.__file__ or "").parent.joinpath("connection.py").read_text()
    # The runtime-neutral half of every driver's connection sets most of them.
    source += (ROOT / "heartbeat_core" / "driver.py").read_text()
    for name in listed:
        assert re.search(rf"self\.{name}\b\s*(:[^=]+)?=", source), f"{package}: {name}"


def test_rules_named_in_docstrings_exist() -> None:
    """A rule named anywhere in the code's comments (which the docs include) is a real rule."""
    names = set(hbdocs.rule_names())
    for path in [*(ROOT / "heartbeat_core").glob("*.py"), *(ROOT / "adapters").rglob("*.py")]:
        for name in re.findall(r"rule ``([a-z-]+)``", path.read_text()):
            assert name in names, f"{_rel(path)} names an unknown rule {name!r}"
