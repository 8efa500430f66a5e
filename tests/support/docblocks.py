"""The code blocks of the documentation, found the way readers see them, and the convention
that says how each one is run (CONTRIBUTING.md, "Code blocks in the documentation").

Every block of README.md, CONTRIBUTING.md and the site (docs/, docstrings included) is one of:

* a doctest (``>>>``) on a page of docs/: ``tests/examples/test_docs.py`` runs the page;
* a file of examples/ shown with ``literalinclude``: a test imports or runs that file;
* text the site generates from the code at build time (docs/_generated/, e.g. the help of
  the ``heartbeat`` command);
* marked ``tested: LABEL``: a test finds it with :func:`doc_block` and runs it as written
  (or, for output and diagrams, compares it with what the code does);
* marked ``fragment: WHY``: not run, for the reason given.

A marker is a comment right before the block: ``.. tested: LABEL`` or ``.. fragment: WHY``
in reStructuredText (pages and docstrings), ``<!-- tested: LABEL -->`` or
``<!-- fragment: WHY -->`` in Markdown.

:func:`site_blocks` reads the blocks from the doctrees of a Sphinx build (so nothing the site
shows is missed: includes, docstrings, Markdown pages); :func:`markdown_blocks` reads the
Markdown files that are not part of the site. :func:`output_matches` compares a program's
output with the output a page shows.
"""

from __future__ import annotations

import ast
import contextlib
import fcntl
import os
import pickle
import re
import socket
import tempfile
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "DOC_PORT",
    "ROOT",
    "Block",
    "command_lines",
    "documented_port",
    "markdown_blocks",
    "output_matches",
    "site_blocks",
    "doc_block",
]

ROOT = Path(__file__).resolve().parents[2]

#: The port the documentation's commands use (``heartbeat serve``'s default).
DOC_PORT = 8765

_MARKER = re.compile(r"(tested|fragment):\s*(.*?)\s*", re.S)
_HTML_MARKER = re.compile(r"<!--\s*(tested|fragment):\s*(.*?)\s*-->\s*", re.S)


@dataclass(frozen=True)
class Block:
    """One code block as a reader sees it."""

    #: Where it is shown: a page (``docs/tutorial.rst``), or a module whose docstring it is.
    page: str
    #: The line of the block in its source, when known.
    line: int | None
    #: ``doctest`` (a ``>>>`` block), ``include`` (a file shown with literalinclude), ``code``.
    kind: str
    language: str
    text: str
    #: ``tested``, ``fragment`` or ``None``.
    marker: str | None = None
    #: The label of a tested block, the reason of a fragment.
    note: str = ""
    #: The file a ``literalinclude`` shows, relative to the repository.
    included: str | None = None

    @property
    def where(self) -> str:
        return f"{self.page}:{self.line}" if self.line else self.page


def _relative(path: str | Path) -> str:
    path = Path(path)
    if not path.is_absolute():
        path = ROOT / path
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def _marker(text: str, pattern: re.Pattern[str]) -> tuple[str | None, str]:
    found = pattern.fullmatch(text.strip())
    if found is None:
        return None, ""
    return found.group(1), " ".join(found.group(2).split())


# ------------------------------------------------------------------------ Markdown


def markdown_blocks(path: Path) -> list[Block]:
    """The fenced and indented code blocks of a Markdown file, with their markers."""
    from markdown_it import MarkdownIt

    tokens = MarkdownIt("commonmark").parse(path.read_text(encoding="utf-8"))
    blocks = []
    for index, token in enumerate(tokens):
        if token.type not in ("fence", "code_block"):
            continue
        marker, note = None, ""
        if index and tokens[index - 1].type == "html_block":
            marker, note = _marker(tokens[index - 1].content, _HTML_MARKER)
        blocks.append(
            Block(
                page=_relative(path),
                line=token.map[0] + 1 if token.map else None,
                kind="code",
                language=token.info.split()[0] if token.info.strip() else "",
                text=token.content,
                marker=marker,
                note=note,
            )
        )
    return blocks


# --------------------------------------------------------------------- the site


def _page_of(source: str | None) -> str:
    """``node.source`` as a repository path; a docstring's ``path:docstring of x`` is its file."""
    if not source:
        return "?"
    return _relative(source.split(":docstring of ")[0])


def site_blocks(doctrees: Path) -> list[Block]:
    """Every literal and doctest block of a Sphinx build, from its pickled doctrees."""
    from docutils import nodes

    def previous(node: nodes.Element) -> nodes.Node | None:
        if isinstance(node.parent, nodes.container) and "literal-block-wrapper" in node.parent.get(
            "classes", []
        ):
            node = node.parent  # a block with a caption: the marker comes before both
        parent = node.parent
        if parent is None:
            return None
        index = parent.index(node)
        return parent[index - 1] if index else None

    blocks = []
    for path in sorted(doctrees.rglob("*.doctree")):
        document = pickle.loads(path.read_bytes())
        for node in document.findall(
            lambda n: isinstance(n, (nodes.literal_block, nodes.doctest_block))
        ):
            marker, note = None, ""
            before = previous(node)
            if isinstance(before, nodes.comment):
                marker, note = _marker(before.astext(), _MARKER)
            elif isinstance(before, nodes.raw) and "html" in before.get("format", ""):
                marker, note = _marker(before.astext(), _HTML_MARKER)
            included = node.get("source")  # set by literalinclude
            if isinstance(node, nodes.doctest_block):
                kind = "doctest"
            elif included:
                kind = "include"
            else:
                kind = "code"
            blocks.append(
                Block(
                    page=_page_of(node.source or document.get("source")),
                    line=node.line,
                    kind=kind,
                    language=node.get("language") or "",
                    text=node.astext(),
                    marker=marker,
                    note=note,
                    included=_relative(included) if included else None,
                )
            )
    return blocks


# ------------------------------------------------------------- a tested block


def _rst_doc_block(text: str, label: str, page: str) -> str:
    """The body of the ``code-block`` right after ``.. tested: LABEL`` in reStructuredText."""
    lines = text.splitlines()
    marker = re.compile(rf"\s*\.\. tested: {re.escape(label)}\s*")
    starts = [i for i, line in enumerate(lines) if marker.fullmatch(line)]
    assert len(starts) == 1, f"{page}: {len(starts)} blocks marked 'tested: {label}'"
    i = starts[0] + 1
    while i < len(lines) and not lines[i].strip():
        i += 1
    directive = re.fullmatch(r"(\s*)\.\. code-block::.*", lines[i]) if i < len(lines) else None
    assert directive, f"{page}: 'tested: {label}' is not followed by a code-block"
    indent = len(directive.group(1))
    i += 1
    while i < len(lines) and re.fullmatch(r"\s+:[\w-]+:.*", lines[i]):
        i += 1  # the directive's options
    body: list[str] = []
    for line in lines[i:]:
        if line.strip() and len(line) - len(line.lstrip()) <= indent:
            break
        body.append(line)
    return textwrap.dedent("\n".join(body)).strip("\n") + "\n"


def doc_block(page: str, label: str) -> str:
    """The text of the block marked ``tested: LABEL`` on ``page`` (a path from the
    repository root: a Markdown file, a page of docs/, or a module whose docstring shows
    the block), exactly as the reader sees it."""
    path = ROOT / page
    if path.suffix == ".md":
        found = [b for b in markdown_blocks(path) if b.marker == "tested" and b.note == label]
        assert len(found) == 1, f"{page}: {len(found)} blocks marked 'tested: {label}'"
        return found[0].text
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".py":
        docstring = ast.get_docstring(ast.parse(text), clean=True)
        assert docstring, f"{page} has no module docstring"
        text = docstring
    return _rst_doc_block(text, label, page)


def command_lines(block: str, prompt: str = "$ ") -> list[str]:
    """The command lines of a block: the lines after ``prompt`` in a console session, or
    (``prompt=""``) every line of a shell block without its trailing comment."""
    if prompt:
        return [line[len(prompt) :] for line in block.splitlines() if line.startswith(prompt)]
    commands = []
    for line in block.splitlines():
        command = line.split("  #")[0].strip()
        if command and not line.lstrip().startswith("#"):
            commands.append(command)
    return commands


def session(block: str, prompt: str = "$ ") -> list[tuple[str, list[str]]]:
    """A console session: each command with the output lines the page shows after it."""
    steps: list[tuple[str, list[str]]] = []
    for line in block.splitlines():
        if line.startswith(prompt):
            steps.append((line[len(prompt) :], []))
        elif steps:
            steps[-1][1].append(line)
    return steps


# ---------------------------------------------------------------- output matching

#: What may differ between the output a page shows and a new run: a line that is only
#: ``...`` stands for any number of lines; in a line, ``...`` stands for any text, a
#: number with a decimal point (a time) for any such number, and a peer address
#: ``('127.0.0.1', PORT)`` for any port (clients get a new one every run).
_VARYING = re.compile(r"(\.\.\.|\d+\.\d+|\('127\.0\.0\.1', \d+\))")


def _line_pattern(expected: str) -> re.Pattern[str]:
    parts = _VARYING.split(expected)
    regex = []
    for index, part in enumerate(parts):
        if index % 2 == 0:
            regex.append(re.escape(part))
        elif part == "...":
            regex.append(".*")
        elif part.startswith("("):
            regex.append(r"\('127\.0\.0\.1', \d+\)")
        else:
            regex.append(r"\d+\.\d+")
    return re.compile("".join(regex))


def output_matches(expected: list[str] | str, actual: list[str]) -> bool:
    """Whether ``actual`` (a program's output lines) is what a page shows as ``expected``,
    up to the parts that vary between runs (see ``_VARYING``)."""
    if isinstance(expected, str):
        expected = expected.splitlines()
    patterns = [None if line.strip() == "..." else _line_pattern(line) for line in expected]

    def match(p: int, a: int) -> bool:
        if p == len(patterns):
            return a == len(actual)
        pattern = patterns[p]
        if pattern is None:
            return any(match(p + 1, skip) for skip in range(a, len(actual) + 1))
        return a < len(actual) and pattern.fullmatch(actual[a]) is not None and match(p + 1, a + 1)

    return match(0, 0)


# ------------------------------------------------------------------- the port


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


@contextlib.contextmanager
def documented_port(timeout: float = 120.0) -> Iterator[int]:
    """Hold :data:`DOC_PORT` for a test that runs the documentation's commands as written:
    a lock file serialises test runs on this machine that need it (two checkouts testing at
    once), and the port must be free before the test starts (waited for, bounded)."""
    lock_path = Path(tempfile.gettempdir()) / f"heartbeat-docs-port-{DOC_PORT}.lock"
    with open(lock_path, "a+") as lock:
        end = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > end:
                    raise AssertionError(
                        f"another test run held {lock_path} for {timeout:g} s"
                    ) from None
                time.sleep(0.2)
        try:
            while not _port_free(DOC_PORT):
                if time.monotonic() > end:
                    raise AssertionError(
                        f"port {DOC_PORT}, which the documented commands use, stayed busy "
                        f"for {timeout:g} s (pid {os.getpid()} waited)"
                    )
                time.sleep(0.2)
            yield DOC_PORT
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
