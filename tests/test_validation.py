"""The shared host-side checks of `meshsim.validation`: the type rules (bools are never
numbers, numpy scalars are), the bounds, optional None and the exact message text
that call sites across meshsim (and their tests) rely on."""

import math
import re

import numpy as np
import pytest

from meshsim.validation import check_int, check_number, is_int, is_number


@pytest.mark.parametrize("value", [0, 7, -3, np.int8(5), np.int64(2**40), np.uint16(3)])
def test_is_int_accepts_python_and_numpy_integers(value):
    assert is_int(value)


@pytest.mark.parametrize(
    "value", [True, False, np.bool_(True), 1.0, np.float32(2), "3", None, [1], np.array(1)]
)
def test_is_int_rejects_bools_floats_strings_and_arrays(value):
    # A 0-d array is not a scalar argument: callers pass ints, not arrays.
    assert not is_int(value)


def test_is_int_bounds_are_inclusive():
    assert is_int(1, minimum=1) and not is_int(0, minimum=1)
    assert is_int(10, maximum=10) and not is_int(11, maximum=10)
    assert is_int(-1, minimum=-1, maximum=-1)


@pytest.mark.parametrize("value", [0, 2.5, -1e300, np.float32(0.5), np.float64(3), np.int32(4)])
def test_is_number_accepts_real_scalars(value):
    assert is_number(value)


@pytest.mark.parametrize("value", [True, np.bool_(False), "1", None, 1j, [0.5]])
def test_is_number_rejects_non_numbers(value):
    assert not is_number(value)


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, np.float32("nan")])
def test_is_number_is_finite_unless_told_otherwise(value):
    assert not is_number(value)
    assert is_number(value, finite=False)


def test_is_number_bounds():
    assert is_number(0, minimum=0) and not is_number(0, greater_than=0)
    assert is_number(1e-300, greater_than=0)
    assert is_number(1, maximum=1) and not is_number(1.0000001, maximum=1)


def test_check_int_returns_a_python_int():
    out = check_int("n", np.int64(3), minimum=1)
    assert out == 3 and type(out) is int
    assert type(check_int("n", 5)) is int


@pytest.mark.parametrize(
    "kwargs, value, message",
    [
        (dict(minimum=1), 0, "batch_size: expected an int ≥ 1, got 0"),
        (dict(minimum=0), -1, "batch_size: expected an int ≥ 0, got -1"),
        (dict(minimum=1), True, "batch_size: expected an int ≥ 1, got True"),
        (dict(minimum=1), 2.0, "batch_size: expected an int ≥ 1, got 2.0"),
        (dict(minimum=1), "4", "batch_size: expected an int ≥ 1, got '4'"),
        (dict(minimum=1), None, "batch_size: expected an int ≥ 1, got None"),
        (dict(minimum=0, maximum=10), 11, "batch_size: expected an int in [0, 10], got 11"),
        (dict(maximum=3), 4, "batch_size: expected an int ≤ 3, got 4"),
        (dict(), 1.5, "batch_size: expected an int, got 1.5"),
        (dict(minimum=0, optional=True), -1, "batch_size: expected an int ≥ 0 or None, got -1"),
        (
            dict(minimum=1, expected="a positive int"),
            0,
            "batch_size: expected a positive int, got 0",
        ),
        (
            dict(minimum=1, optional=True, expected="a positive int"),
            False,
            "batch_size: expected a positive int, got False",
        ),
    ],
)
def test_check_int_messages(kwargs, value, message):
    # The whole message is pinned: call sites and their tests match on this text.
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        check_int("batch_size", value, **kwargs)


def test_check_int_optional_none():
    assert check_int("n", None, minimum=1, optional=True) is None
    with pytest.raises(ValueError, match=r"^n: expected an int ≥ 1, got None$"):
        check_int("n", None, minimum=1)


def test_check_int_accepts_the_bounds_themselves():
    assert check_int("n", 1, minimum=1) == 1
    assert check_int("splits", np.int16(10), minimum=0, maximum=10) == 10


def test_check_number_returns_a_python_float():
    out = check_number("dt", np.float32(0.5), greater_than=0)
    assert out == 0.5 and type(out) is float
    assert type(check_number("dt", 2, minimum=0)) is float


@pytest.mark.parametrize(
    "kwargs, value, message",
    [
        (dict(greater_than=0), 0, "dt: expected a finite number > 0, got 0"),
        (dict(greater_than=0), -1.5, "dt: expected a finite number > 0, got -1.5"),
        (dict(greater_than=0), math.nan, "dt: expected a finite number > 0, got nan"),
        (dict(greater_than=0), math.inf, "dt: expected a finite number > 0, got inf"),
        (dict(greater_than=0), True, "dt: expected a finite number > 0, got True"),
        (dict(greater_than=0), "1", "dt: expected a finite number > 0, got '1'"),
        (dict(minimum=0), -1, "dt: expected a finite number ≥ 0, got -1"),
        (dict(greater_than=0, maximum=1), 2, "dt: expected a finite number in (0, 1], got 2"),
        (dict(minimum=0, maximum=1), -0.5, "dt: expected a finite number in [0, 1], got -0.5"),
        (dict(), math.nan, "dt: expected a finite number, got nan"),
        (
            dict(greater_than=0, optional=True),
            0.0,
            "dt: expected a finite number > 0 or None, got 0.0",
        ),
        (dict(greater_than=0, expected="a time step"), 0, "dt: expected a time step, got 0"),
    ],
)
def test_check_number_messages(kwargs, value, message):
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        check_number("dt", value, **kwargs)


def test_check_number_optional_none():
    assert check_number("dt", None, greater_than=0, optional=True) is None
    with pytest.raises(ValueError, match=r"^dt: expected a finite number > 0, got None$"):
        check_number("dt", None, greater_than=0)


def test_check_number_refuses_two_lower_bounds():
    # A programming error, raised even for a valid value.
    with pytest.raises(TypeError, match="at most one of minimum and greater_than"):
        check_number("dt", 1.0, minimum=0, greater_than=0)
