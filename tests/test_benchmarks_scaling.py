"""The pure logic of experiments/benchmarks/scaling_memory.py: the largest-mesh search
on fake memory functions and the `--rows` parser. No mesh is built, nothing compiles."""

import pytest

from experiments.benchmarks.scaling_memory import largest_fitting, parse_rows


def _recording(edge):
    """fits(n) = n ≤ edge, and the sizes it was asked about."""
    calls = []

    def fits(n):
        calls.append(n)
        return n <= edge

    return fits, calls


@pytest.mark.parametrize("edge", [1500, 16_000, 16_001, 123_457, 3_000_000])
def test_the_search_brackets_the_edge_within_the_tolerance(edge):
    fits, calls = _recording(edge)
    lo, hi = largest_fitting(fits, 16_000, tolerance=0.05)
    assert lo <= edge < hi
    assert hi - lo <= max(0.05 * lo, 1)
    assert len(calls) == len(set(calls))  # no size is compiled twice


def test_a_fine_tolerance_finds_the_exact_edge_in_logarithmic_probes():
    # A memory model like the measured one: 12 kB per node plus 100 MiB, a 2 GiB budget.
    budget, per_node, fixed = 2 * 2**30, 12_000, 100 * 2**20
    edge = (budget - fixed) // per_node
    calls = []

    def fits(n):
        calls.append(n)
        return per_node * n + fixed <= budget

    assert largest_fitting(fits, 1000, tolerance=1e-9) == (edge, edge + 1)
    assert len(calls) <= 2 * (edge.bit_length() + 1)  # doubling, then halving the gap


def test_the_search_stops_at_the_caps():
    fits, calls = _recording(10**9)
    assert largest_fitting(fits, 16_000, max_size=100_000) == (100_000, None)
    assert max(calls) == 100_000
    fits, _ = _recording(500)  # below min_size: nothing fits
    assert largest_fitting(fits, 16_000, min_size=1000) == (None, 1000)


def test_the_search_rejects_bad_arguments():
    with pytest.raises(ValueError, match="tolerance"):
        largest_fitting(lambda n: True, 1000, tolerance=0)
    with pytest.raises(ValueError, match="max_size"):
        largest_fitting(lambda n: True, 1000, max_size=10)


def test_rows_parse_and_name_the_bad_item():
    assert parse_rows("128k:2:1:3, 1m:1:8:0") == [(128_000, 2, 1, 3), (1_000_000, 1, 8, 0)]
    for bad in ("128k:2:1", "128k:2:2:1", "128k:0:1:1", "big:1:1:1", " , "):
        with pytest.raises(ValueError, match="--rows"):
            parse_rows(bad)
