"""Frozen slotted dataclasses made without their generated ``__init__``.

A frozen dataclass's ``__init__`` sets each field through ``object.__setattr__``,
which makes a small event or action cost about a microsecond. The core makes a few
on every heartbeat and every opening handshake; :func:`fast_init` makes the same
object (equal, same repr, still frozen) by setting the slots' own descriptors, in a
quarter to a third of the time. Its builders take the fields positionally, in
declaration order, and check nothing: they are for the core's own, well-typed calls.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import fields
from typing import Any, TypeVar

__all__ = ["fast_init"]

_T = TypeVar("_T")


def fast_init(cls: type[_T], *names: str) -> Callable[..., _T]:
    """A positional ``cls(name=value, ...)`` for a frozen slotted dataclass whose fields
    are exactly ``names``, in that order."""
    declared = tuple(field.name for field in fields(cls))  # type: ignore[arg-type]
    if declared != names:
        raise TypeError(f"{cls.__name__} has the fields {declared}, not {names}")
    new = object.__new__
    setters = tuple(cls.__dict__[name].__set__ for name in names)  # the slots' descriptors
    if len(setters) == 1:
        (set_a,) = setters

        def build1(a: Any) -> _T:
            obj = new(cls)
            set_a(obj, a)
            return obj

        return build1
    if len(setters) == 2:
        set_a, set_b = setters

        def build2(a: Any, b: Any) -> _T:
            obj = new(cls)
            set_a(obj, a)
            set_b(obj, b)
            return obj

        return build2
    if len(setters) == 4:
        set_a, set_b, set_c, set_d = setters

        def build4(a: Any, b: Any, c: Any, d: Any) -> _T:
            obj = new(cls)
            set_a(obj, a)
            set_b(obj, b)
            set_c(obj, c)
            set_d(obj, d)
            return obj

        return build4
    # (A loop over the setters would cost what it saves: each arity is written out.)
    raise TypeError(f"fast_init() builds classes of 1, 2 or 4 fields, not {len(names)}")
