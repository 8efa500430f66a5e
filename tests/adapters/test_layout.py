"""The shape the design asks of adapters/, pinned: every module reads in one sitting (at
most 400 lines), no adapter compares times (when and whether are the core's decisions:
its deadlines, ``TimerWheel``, ``RateLimit``...), and none checks a loop's or a
transport's class (any asyncio-compatible loop, uvloop included, must work).

Times are recognised by name: a clock read (``loop.time()``, ``time.monotonic()``,
``time.perf_counter()``) or a name such as ``now``, ``deadline``, ``when``, ``*_at``,
``ttl``, ``horizon``, ``elapsed``. A new module that needs a comparison of times has a
decision to hand to the core.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ADAPTERS = Path(__file__).resolve().parents[2] / "adapters"
if not ADAPTERS.is_dir():  # the version matrix runs the tests against the installed wheel
    pytest.skip("the source tree's layout is checked in the checkout", allow_module_level=True)
MODULES = sorted(ADAPTERS.rglob("*.py"))
CLOCKS = {"time", "monotonic", "perf_counter", "monotonic_ns", "time_ns"}
WORDS = {"now", "deadline", "when", "ttl", "horizon", "elapsed", "expires", "expiry", "timeout_at"}


def _name(node: ast.AST) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return None


def _is_time(node: ast.AST) -> bool:
    if isinstance(node, ast.Call):
        return _name(node.func) in CLOCKS
    if isinstance(node, ast.BinOp):
        return _is_time(node.left) or _is_time(node.right)
    if isinstance(node, ast.Subscript):
        return _is_time(node.value)
    name = (_name(node) or "").lower().strip("_")
    parts = set(name.split("_"))
    return bool(parts & WORDS) or name.endswith("_at") or "deadline" in name


def _time_comparisons(tree: ast.AST) -> list[str]:
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Compare):
            continue
        if all(isinstance(op, (ast.Is, ast.IsNot, ast.In, ast.NotIn)) for op in node.ops):
            continue  # `deadline is None` says nothing about time
        if any(_is_time(operand) for operand in (node.left, *node.comparators)):
            found.append(f"line {node.lineno}: {ast.unparse(node)}")
    return found


def _class_checks_on_loops(tree: ast.AST) -> list[str]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and _name(node.func) in {"isinstance", "issubclass"}:
            text = ast.unparse(node.args[1]) if len(node.args) > 1 else ""
            if "Loop" in text or "Transport" in text:
                found.append(f"line {node.lineno}: {ast.unparse(node)}")
    return found


def _id(path: Path) -> str:
    return str(path.relative_to(ADAPTERS))


def test_the_modules_are_found() -> None:
    assert len(MODULES) > 20
    assert any(path.name == "connection.py" for path in MODULES)


@pytest.mark.parametrize("path", MODULES, ids=_id)
def test_a_module_reads_in_one_sitting(path: Path) -> None:
    lines = len(path.read_text(encoding="utf-8").splitlines())
    assert lines <= 400, f"{_id(path)} has {lines} lines: split it by idea"


@pytest.mark.parametrize("path", MODULES, ids=_id)
def test_no_adapter_compares_times(path: Path) -> None:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    assert _time_comparisons(tree) == [], "a decision about time: the core's to take"


@pytest.mark.parametrize("path", MODULES, ids=_id)
def test_no_adapter_checks_a_loops_class(path: Path) -> None:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    assert _class_checks_on_loops(tree) == [], "duck typing: any asyncio-compatible loop"


@pytest.mark.parametrize(
    ("source", "flagged"),
    [
        ("if loop.time() > deadline: pass", True),
        ("x = [t for t in ts if t >= horizon]", True),
        ("while now - row.closed > self.closed_ttl: pass", True),
        ("if self.wake_at <= 3: pass", True),
        ("if deadline is None: pass", False),
        ("if conn.closed_by == 'remote': pass", False),
        ("if attempt == attempts - 1: pass", False),
    ],
)
def test_the_time_check_itself(source: str, flagged: bool) -> None:
    assert bool(_time_comparisons(ast.parse(source))) is flagged
