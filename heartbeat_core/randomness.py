"""Placeholder until the randomness module lands (see branch wt-corenew)."""

from __future__ import annotations

import random
from collections.abc import Callable

__all__ = ["default_random"]


def default_random(seed: int | float | str | bytes | None = None) -> Callable[[], float]:
    return random.Random(seed).random
