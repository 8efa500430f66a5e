"""The default random source, for jitter: the only core module that imports ``random``.

The core never draws random numbers on its own: whatever needs them (jittered
heartbeat intervals, :class:`~heartbeat_core.Backoff` with full jitter) takes a
``random`` callable returning floats in [0, 1). :func:`default_random` makes
one, so a driver need not import ``random`` itself, and a test can seed it.
Whatever is given no source draws from one shared default source.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import TypeAlias

from heartbeat_core.errors import ConfigError

__all__ = ["RandomSource", "default_random"]

#: ``random() -> float`` in [0, 1): what every ``random=`` parameter takes.
RandomSource: TypeAlias = Callable[[], float]


def default_random(seed: int | float | str | bytes | None = None) -> RandomSource:
    """A new, independent source of floats in [0, 1): ``random.Random(seed).random``.

    The same ``seed`` gives the same sequence; None seeds from the operating
    system. Not for secrets. Raises :class:`~heartbeat_core.errors.ConfigError`
    when ``seed`` is not an int, float, str, bytes or None.
    """
    if seed is not None and not isinstance(seed, (int, float, str, bytes)):
        raise ConfigError(
            f"seed must be an int, float, str, bytes or None, got {type(seed).__name__} "
            f"{seed!r}: pass e.g. seed=1 for a reproducible sequence"
        )
    return random.Random(seed).random


# The source of everything given none (made at first use: a Mersenne Twister's state
# is about 2.5 KB, too much to keep per connection).
_shared: RandomSource | None = None


def shared_random() -> RandomSource:
    """The process's default source, for whatever was given no ``random``: one for
    all, seeded from the operating system at first use."""
    global _shared
    if _shared is None:
        _shared = default_random()
    return _shared
