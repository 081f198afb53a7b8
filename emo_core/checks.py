"""Argument checks shared by emo_core's algorithms and the nodes: one wording for a bad number, naming it."""

from __future__ import annotations

import math


def finite_number(name: str, value) -> float:
    """``value`` as a finite float, or a ValueError naming ``name`` (NaN compares False with everything, so a NaN
    setting would silently change what a loop does)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name}: {value!r} is not a number") from None
    if not math.isfinite(number):
        raise ValueError(f"{name}: {value} is not a finite number")
    return number
