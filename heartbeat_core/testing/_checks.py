"""The testing kit's one check of its numbers (times, limits, rates)."""

from __future__ import annotations

import math

from heartbeat_core.errors import ConfigError

__all__ = ["number"]


def number(name: str, value: object, *, positive: bool = False, unit: str = "seconds") -> float:
    """``value`` as a float, if it is a finite int or float ``>= 0`` (``> 0`` with
    ``positive``); else :class:`~heartbeat_core.ConfigError` naming ``name``."""
    if (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and math.isfinite(value)
        and (value > 0 if positive else value >= 0)
    ):
        return float(value)
    bound = "> 0" if positive else ">= 0"
    what = f"a finite number of {unit}" if unit else "a finite number"
    raise ConfigError(f"{name} must be {what} {bound}, got {value!r}")
