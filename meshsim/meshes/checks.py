"""Validation of scalar mesh-building arguments, shared by the sphere modules.

Each check returns the value in its canonical type or raises ValueError naming the
argument, the expected range and what it got. numpy only.
"""

from __future__ import annotations

import math

import numpy as np


def check_int(name: str, value, low: int, high: int | None = None) -> int:
    """`value` as an int in [low, high]; raises ValueError naming `name` otherwise."""
    ok = isinstance(value, int | np.integer) and not isinstance(value, bool)
    if not ok or value < low or (high is not None and value > high):
        bound = f"in [{low}, {high}]" if high is not None else f">= {low}"
        raise ValueError(f"{name}: expected an int {bound}, got {value!r}")
    return int(value)


def check_positive(name: str, value) -> float:
    """`value` as a finite float > 0; raises ValueError naming `name` otherwise."""
    ok = isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool)
    if not ok or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name}: expected a finite number > 0, got {value!r}")
    return float(value)
