"""Checks on loader options; each failure is a `SpecError` keyed `data.<option>`."""

from __future__ import annotations

import numpy as np

from descent.engine.errors import SpecError


def whole_number(key: str, value, low: int) -> int:
    """`value` as an int if it is a whole number >= `low` (booleans are not numbers)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise SpecError(key, f"must be a whole number >= {low}, got {value!r}")
    return int(value)


def fraction(key: str, value) -> float:
    """`value` as a float strictly between 0 and 1."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating)) or not 0.0 < value < 1.0:
        raise SpecError(key, f"must be a number between 0 and 1 (exclusive), got {value!r}")
    return float(value)
