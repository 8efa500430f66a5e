"""The documentation: its doctests pass, its other code is executed or checked, its
generated figures cover the code they are drawn from, and the site builds with no warnings."""

from __future__ import annotations

import ast
import doctest
import importlib.util
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from heartbeat_core import TRANSITIONS, HeartbeatConfig, HeartbeatPhase
from heartbeat_core.actions import Abort, CloseTransport, PeerDead, RttSample, SendClose, SendPing
from tests.support.docblocks import Block, doc_block, markdown_blocks, site_blocks

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


DOCTEST_PAGES = [p for p in PAGES if ">>> " in p.read_text()]


@pytest.mark.parametrize("page", DOCTEST_PAGES, ids=_rel)
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


# ------------------------------------------------------------------ every code block


def _string_constants(tree: ast.Module) -> dict[str, str]:
    return {
        target.id: node.value.value
        for node in tree.body
        if isinstance(node, ast.Assign)
        and isinstance(node.value, ast.Constant)
        and isinstance(node.value.value, str)
        for target in node.targets
        if isinstance(target, ast.Name)
    }


def _what_the_tests_use() -> tuple[set[tuple[str, str]], set[str]]:
    """The blocks the tests look up (``doc_block(page, label)``, the page given as a string
    or a module-level constant), and the modules of examples/ they import."""
    labels: set[tuple[str, str]] = set()
    examples: set[str] = set()
    for path in (ROOT / "tests").rglob("*.py"):
        if path == Path(__file__):
            continue  # this file looks blocks up by what it found, not by name
        tree = ast.parse(path.read_text(encoding="utf-8"))
        constants = _string_constants(tree)
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module == "examples":
                examples.update(alias.name for alias in node.names)
            if not (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id == "doc_block"
                and len(node.args) == 2
            ):
                continue
            page, label = (
                arg.value if isinstance(arg, ast.Constant) else constants.get(ast.unparse(arg))
                for arg in node.args
            )
            assert isinstance(page, str) and isinstance(label, str), f"{_rel(path)}: doc_block"
            labels.add((page, label))
    return labels, examples


def _how_it_runs(block: Block, labels: set[tuple[str, str]], examples: set[str]) -> str | None:
    """Which part of the convention (tests/support/docblocks.py) covers a block, or None."""
    if block.marker == "fragment":
        return "fragment" if block.note else None  # a fragment says why it is not run
    if block.marker == "tested":
        if (block.page, block.note) not in labels:
            return None
        shown = doc_block(block.page, block.note)  # what the tests take is what readers see
        assert shown.rstrip("\n") == block.text.rstrip("\n"), block.where
        return "tested"
    if block.kind == "doctest":
        ran = ROOT / block.page in DOCTEST_PAGES  # the pages test_doctests runs
        return "doctest" if ran else None
    if block.kind == "include" and block.included:
        included = Path(block.included)
        ran = included.parent == Path("examples") and included.stem in examples
        return "example" if ran else None
    if block.page.startswith("docs/_generated/"):
        return "generated from the code at build time"
    return None


def test_every_code_block_runs_or_is_a_fragment(site: Path) -> None:
    """Every code block of the site (pages, includes, docstrings), README.md and
    CONTRIBUTING.md runs in the test suite as written, or is marked a fragment; see
    CONTRIBUTING.md, "Code blocks in the documentation"."""
    blocks = site_blocks(site / "doctrees")
    blocks += markdown_blocks(ROOT / "README.md") + markdown_blocks(ROOT / "CONTRIBUTING.md")
    labels, examples = _what_the_tests_use()
    how = [(block, _how_it_runs(block, labels, examples)) for block in blocks]
    unaccounted = [
        f"{block.where} ({block.language or block.kind}"
        f"{', marked ' + block.marker + ': ' + block.note if block.marker else ''})"
        for block, covered in how
        if covered is None
    ]
    assert not unaccounted, "neither run by a test nor marked a fragment: " + ", ".join(unaccounted)
    # The check does look: blocks of every kind were found and accounted for.
    kinds = {covered for _, covered in how}
    assert {"doctest", "example", "tested", "fragment"} <= kinds, kinds
    assert len(blocks) > 40, len(blocks)


def test_what_counts_as_run_or_marked() -> None:
    """The rules of the convention, on made-up blocks."""
    labels, examples = {("README.md", "readme-core")}, {"tutorial_client"}

    def how(**fields: object) -> str | None:
        values: dict[str, object] = {
            "page": "docs/x.rst",
            "line": 1,
            "kind": "code",
            "language": "console",
            "text": "$ heartbeat demo",
        }
        return _how_it_runs(Block(**{**values, **fields}), labels, examples)  # type: ignore[arg-type]

    assert how() is None  # a block nobody runs and nobody marked
    assert how(marker="fragment", note="") is None  # a fragment must say why
    assert how(marker="fragment", note="needs the internet") == "fragment"
    assert how(marker="tested", note="no-such-label") is None  # no test takes it
    assert how(kind="include", included="examples/tutorial_client.py") == "example"
    assert how(kind="include", included="examples/unused.py") is None
    assert how(kind="include", included="benchmarks/run.py") is None
    assert how(page="docs/_generated/cli.rst.inc") == "generated from the code at build time"
    assert how(kind="doctest", page="docs/tutorial.rst") is None  # no >>> on that page
    assert how(kind="doctest", page="heartbeat_core/state.py") is None  # docstrings: not run


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


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The whole site built once (``make docs`` in short, warnings as errors): its html/ and
    doctrees/ directories, and the build's stderr in build.log."""
    pytest.importorskip("sphinx")
    pytest.importorskip("furo")
    pytest.importorskip("myst_parser")
    out = tmp_path_factory.mktemp("site")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "sphinx",
            "-W",
            "--keep-going",
            "-q",
            "-b",
            "html",
            "-d",
            str(out / "doctrees"),
            str(DOCS),
            str(out / "html"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=ROOT,
    )
    (out / "build.log").write_text(f"exit {result.returncode}\n{result.stderr}")
    return out


def test_docs_build_without_warnings(site: Path) -> None:
    log = (site / "build.log").read_text()
    assert log.startswith("exit 0\n"), log[-4000:]
    assert (site / "html" / "explanation" / "timing-rules.html").is_file()
    assert (site / "html" / "_images" / "states.svg").is_file()


@pytest.mark.parametrize("package", ["heartbeat_asyncio", "heartbeat_threading"])
def test_listed_connection_attributes_exist(package: str) -> None:
    """The attributes the reference lists by hand are the ones the drivers set."""
    import importlib

    module = importlib.import_module(package)
    page = (DOCS / "reference" / f"{package.split('_')[1]}.rst").read_text()
    listed = re.findall(r"^   ``(\w+)``\n      ", page, re.M)
    assert len(listed) >= 5
    source = Path(module.__file__ or "").parent.joinpath("connection.py").read_text()
    source += (ROOT / "heartbeat_core" / "driver.py").read_text()  # what both drivers share
    for name in listed:
        assert re.search(rf"self\.{name}\b\s*(:[^=]+)?=", source), f"{package}: {name}"


def test_rules_named_in_docstrings_exist() -> None:
    """A rule named anywhere in the code's comments (which the docs include) is a real rule."""
    names = set(hbdocs.rule_names())
    for path in [*(ROOT / "heartbeat_core").glob("*.py"), *(ROOT / "adapters").rglob("*.py")]:
        for name in re.findall(r"rule ``([a-z-]+)``", path.read_text()):
            assert name in names, f"{_rel(path)} names an unknown rule {name!r}"
