"""Typed graphs on two node sets: validation, padding, batching, pytrees, conversions.

The graph under test has node sets `grid` (7 nodes x 5 features) and `mesh`
(4 nodes x 3 features) and edge sets `grid2mesh` (grid -> mesh), `mesh`
(mesh -> mesh, both directions) and `mesh2grid` (mesh -> grid), each with its
own feature width, so an index, offset or width taken from the wrong set shows.
"""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import meshsim
from meshsim.graph import (
    GraphFeatures,
    MultiGraph,
    NodeSet,
    bucket_size,
    placeholder_graph,
    validate,
)

EDGE_WIDTHS = {"grid2mesh": 2, "mesh": 4, "mesh2grid": 1}


def two_set_parts(seed: int = 0, n_grid: int = 7, n_mesh: int = 4):
    """(nodes {set: [N, F]}, edge sets {name: (features, senders, receivers, sender, receiver)})."""
    rng = np.random.default_rng(seed)
    i32 = lambda a: np.asarray(a, np.int32)
    f32 = lambda *shape: rng.normal(size=shape).astype(np.float32)
    nodes = {"grid": f32(n_grid, 5), "mesh": f32(n_mesh, 3)}
    # grid -> mesh: every grid node once, plus a few random extra edges.
    g2m_s = i32(np.concatenate([np.arange(n_grid), rng.integers(n_grid, size=3)]))
    g2m_r = i32(rng.integers(n_mesh, size=g2m_s.shape[0]))
    # mesh -> mesh: a ring and one chord, both directions.
    ring = np.arange(n_mesh)
    a = np.concatenate([ring, [0]])
    b = np.concatenate([(ring + 1) % n_mesh, [2]])
    m_s, m_r = i32(np.concatenate([a, b])), i32(np.concatenate([b, a]))
    # mesh -> grid: every grid node receives from one random mesh node.
    m2g_s = i32(rng.integers(n_mesh, size=n_grid))
    m2g_r = i32(rng.permutation(n_grid))
    edges = {
        "grid2mesh": (f32(len(g2m_s), EDGE_WIDTHS["grid2mesh"]), g2m_s, g2m_r, "grid", "mesh"),
        "mesh": (f32(len(m_s), EDGE_WIDTHS["mesh"]), m_s, m_r, "mesh", "mesh"),
        "mesh2grid": (f32(len(m2g_s), EDGE_WIDTHS["mesh2grid"]), m2g_s, m2g_r, "mesh", "grid"),
    }
    return nodes, edges


def two_set_graph(seed: int = 0, n_grid: int = 7, n_mesh: int = 4) -> MultiGraph:
    """A validated one-graph MultiGraph with node sets grid/mesh and three typed edge sets."""
    return meshsim.make_graph(*two_set_parts(seed, n_grid, n_mesh))


def assert_graphs_equal(a: MultiGraph, b: MultiGraph):
    """Same typing (tree structure, incl. static sender/receiver names), dtypes and values."""
    assert jax.tree_util.tree_structure(a) == jax.tree_util.tree_structure(b)
    for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)):
        x, y = np.asarray(x), np.asarray(y)
        assert x.dtype == y.dtype and x.shape == y.shape
        np.testing.assert_array_equal(x, y)


def _budget(graph: MultiGraph, extra_nodes=3, extra_edges=2, n_graph=None) -> meshsim.PaddingBudget:
    return meshsim.PaddingBudget(
        n_node={k: graph.num_nodes(k) + extra_nodes for k in graph.node_sets},
        n_edge={k: es.num_edges + extra_edges for k, es in graph.edge_sets.items()},
        n_graph=n_graph if n_graph is not None else graph.num_graphs + 2,
    )


# ------------------------------------------------------------------ construction, validation


def test_two_set_graph_typing():
    g = two_set_graph()
    assert sorted(g.node_sets) == ["grid", "mesh"]
    assert (g.num_nodes("grid"), g.num_nodes("mesh")) == (7, 4)
    assert g.node_sets["grid"].features.shape == (7, 5)
    assert g.node_sets["mesh"].features.shape == (4, 3)
    ends = {k: (es.sender, es.receiver) for k, es in g.edge_sets.items()}
    assert ends == {
        "grid2mesh": ("grid", "mesh"),
        "mesh": ("mesh", "mesh"),
        "mesh2grid": ("mesh", "grid"),
    }
    for k, es in g.edge_sets.items():
        assert es.features.shape == (es.num_edges, EDGE_WIDTHS[k])
        assert es.n_edge.tolist() == [es.num_edges] and es.mask.all()
    assert g.graph_mask.tolist() == [True]


@pytest.mark.parametrize(
    "edge_set, field, bad, node_set, size",
    [
        ("grid2mesh", "receivers", 5, "mesh", 4),  # a valid grid index, not a valid mesh one
        ("grid2mesh", "senders", 7, "grid", 7),
        ("mesh2grid", "senders", 6, "mesh", 4),  # valid for grid, not for mesh
        ("mesh2grid", "receivers", -1, "grid", 7),
        ("mesh", "receivers", 4, "mesh", 4),
    ],
)
def test_indices_are_checked_against_their_own_node_set(edge_set, field, bad, node_set, size):
    nodes, edges = two_set_parts()
    f, s, r, snd, rcv = edges[edge_set]
    s, r = s.copy(), r.copy()
    (s if field == "senders" else r)[2] = bad
    edges[edge_set] = (f, s, r, snd, rcv)
    message = (
        f"edge_sets[{edge_set!r}].{field}: index {bad} at edge 2 is out of range "
        f"[0, {size}) of node set {node_set!r}"
    )
    with pytest.raises(ValueError, match=re.escape(message)):
        meshsim.make_graph(nodes, edges)


def test_edge_set_naming_a_missing_node_set_is_rejected():
    nodes, edges = two_set_parts()
    f, s, r, _, _ = edges["mesh2grid"]
    edges["mesh2grid"] = (f, s, r, "mesh", "ocean")
    message = "edge_sets['mesh2grid'].receiver: expected one of the node sets ['grid', 'mesh']"
    with pytest.raises(ValueError, match=re.escape(message) + ".*'ocean'"):
        meshsim.make_graph(nodes, edges)
    edges["mesh2grid"] = (f, s, r, "land", "grid")
    with pytest.raises(ValueError, match=re.escape("edge_sets['mesh2grid'].sender: expected")):
        meshsim.make_graph(nodes, edges)


def test_three_tuple_edge_set_needs_a_single_node_set():
    nodes, edges = two_set_parts()
    edges["mesh"] = edges["mesh"][:3]
    with pytest.raises(ValueError, match=re.escape("edge_sets['mesh']: the graph has node sets")):
        meshsim.make_graph(nodes, edges)
    edges["mesh"] = edges["mesh"][:2]
    with pytest.raises(ValueError, match=re.escape("edge_sets['mesh']: expected (features")):
        meshsim.make_graph(nodes, edges)


def test_array_nodes_make_a_single_mesh_node_set():
    nodes, edges = two_set_parts()
    f, s, r, _, _ = edges["mesh"]
    g = meshsim.make_graph(nodes["mesh"], {"mesh": (f, s, r)})
    assert list(g.node_sets) == ["mesh"] and list(g.edge_sets) == ["mesh"]
    es = g.edge_sets["mesh"]
    assert (es.sender, es.receiver) == ("mesh", "mesh")
    np.testing.assert_array_equal(g.node_sets["mesh"].features, nodes["mesh"])
    np.testing.assert_array_equal(es.senders, s)


@pytest.mark.parametrize(
    "edit, error, message",
    [
        (
            lambda n, e: e.update(
                mesh=(e["mesh"][0], e["mesh"][1].astype(np.int64), *e["mesh"][2:])
            ),
            TypeError,
            "edge_sets['mesh'].senders: expected dtype int32, got int64",
        ),
        (
            lambda n, e: e.update(
                grid2mesh=(
                    *e["grid2mesh"][:2],
                    e["grid2mesh"][2].astype(np.float32),
                    "grid",
                    "mesh",
                )
            ),
            TypeError,
            "edge_sets['grid2mesh'].receivers: expected dtype int32, got float32",
        ),
        (
            lambda n, e: e.update(mesh2grid=(e["mesh2grid"][0][:, 0], *e["mesh2grid"][1:])),
            ValueError,
            "edge_sets['mesh2grid'].features: expected rank 2",
        ),
        (
            lambda n, e: e.update(mesh=(e["mesh"][0].astype(np.int32), *e["mesh"][1:])),
            TypeError,
            "edge_sets['mesh'].features: expected a floating dtype, got int32",
        ),
        (
            lambda n, e: e.update(mesh=(e["mesh"][0], e["mesh"][1][:, None], *e["mesh"][2:])),
            ValueError,
            "edge_sets['mesh'].senders: expected rank 1",
        ),
        (
            lambda n, e: e.update(mesh=(e["mesh"][0][:-1], *e["mesh"][1:])),
            ValueError,
            "edge_sets['mesh'].features: expected length",
        ),
        (
            lambda n, e: n.update(grid=n["grid"][:, 0]),
            ValueError,
            "nodes['grid']: expected rank 2 [num_nodes, F], got shape (7,)",
        ),
    ],
)
def test_wrong_dtypes_and_ranks_name_the_field(edit, error, message):
    nodes, edges = two_set_parts()
    edit(nodes, edges)
    with pytest.raises(error, match=re.escape(message)):
        meshsim.make_graph(nodes, edges)


def test_validate_names_node_set_fields():
    g = two_set_graph()
    grid = g.node_sets["grid"]
    bad = [
        (grid.replace(features=grid.features[None]), ValueError, "features: expected rank 2"),
        (
            grid.replace(features=grid.features.astype(np.int32)),
            TypeError,
            "features: expected a floating dtype",
        ),
        (grid.replace(n_node=grid.n_node.astype(np.int64)), TypeError, "n_node: expected dtype"),
        (grid.replace(mask=grid.mask.astype(np.int32)), TypeError, "mask: expected dtype bool"),
        (grid.replace(n_node=np.array([6], np.int32)), ValueError, "n_node: expected non-neg"),
    ]
    for node_set, error, message in bad:
        broken = g.replace(node_sets={**g.node_sets, "grid": node_set})
        with pytest.raises(error, match=re.escape(f"node_sets['grid'].{message}")):
            validate(broken)


def test_non_finite_features_name_the_set_and_index():
    nodes, edges = two_set_parts()
    nodes["grid"][3, 2] = np.nan
    with pytest.raises(
        ValueError,
        match=re.escape("node_sets['grid'].features: non-finite value at node 3, feature 2"),
    ):
        meshsim.make_graph(nodes, edges)
    nodes, edges = two_set_parts()
    edges["mesh"][0][5, 1] = -np.inf
    with pytest.raises(
        ValueError,
        match=re.escape("edge_sets['mesh'].features: non-finite value at edge 5, feature 1"),
    ):
        meshsim.make_graph(nodes, edges)


def test_non_finite_padding_is_allowed():
    g = two_set_graph()
    p = meshsim.pad(g, _budget(g))
    grid = p.node_sets["grid"]
    features = grid.features.copy()
    features[-1] = np.nan  # a padding node
    validate(p.replace(node_sets={**p.node_sets, "grid": grid.replace(features=features)}))
    features[0] = np.nan  # a real node
    with pytest.raises(ValueError, match=re.escape("non-finite value at node 0")):
        validate(p.replace(node_sets={**p.node_sets, "grid": grid.replace(features=features)}))


def test_edge_joining_two_graphs_of_a_batch_is_rejected():
    a, b = two_set_graph(0), two_set_graph(1, n_grid=9, n_mesh=5)
    ab = meshsim.batch([a, b])
    validate(ab)
    es = ab.edge_sets["grid2mesh"]
    receivers = es.receivers.copy()
    receivers[0] = a.num_nodes("mesh") + 1  # mesh node 1 of graph 1; edge 0 is in graph 0
    broken = ab.replace(edge_sets={**ab.edge_sets, "grid2mesh": es.replace(receivers=receivers)})
    message = (
        "edge_sets['grid2mesh'].receivers: edge 0 of graph 0 points at node 5 of graph 1 in 'mesh'"
    )
    with pytest.raises(ValueError, match=re.escape(message)):
        validate(broken)
    # Senders are checked too, against the graphs of their own (mesh) node set.
    es2 = ab.edge_sets["mesh2grid"]
    senders = es2.senders.copy()
    senders[-1] = 0  # the last mesh2grid edge belongs to graph 1; mesh node 0 to graph 0
    broken = ab.replace(edge_sets={**ab.edge_sets, "mesh2grid": es2.replace(senders=senders)})
    with pytest.raises(ValueError, match=re.escape("edge_sets['mesh2grid'].senders: edge")):
        validate(broken)


# ------------------------------------------------------------------ padding


def test_pad_per_node_set_and_edge_set():
    g = two_set_graph()
    budget = meshsim.PaddingBudget(
        n_node={"grid": 10, "mesh": 6},
        n_edge={"grid2mesh": 13, "mesh": 14, "mesh2grid": 9},
        n_graph=3,
    )
    p = meshsim.pad(g, budget)
    validate(p)
    assert p.graph_mask.tolist() == [True, False, False]
    for k, n in budget.n_node.items():
        ns, real = p.node_sets[k], g.num_nodes(k)
        assert ns.features.shape == (n, g.node_sets[k].features.shape[1])
        assert ns.n_node.tolist() == [real, n - real, 0]
        assert ns.mask.tolist() == [True] * real + [False] * (n - real)
        np.testing.assert_array_equal(ns.features[:real], g.node_sets[k].features)
        assert not ns.features[real:].any()
    for k, n in budget.n_edge.items():
        es, real = p.edge_sets[k], g.edge_sets[k].num_edges
        assert (es.sender, es.receiver) == (g.edge_sets[k].sender, g.edge_sets[k].receiver)
        assert es.features.shape == (n, EDGE_WIDTHS[k])
        assert es.n_edge.tolist() == [real, n - real, 0]
        assert es.mask.tolist() == [True] * real + [False] * (n - real)
        np.testing.assert_array_equal(es.senders[:real], g.edge_sets[k].senders)
        # Padded edges join the last (padding) node of their own sender / receiver set.
        assert (es.senders[real:] == budget.n_node[es.sender] - 1).all()
        assert (es.receivers[real:] == budget.n_node[es.receiver] - 1).all()
        assert not es.features[real:].any()
        assert es.senders.dtype == es.receivers.dtype == np.int32
    # Concretely: grid2mesh pads from grid node 9 to mesh node 5, mesh2grid the other way.
    assert set(p.edge_sets["grid2mesh"].senders[-1:]) == {9}
    assert set(p.edge_sets["grid2mesh"].receivers[-1:]) == {5}
    assert set(p.edge_sets["mesh2grid"].senders[-1:]) == {5}
    assert set(p.edge_sets["mesh2grid"].receivers[-1:]) == {9}


@pytest.mark.parametrize(
    "field, key, size, message",
    [
        ("n_node", "grid", 7, "budget.n_node['grid']: expected ≥ num_nodes + 1 = 8, got 7"),
        ("n_node", "mesh", 4, "budget.n_node['mesh']: expected ≥ num_nodes + 1 = 5, got 4"),
        ("n_edge", "mesh", 9, "budget.n_edge['mesh']: expected ≥ 10, got 9"),
        ("n_edge", "mesh2grid", 6, "budget.n_edge['mesh2grid']: expected ≥ 7, got 6"),
    ],
)
def test_too_small_budget_names_the_set(field, key, size, message):
    g = two_set_graph()
    budget = _budget(g)
    budget = meshsim.PaddingBudget(
        **{
            "n_node": dict(budget.n_node),
            "n_edge": dict(budget.n_edge),
            "n_graph": budget.n_graph,
            field: {**getattr(budget, field), key: size},
        }
    )
    with pytest.raises(ValueError, match=re.escape(message)):
        meshsim.pad(g, budget)


def test_budget_must_cover_every_set_and_a_padding_graph():
    g = two_set_graph()
    b = _budget(g)
    with pytest.raises(
        ValueError, match=re.escape("budget.n_node: expected sets ['grid', 'mesh']")
    ):
        meshsim.pad(g, meshsim.PaddingBudget({"mesh": 8}, dict(b.n_edge), 2))
    with pytest.raises(ValueError, match=re.escape("budget.n_edge: expected sets")):
        meshsim.pad(g, meshsim.PaddingBudget(dict(b.n_node), {"mesh": 20}, 2))
    with pytest.raises(
        ValueError, match=re.escape("budget.n_graph: expected ≥ num_graphs + 1 = 2")
    ):
        meshsim.pad(g, meshsim.PaddingBudget(dict(b.n_node), dict(b.n_edge), 1))


@pytest.mark.parametrize("bad", [8.5, 0, -3, True, "8", None])
@pytest.mark.parametrize("field", ["n_node", "n_edge"])
def test_padding_budget_rejects_non_positive_int_sizes(field, bad):
    sizes = {"n_node": {"grid": 8, "mesh": 6}, "n_edge": {"mesh": 10}}
    sizes[field] = {**sizes[field], "mesh": bad}
    with pytest.raises(
        (TypeError, ValueError),
        match=re.escape(f"PaddingBudget.{field}['mesh']: expected a positive int, got {bad!r}"),
    ):
        meshsim.PaddingBudget(n_graph=2, **sizes)


@pytest.mark.parametrize("bad", [2.0, 0, True])
def test_padding_budget_rejects_bad_n_graph(bad):
    with pytest.raises((TypeError, ValueError), match=re.escape("PaddingBudget.n_graph")):
        meshsim.PaddingBudget({"mesh": 8}, {"mesh": 8}, bad)


def test_padding_budget_accepts_numpy_ints_and_rejects_non_mappings():
    b = meshsim.PaddingBudget({"grid": np.int64(8)}, {"mesh": np.int32(3)}, np.int64(2))
    assert b.n_node == {"grid": 8} and type(b.n_node["grid"]) is int
    with pytest.raises(TypeError, match=re.escape("PaddingBudget.n_node: expected a mapping")):
        meshsim.PaddingBudget(8, {"mesh": 3}, 2)
    with pytest.raises(ValueError, match=re.escape("PaddingBudget.n_node: expected at least one")):
        meshsim.PaddingBudget({}, {"mesh": 3}, 2)


def test_padding_budget_at_least_takes_the_larger_size_of_each_set():
    a = meshsim.PaddingBudget({"grid": 8, "mesh": 40}, {"g2m": 16}, 2)
    b = meshsim.PaddingBudget({"grid": 24, "mesh": 8}, {"g2m": 8}, 3)
    grown = a.at_least(b)
    assert grown.n_node == {"grid": 24, "mesh": 40}
    assert grown.n_edge == {"g2m": 16} and grown.n_graph == 3
    assert a.at_least(None) is a and b.at_least(a) == grown
    with pytest.raises(ValueError, match=re.escape("other: expected node and edge sets")):
        a.at_least(meshsim.PaddingBudget({"grid": 8}, {"g2m": 16}, 2))
    with pytest.raises(TypeError, match="other: expected a PaddingBudget"):
        a.at_least({"grid": 8})


def test_budget_fit_fits_each_set():
    g = two_set_graph()
    budget = meshsim.PaddingBudget.fit(g, multiple=1)
    assert sorted(budget.n_node) == ["grid", "mesh"]
    assert sorted(budget.n_edge) == sorted(EDGE_WIDTHS)
    assert budget.n_graph == 2
    for k in g.node_sets:
        need = g.num_nodes(k) + 1
        assert need <= budget.n_node[k] <= need * 2**0.25 + 1
    for k, es in g.edge_sets.items():
        assert es.num_edges <= budget.n_edge[k] <= es.num_edges * 2**0.25 + 1
    validate(meshsim.pad(g, budget))
    # The default ladder (multiples of 64) holds every set of the tiny graph in 64.
    default = meshsim.PaddingBudget.fit(g)
    assert set(default.n_node.values()) | set(default.n_edge.values()) == {64}


def test_budget_for_dataset_fits_any_batch_of_each_set():
    graphs = [two_set_graph(0), two_set_graph(1, n_grid=9, n_mesh=5), two_set_graph(2, 5, 6)]
    budget = meshsim.PaddingBudget.for_dataset(graphs, graphs_per_batch=2, multiple=1)
    assert budget.n_graph == 3
    for k in ("grid", "mesh"):
        need = 2 * max(g.num_nodes(k) for g in graphs) + 1
        assert budget.n_node[k] == bucket_size(need, multiple=1)
        assert budget.n_node[k] >= need
    for k in EDGE_WIDTHS:
        need = 2 * max(g.edge_sets[k].num_edges for g in graphs)
        assert budget.n_edge[k] == bucket_size(need, multiple=1) >= need
    assert budget.n_node["grid"] != budget.n_node["mesh"]  # sized per set, not one number
    for i in range(3):
        for j in range(3):
            validate(meshsim.pad(meshsim.batch([graphs[i], graphs[j]]), budget))
    one_set = meshsim.make_graph(graphs[0].node_sets["mesh"].features, {})
    with pytest.raises(
        ValueError, match=re.escape("graphs[1]: expected node sets ['grid', 'mesh']")
    ):
        meshsim.PaddingBudget.for_dataset([graphs[0], one_set])


# ------------------------------------------------------------------ batching


def test_batch_offsets_indices_by_each_sets_own_node_counts():
    a, b = two_set_graph(0), two_set_graph(1, n_grid=9, n_mesh=5)
    ab = meshsim.batch([a, b])
    validate(ab)
    na = {k: a.num_nodes(k) for k in a.node_sets}
    assert ab.graph_mask.tolist() == [True, True]
    for k in ("grid", "mesh"):
        assert ab.node_sets[k].n_node.tolist() == [na[k], b.num_nodes(k)]
        np.testing.assert_array_equal(
            ab.node_sets[k].features,
            np.concatenate([a.node_sets[k].features, b.node_sets[k].features]),
        )
    for k, es in ab.edge_sets.items():
        ea, eb = a.edge_sets[k], b.edge_sets[k]
        assert (es.sender, es.receiver) == (ea.sender, ea.receiver)
        assert es.n_edge.tolist() == [ea.num_edges, eb.num_edges]
        assert es.senders.dtype == es.receivers.dtype == np.int32
        np.testing.assert_array_equal(es.senders[: ea.num_edges], ea.senders)
        np.testing.assert_array_equal(es.receivers[: ea.num_edges], ea.receivers)
        np.testing.assert_array_equal(es.senders[ea.num_edges :], eb.senders + na[ea.sender])
        np.testing.assert_array_equal(es.receivers[ea.num_edges :], eb.receivers + na[ea.receiver])
    # grid2mesh's graph-1 senders move by 7 (grid), its receivers by 4 (mesh).
    g2m = ab.edge_sets["grid2mesh"]
    n = a.edge_sets["grid2mesh"].num_edges
    assert g2m.senders[n:].min() >= 7 and g2m.receivers[n:].min() >= 4
    assert g2m.receivers[n:].max() < 9


def test_unbatch_inverts_batch_exactly():
    graphs = [two_set_graph(0), two_set_graph(1, n_grid=9, n_mesh=5), two_set_graph(2, 5, 6)]
    out = meshsim.unbatch(meshsim.batch(graphs))
    assert len(out) == 3
    for x, y in zip(out, graphs):
        assert_graphs_equal(x, y)


def test_unbatch_of_padded_batch_drops_padding():
    graphs = [two_set_graph(0), two_set_graph(1, n_grid=9, n_mesh=5)]
    ab = meshsim.batch(graphs)
    padded = meshsim.pad(ab, _budget(ab, n_graph=4))
    validate(padded)
    out = meshsim.unbatch(padded)
    assert len(out) == 2
    for x, y in zip(out, graphs):
        assert_graphs_equal(x, y)
    everything = meshsim.unbatch(padded, drop_padding=False)
    assert len(everything) == 4
    for x, y in zip(everything[:2], graphs):
        assert_graphs_equal(x, y)
    pad_graph = everything[2]
    assert pad_graph.graph_mask.tolist() == [False]
    assert {k: ns.num_nodes for k, ns in pad_graph.node_sets.items()} == {"grid": 3, "mesh": 3}
    assert not any(ns.mask.any() for ns in pad_graph.node_sets.values())
    # Its padded edges point at its own last node of each end's set, relative to the graph.
    for es in pad_graph.edge_sets.values():
        assert es.num_edges == 2 and not es.mask.any()
        assert (es.senders == 2).all() and (es.receivers == 2).all()
    assert all(ns.num_nodes == 0 for ns in everything[3].node_sets.values())
    # Round trip the other way: batch + pad of the unbatched pieces reproduces the padded batch.
    assert_graphs_equal(meshsim.pad(meshsim.batch(out), _budget(ab, n_graph=4)), padded)


def test_batch_rejects_graphs_with_different_sets():
    a = two_set_graph(0)
    nodes, edges = two_set_parts(1)
    del edges["mesh2grid"]
    b = meshsim.make_graph(nodes, edges)
    with pytest.raises(
        ValueError, match=re.escape("graphs[1]: expected node sets ['grid', 'mesh']")
    ):
        meshsim.batch([a, b])
    c = meshsim.make_graph(nodes["mesh"], {"mesh": edges["mesh"][:3]})
    with pytest.raises(ValueError, match=re.escape("graphs[1]: expected node sets")):
        meshsim.batch([a, c])
    with pytest.raises(ValueError, match="at least one graph"):
        meshsim.batch([])


# ------------------------------------------------------------------ pytree, jit


def test_graph_passes_through_jit_with_its_typing():
    g = two_set_graph()

    @jax.jit
    def gather_senders(graph):
        # The static names pick the right node set inside a traced function.
        out = {}
        for k, es in graph.edge_sets.items():
            assert isinstance(es.sender, str)
            out[k] = graph.node_sets[es.sender].features[es.senders]
        return graph, out

    h, gathered = gather_senders(g)
    assert isinstance(h, MultiGraph)
    assert {k: (es.sender, es.receiver) for k, es in h.edge_sets.items()} == {
        k: (es.sender, es.receiver) for k, es in g.edge_sets.items()
    }
    for k, es in g.edge_sets.items():
        np.testing.assert_array_equal(gathered[k], g.node_sets[es.sender].features[es.senders])
    assert_graphs_equal(jax.tree_util.tree_map(np.asarray, h), g)
    validate(h)  # validation also accepts jax arrays


def test_tree_flatten_unflatten_round_trips():
    g = two_set_graph()
    leaves, treedef = jax.tree_util.tree_flatten(g)
    assert len(leaves) == 2 * 3 + 3 * 5 + 1  # node set: 3 arrays, edge set: 5, graph_mask
    assert_graphs_equal(jax.tree_util.tree_unflatten(treedef, leaves), g)
    # The typing is static: swapping an edge set's ends changes the tree structure.
    es = g.edge_sets["mesh2grid"]
    swapped = g.replace(edge_sets={**g.edge_sets, "mesh2grid": es.replace(sender="grid")})
    assert jax.tree_util.tree_structure(swapped) != treedef
    doubled = jax.tree_util.tree_map(lambda x: x * 2 if x.dtype == np.float32 else x, g)
    assert doubled.edge_sets["grid2mesh"].sender == "grid"
    np.testing.assert_array_equal(
        doubled.node_sets["mesh"].features, 2 * g.node_sets["mesh"].features
    )


def test_with_features_of_features_is_identity():
    g = two_set_graph()
    f = g.features()
    assert isinstance(f, GraphFeatures)
    assert sorted(f.nodes) == ["grid", "mesh"] and sorted(f.edges) == sorted(EDGE_WIDTHS)
    assert_graphs_equal(g.with_features(f), g)
    # Under jit too, and with new features the structure is kept.
    h = jax.jit(lambda graph: graph.with_features(graph.features()))(g)
    assert_graphs_equal(jax.tree_util.tree_map(np.asarray, h), g)
    new = GraphFeatures(
        nodes={k: v + 1 for k, v in f.nodes.items()}, edges={k: -v for k, v in f.edges.items()}
    )
    h = g.with_features(new)
    np.testing.assert_array_equal(h.node_sets["grid"].features, f.nodes["grid"] + 1)
    np.testing.assert_array_equal(h.edge_sets["mesh"].senders, g.edge_sets["mesh"].senders)
    assert h.edge_sets["mesh2grid"].receiver == "grid"


def test_vmap_over_features_with_one_structure():
    g = two_set_graph()
    f = g.features()
    stacked = jax.tree_util.tree_map(lambda x: jnp.stack([x, 2 * x]), f)

    def total(features):
        h = g.with_features(features)
        es = h.edge_sets["grid2mesh"]
        return jnp.sum(h.node_sets[es.sender].features[es.senders])

    out = jax.vmap(total)(stacked)
    np.testing.assert_allclose(out[1], 2 * out[0], rtol=1e-6)


# ------------------------------------------------------------------ conversions


def test_to_jraph_rejects_an_edge_set_between_two_node_sets():
    g = two_set_graph()
    with pytest.raises(ValueError, match=re.escape("'grid2mesh' joins node sets 'grid' -> 'mesh'")):
        meshsim.to_jraph(g, "grid2mesh")
    with pytest.raises(ValueError, match=re.escape("'mesh2grid' joins node sets 'mesh' -> 'grid'")):
        meshsim.to_jraph(g, "mesh2grid")
    with pytest.raises(ValueError, match="name the one to use"):
        meshsim.to_jraph(g)
    with pytest.raises(ValueError, match=re.escape("edge_set: expected one of")):
        meshsim.to_jraph(g, "world")
    # An edge set within one node set of a typed graph is fine.
    t = meshsim.to_jraph(g, "mesh")
    np.testing.assert_array_equal(t.nodes, g.node_sets["mesh"].features)
    np.testing.assert_array_equal(t.senders, g.edge_sets["mesh"].senders)


def test_jraph_round_trip_one_node_set_one_edge_set():
    nodes, edges = two_set_parts()
    g = meshsim.make_graph(nodes["mesh"], {"mesh": edges["mesh"][:3]})
    assert_graphs_equal(meshsim.from_jraph(meshsim.to_jraph(g)), g)
    # Padded, jraph's convention: the last non-empty graph holds the padding.
    p = meshsim.pad(g, meshsim.PaddingBudget({"mesh": 8}, {"mesh": 12}, 3))
    assert_graphs_equal(meshsim.from_jraph(meshsim.to_jraph(p), padded=True), p)
    # Other names for the node set and edge set.
    h = meshsim.from_jraph(meshsim.to_jraph(g), edge_set="world", node_set="cloth")
    assert (h.edge_sets["world"].sender, h.edge_sets["world"].receiver) == ("cloth", "cloth")
    np.testing.assert_array_equal(h.node_sets["cloth"].features, nodes["mesh"])


def test_placeholder_graph_has_requested_widths_and_typing():
    edge_types = {k: (s, r, EDGE_WIDTHS[k]) for k, (_, _, _, s, r) in two_set_parts()[1].items()}
    ph = placeholder_graph({"grid": 5, "mesh": 3}, edge_types)
    validate(ph)
    assert {k: ns.features.shape for k, ns in ph.node_sets.items()} == {
        "grid": (1, 5),
        "mesh": (1, 3),
    }
    for k, (s, r, w) in edge_types.items():
        es = ph.edge_sets[k]
        assert (es.sender, es.receiver, es.features.shape) == (s, r, (1, w))
    assert all(isinstance(ns, NodeSet) for ns in ph.node_sets.values())
    g = two_set_graph()
    # The template gives the parameter shapes of the real graph, without data.
    model = meshsim.EncodeProcessDecode(
        output_size=2, output_node_set="grid", latent_size=8, num_message_passing_steps=2
    )
    shapes = lambda graph: jax.tree_util.tree_map(
        lambda x: x.shape, jax.eval_shape(model.init, jax.random.key(0), graph)
    )
    assert shapes(ph) == shapes(g)


def test_masked_edge_pointing_at_a_real_node_is_rejected():
    """Blocks do not re-mask messages, so a padding edge into a real node would leak."""
    g = two_set_graph()
    es = g.edge_sets["mesh2grid"]
    mask = np.asarray(es.mask).copy()
    mask[0] = False
    leaky = g.replace(edge_sets={**g.edge_sets, "mesh2grid": es.replace(mask=mask)})
    with pytest.raises(ValueError, match=r"mesh2grid'\]\.senders: masked \(padding\) edge 0"):
        leaky.validate()
    padded = meshsim.pad(g, meshsim.PaddingBudget.fit(g))
    padded.validate()  # pad's padding edges join padding nodes only
