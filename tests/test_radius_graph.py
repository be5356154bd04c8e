"""`radius_graph`: the pairs of scipy's kd-tree, both ways, padded, with an honest overflow."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.spatial import cKDTree

from meshsim.graph import RadiusGraph, radius_graph, suggest_capacity

N = 10_000
NEIGHBOURS = 15  # LagrangeBench-like: ~15 others within the radius


def _radius(n: int, dim: int) -> float:
    ball = {2: np.pi, 3: 4 * np.pi / 3}[dim]
    return float((NEIGHBOURS / (n * ball)) ** (1 / dim))


def _edges(graph: RadiusGraph) -> set[tuple[int, int]]:
    m = np.asarray(graph.mask)
    return set(zip(np.asarray(graph.senders)[m].tolist(), np.asarray(graph.receivers)[m].tolist()))


def _both_ways(pairs) -> set[tuple[int, int]]:
    pairs = [tuple(p) for p in np.asarray(pairs).reshape(-1, 2).tolist()]
    return set(pairs) | {(j, i) for i, j in pairs}


def _reference(x: np.ndarray, radius: float, periodic: tuple[bool, ...]) -> set:
    """scipy's pairs in the unit box; boxsize 0 on an axis means not periodic."""
    boxsize = [1.0 if p else 0.0 for p in periodic] if any(periodic) else None
    tree = cKDTree(x.astype(np.float64), boxsize=boxsize)
    return _both_ways(tree.query_pairs(radius, output_type="ndarray"))


def _check_layout(graph: RadiusGraph, n: int, fill: int) -> None:
    """Real edges first, sorted by (receiver, sender), padding = fill, count = real edges."""
    m = np.asarray(graph.mask)
    k = int(m.sum())
    assert m[:k].all() and not m[k:].any()
    assert k == min(int(graph.count), m.shape[0])
    r, s = np.asarray(graph.receivers), np.asarray(graph.senders)
    assert (r[k:] == fill).all() and (s[k:] == fill).all()
    key = r[:k].astype(np.int64) * n + s[:k]
    assert (np.diff(key) > 0).all()  # strictly increasing: sorted and no duplicates
    assert graph.senders.dtype == jnp.int32 and graph.receivers.dtype == jnp.int32


@pytest.mark.parametrize(
    "dim, periodic",
    # Fully periodic 2D and non-periodic 3D are also covered by the smaller tests below.
    [(2, (False, False)), (3, (True, True, True)), (2, (True, False)), (3, (False, True, True))],
)
def test_pairs_equal_scipy_on_10k_particles(dim, periodic):
    x = np.random.default_rng(dim).random((N, dim), dtype=np.float32)
    radius = _radius(N, dim)
    want = _reference(x, radius, periodic)
    capacity = suggest_capacity(len(want))
    fn = jax.jit(
        lambda x: radius_graph(x, radius, capacity=capacity, box=[[0, 1]] * dim, periodic=periodic)
    )
    graph = fn(x)
    edges = _edges(graph)
    assert edges == want
    assert edges == {(j, i) for i, j in edges} and all(i != j for i, j in edges)  # symmetric
    assert int(graph.count) == len(want) and not bool(graph.overflow)
    _check_layout(graph, N, fill=N - 1)


@pytest.mark.parametrize("dim", [2, 3])
def test_without_box_and_without_jit(dim):
    # No box: the grid is anchored at the lowest particle; positions beyond [0, 1].
    x = 3.0 * np.random.default_rng(5).random((2000, dim), dtype=np.float32) - 1.0
    radius = 0.15
    want = _reference(x, radius, (False,) * dim)
    graph = radius_graph(jnp.asarray(x), radius, capacity=len(want) + 7)
    assert _edges(graph) == want
    _check_layout(graph, 2000, fill=1999)
    # A box smaller than the cloud: outside particles share the edge cells, still exact.
    boxed = radius_graph(x, radius, capacity=len(want) + 7, box=[[0.0, 1.0]] * dim)
    assert _edges(boxed) == want


def test_hand_checked_square():
    # Unit square corners and its centre; radius 1 (inclusive): the 4 sides (length 1)
    # and the 4 half-diagonals (0.707) are edges, the diagonals (1.414) are not.
    x = jnp.array([[0, 0], [1, 0], [1, 1], [0, 1], [0.5, 0.5]], jnp.float32)
    graph = radius_graph(x, 1.0, capacity=20, box=[[-1, 2], [-1, 2]])
    undirected = {(0, 1), (1, 2), (2, 3), (0, 3), (0, 4), (1, 4), (2, 4), (3, 4)}
    assert _edges(graph) == _both_ways(list(undirected))
    assert int(graph.count) == 16
    assert np.asarray(graph.receivers)[:4].tolist() == [0, 0, 0, 1]
    assert np.asarray(graph.senders)[:4].tolist() == [1, 3, 4, 0]
    assert np.asarray(graph.senders)[16:].tolist() == [4] * 4  # fill = N - 1


def test_hand_checked_periodic_minimum_image():
    # Box [0, 1)²: 0.05 and 0.95 are 0.1 apart through the wall, 0.9 apart inside it.
    x = jnp.array([[0.05, 0.5], [0.95, 0.5], [0.5, 0.5]], jnp.float32)
    box = [[0, 1], [0, 1]]
    periodic = radius_graph(x, 0.2, capacity=8, box=box, periodic=True)
    assert _edges(periodic) == {(0, 1), (1, 0)}
    only_y = radius_graph(x, 0.2, capacity=8, box=box, periodic=(False, True))
    assert _edges(only_y) == set() and int(only_y.count) == 0


@pytest.mark.parametrize("cells", [1, 2])  # box length 2.0 and 2.5 radii: 1 or 2 cells per axis
def test_small_periodic_grids_visit_each_cell_once(cells):
    x = np.random.default_rng(7).random((300, 2), dtype=np.float32)
    radius = {1: 0.5, 2: 0.4}[cells]
    graph = radius_graph(x, radius, capacity=300 * 299, box=[[0, 1]] * 2, periodic=True)
    want = _reference(x, radius, (True, True))
    assert _edges(graph) == want and int(graph.count) == len(want)


def test_masked_nodes_get_no_edges():
    x = np.random.default_rng(1).random((3000, 2), dtype=np.float32)
    keep = np.random.default_rng(2).random(3000) < 0.7
    radius = _radius(3000, 2)
    graph = jax.jit(
        lambda x, m: radius_graph(x, radius, capacity=40_000, box=[[0, 1]] * 2, node_mask=m)
    )(x, keep)
    idx = np.flatnonzero(keep)
    want = {(idx[i], idx[j]) for i, j in _reference(x[keep], radius, (False, False))}
    assert _edges(graph) == want
    got = np.asarray(graph.senders)[np.asarray(graph.mask)]
    assert keep[got].all()


def test_overflow_is_flagged_and_count_is_true():
    x = np.random.default_rng(3).random((2000, 3), dtype=np.float32)
    radius = _radius(2000, 3)
    want = _reference(x, radius, (True,) * 3)
    graph = radius_graph(x, radius, capacity=100, box=[[0, 1]] * 3, periodic=True, fill=2000)
    assert bool(graph.overflow) and not bool(graph.cell_overflow)
    assert int(graph.count) == len(want)  # the true count, beyond the capacity
    assert _edges(graph) <= want and len(_edges(graph)) == 100
    _check_layout(graph, 2000, fill=2000)
    grown = suggest_capacity(int(graph.count))
    assert grown >= 1.25 * len(want) and grown % 256 == 0
    again = radius_graph(x, radius, capacity=grown, box=[[0, 1]] * 3, periodic=True)
    assert not bool(again.overflow) and _edges(again) == want


def test_max_per_cell_overflow_sets_overflow():
    x = np.zeros((10, 2), np.float32)  # ten particles in one cell: 90 directed pairs
    capped = radius_graph(x, 0.1, capacity=128, box=[[0, 1]] * 2, max_per_cell=4)
    assert bool(capped.cell_overflow) and bool(capped.overflow)
    assert int(capped.max_occupancy) == 10 and int(capped.count) < 90
    full = radius_graph(x, 0.1, capacity=128, box=[[0, 1]] * 2, max_per_cell=10)
    assert not bool(full.overflow) and int(full.count) == 90


def test_jit_and_eager_agree_and_no_recompile():
    x = np.random.default_rng(6).random((1000, 3), dtype=np.float32)
    kwargs = dict(capacity=20_000, box=[[0, 1]] * 3, periodic=(True, False, True))
    eager = radius_graph(x, 0.12, **kwargs)
    fn = jax.jit(lambda x: radius_graph(x, 0.12, **kwargs))
    jitted = fn(x)
    for a, b in zip(eager, jitted):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    fn(x + np.float32(0.01))
    assert fn._cache_size() == 1


@pytest.mark.parametrize(
    "kwargs, error, words",
    [
        (dict(radius=0.0), ValueError, "radius"),
        (dict(capacity=0), ValueError, "capacity"),
        (dict(capacity=2.5), ValueError, "capacity"),
        (dict(box=[[0, 1]]), ValueError, "box"),
        (dict(box=[[1, 0], [0, 1]]), ValueError, "box"),
        (dict(periodic=True), ValueError, "box"),
        (dict(periodic=True, box=[[0, 0.15], [0, 1]]), ValueError, "2 · radius"),
        (dict(periodic=(True,)), ValueError, "periodic"),
        (dict(node_mask=np.ones(3, bool)), ValueError, "node_mask"),
        (dict(node_mask=np.ones(4, np.int32)), TypeError, "node_mask"),
        (dict(fill=-1), ValueError, "fill"),
        (dict(max_per_cell=0), ValueError, "max_per_cell"),
    ],
)
def test_bad_arguments_are_named(kwargs, error, words):
    args = dict(positions=np.zeros((4, 2), np.float32), radius=0.1, capacity=8) | kwargs
    with pytest.raises(error, match=words):
        radius_graph(**args)


def test_bad_positions_are_named():
    with pytest.raises(ValueError, match="positions"):
        radius_graph(np.zeros((4, 4), np.float32), 0.1, capacity=8)
    with pytest.raises(TypeError, match="positions"):
        radius_graph(np.zeros((4, 2), np.int32), 0.1, capacity=8)


def test_suggest_capacity():
    assert suggest_capacity(0) == 256
    assert suggest_capacity(1000) == 1280
    assert suggest_capacity(1000, margin=1.0, multiple=100) == 1000
    assert suggest_capacity(np.int32(1001), margin=1.0, multiple=100) == 1100
    with pytest.raises(ValueError, match="margin"):
        suggest_capacity(10, margin=0.5)
    with pytest.raises(ValueError, match="count"):
        suggest_capacity(-1)
