"""The exception tree drawn in heartbeat_core/errors.py's docstring (shown in the reference)
is the real class hierarchy."""

from __future__ import annotations

import inspect
import pathlib
import re

from heartbeat_core import errors
from tests.support.docblocks import _rst_doc_block as rst_doc_block
from tests.support.docblocks import doc_block


def test_the_drawn_tree_is_the_class_hierarchy() -> None:
    if (pathlib.Path(__file__).resolve().parents[2] / "heartbeat_core" / "errors.py").exists():
        drawn = doc_block("heartbeat_core/errors.py", "errors-tree").splitlines()
    else:  # the version matrix: the installed wheel, with no source tree beside the tests
        docstring = inspect.cleandoc(errors.__doc__ or "")
        drawn = rst_doc_block(docstring, "errors-tree", "heartbeat_core/errors.py").splitlines()
    parents: list[type] = []  # the chain of classes above the current line
    named = set()
    for line in drawn:
        found = re.fullmatch(r"((?:[│ ] {3}|[├└]── )*)(\w+)( \(also an? (\w+)\))?.*", line)
        assert found, line
        depth = len(found.group(1)) // 4
        cls = getattr(errors, found.group(2))
        del parents[depth:]
        assert len(parents) == depth, line
        if parents:
            assert cls.__bases__[0] is parents[-1], line
        if found.group(4):  # "(also a ValueError)"
            assert found.group(4) in {base.__name__ for base in cls.__mro__}, line
        parents.append(cls)
        named.add(cls)
    raised = {
        obj
        for obj in vars(errors).values()
        if isinstance(obj, type) and issubclass(obj, errors.HeartbeatError)
    }
    assert named == raised  # every exception the module defines is drawn, and no other
