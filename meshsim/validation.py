"""Host-side checks of scalar arguments at public boundaries, written once.

Each `check_*` returns the value in its canonical Python type or raises ValueError
naming the argument, what it expected and what it got::

    check_int("batch_size", 0, minimum=1)
    # ValueError: batch_size: expected an int ≥ 1, got 0

The `is_*` predicates apply the same rules for call sites whose message has another
form (a TypeError for a wrong type, or "must be ..." wording). Rules shared by all:
`bool` is never a number (`True` is an `int` in Python, but never a count); numpy
integers and floats are accepted. Not jit-safe: arguments must be concrete host values.

numpy and the standard library only.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = ["check_int", "check_number", "is_int", "is_number"]


def _bounds(minimum: Any, greater_than: Any, maximum: Any) -> str:
    """The range in words: "≥ 1", "> 0", "≤ 9", "in [0, 10]", "in (0, 1]" or ""."""
    if minimum is not None and greater_than is not None:
        raise TypeError("pass at most one of minimum and greater_than")
    if minimum is None and greater_than is None:
        return "" if maximum is None else f"≤ {maximum}"
    if maximum is None:
        return f"≥ {minimum}" if minimum is not None else f"> {greater_than}"
    low = f"[{minimum}" if minimum is not None else f"({greater_than}"
    return f"in {low}, {maximum}]"


def _in_bounds(value: Any, minimum: Any, greater_than: Any, maximum: Any) -> bool:
    return (
        (minimum is None or value >= minimum)
        and (greater_than is None or value > greater_than)
        and (maximum is None or value <= maximum)
    )


def _expected(kind: str, bounds: str, optional: bool) -> str:
    return f"{kind}{' ' + bounds if bounds else ''}{' or None' if optional else ''}"


def is_int(value: Any, *, minimum: int | None = None, maximum: int | None = None) -> bool:
    """Whether `value` is an `int` or numpy integer (not a `bool`) in [minimum, maximum]."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        return False
    return _in_bounds(value, minimum, None, maximum)


def is_number(
    value: Any,
    *,
    minimum: float | None = None,
    greater_than: float | None = None,
    maximum: float | None = None,
    finite: bool = True,
) -> bool:
    """Whether `value` is a real number (int, float, numpy integer or float; not a `bool`),
    finite unless `finite=False`, ≥ `minimum`, > `greater_than` and ≤ `maximum`."""
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        return False
    if finite and not math.isfinite(value):
        return False
    return _in_bounds(value, minimum, greater_than, maximum)


def check_int(
    name: str,
    value: Any,
    *,
    minimum: int | None = None,
    maximum: int | None = None,
    optional: bool = False,
    expected: str | None = None,
) -> int | None:
    """`value` as a Python int in [minimum, maximum] (either bound may be None).

    Args:
      name: the argument, as the message names it (e.g. `"batch_size"`).
      value: what the caller passed; an `int` or numpy integer, never a `bool`.
      minimum: smallest allowed value (inclusive).
      maximum: largest allowed value (inclusive).
      optional: accept None (returned as None).
      expected: what the message says was expected, where a call site has its own
        words (`"a positive int"`); default from the bounds: `"an int ≥ 1"`,
        `"an int in [0, 10]"`, with `" or None"` when optional.

    Returns:
      `int(value)`, or None for an optional None.

    Raises:
      ValueError: `"{name}: expected {expected}, got {value!r}"` for a wrong type or a
        value out of range.
    """
    if value is None and optional:
        return None
    if not is_int(value, minimum=minimum, maximum=maximum):
        if expected is None:
            expected = _expected("an int", _bounds(minimum, None, maximum), optional)
        raise ValueError(f"{name}: expected {expected}, got {value!r}")
    return int(value)


def check_number(
    name: str,
    value: Any,
    *,
    minimum: float | None = None,
    greater_than: float | None = None,
    maximum: float | None = None,
    optional: bool = False,
    expected: str | None = None,
) -> float | None:
    """`value` as a finite Python float within the bounds (each may be None).

    Args:
      name: the argument, as the message names it (e.g. `"dt"`).
      value: what the caller passed; an int, float or numpy number, never a `bool`.
      minimum: smallest allowed value (inclusive); at most one of `minimum` and
        `greater_than`.
      greater_than: exclusive lower bound (`greater_than=0` for a positive number).
      maximum: largest allowed value (inclusive).
      optional: accept None (returned as None).
      expected: the message's own words for what was expected; default from the
        bounds: `"a finite number > 0"`, `"a finite number ≥ 0 or None"`.

    Returns:
      `float(value)`, or None for an optional None.

    Raises:
      ValueError: `"{name}: expected {expected}, got {value!r}"` for a wrong type, a
        NaN or infinity, or a value out of range.
    """
    bounds = _bounds(minimum, greater_than, maximum)  # rejects minimum with greater_than
    if value is None and optional:
        return None
    if not is_number(value, minimum=minimum, greater_than=greater_than, maximum=maximum):
        if expected is None:
            expected = _expected("a finite number", bounds, optional)
        raise ValueError(f"{name}: expected {expected}, got {value!r}")
    return float(value)
