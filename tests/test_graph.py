"""MultiGraph construction, validation, mesh edges, batching, padding, jraph interop."""

import jraph
import numpy as np
import pytest

import meshsim
from meshsim import graph as G
from tests.conftest import grid_cells, mesh_graph


def test_edges_from_triangles_unique_both_directions():
    cells = np.array([[0, 1, 2], [1, 3, 2]], np.int32)  # two triangles sharing edge 1-2
    s, r = meshsim.edges_from_cells(cells)
    pairs = set(zip(s.tolist(), r.tolist()))
    undirected = {(0, 1), (0, 2), (1, 2), (1, 3), (2, 3)}
    assert pairs == undirected | {(b, a) for a, b in undirected}
    assert len(s) == 10 and s.dtype == np.int32 and r.dtype == np.int32
    assert np.all(np.diff(r) >= 0), "receivers must come out sorted"


def test_edges_from_tetrahedra():
    s, r = meshsim.edges_from_cells(np.array([[0, 1, 2, 3], [1, 2, 3, 4]], np.int32))
    # 6 edges per tet, 3 shared (the face 1-2-3): 9 undirected, 18 directed.
    assert len(s) == 18
    assert len(set(zip(s.tolist(), r.tolist()))) == 18


def test_grid_mesh_edge_count_matches_euler():
    points, cells = grid_cells(5, 4)
    s, _ = meshsim.edges_from_cells(cells)
    # Planar disc: V - E + F = 1 => E = V + F - 1.
    assert len(s) // 2 == points.shape[0] + cells.shape[0] - 1


@pytest.mark.parametrize(
    "cells, message",
    [
        (np.zeros((3, 5), np.int32), "cells: expected shape"),
        (np.zeros((3, 3), np.float32), "cells: expected an integer dtype"),
        (-np.ones((3, 3), np.int32), "cells: negative node index"),
    ],
)
def test_edges_from_cells_rejects_bad_input(cells, message):
    with pytest.raises((ValueError, TypeError), match=message):
        meshsim.edges_from_cells(cells)


def _corrupt(graph, **changes):
    """Returns graph with 'mesh' edge-set fields (prefixed 'mesh_') or 'mesh' node-set fields
    (prefixed 'node_') replaced."""
    es = graph.edge_sets["mesh"]
    es = es.replace(**{k[5:]: v for k, v in changes.items() if k.startswith("mesh_")})
    ns = graph.node_sets["mesh"]
    ns = ns.replace(**{k[5:]: v for k, v in changes.items() if k.startswith("node_")})
    return graph.replace(edge_sets={"mesh": es}, node_sets={"mesh": ns})


def test_validation_errors_name_the_field(small_graph):
    g = small_graph
    es = g.edge_sets["mesh"]
    n = g.num_nodes("mesh")
    nodes = g.node_sets["mesh"].features
    cases = [
        (
            dict(
                mesh_senders=np.where(np.arange(len(es.senders)) == 3, n, es.senders).astype(
                    np.int32
                )
            ),
            ValueError,
            rf"edge_sets\['mesh'\]\.senders: index {n} at edge 3 is out of range \[0, {n}\) "
            "of node set 'mesh'",
        ),
        (
            dict(
                mesh_receivers=np.where(np.arange(len(es.senders)) == 0, -1, es.receivers).astype(
                    np.int32
                )
            ),
            ValueError,
            r"receivers: index -1 at edge 0 is out of range",
        ),
        (
            dict(mesh_senders=es.senders.astype(np.int64)),
            TypeError,
            r"senders: expected dtype int32, got int64",
        ),
        (
            dict(mesh_features=es.features[:-1]),
            ValueError,
            r"features: expected length \d+ \(= len\(senders\)\), got",
        ),
        (
            dict(
                mesh_features=np.where(
                    np.arange(len(es.senders))[:, None] == 2, np.nan, es.features
                ).astype(np.float32)
            ),
            ValueError,
            r"features: non-finite value at edge 2",
        ),
        (
            dict(node_features=np.where(np.arange(n)[:, None] == 1, np.inf, nodes)),
            ValueError,
            r"node_sets\['mesh'\]\.features: non-finite value at node 1, feature 0",
        ),
        (
            dict(node_features=nodes[:, 0]),
            ValueError,
            r"node_sets\['mesh'\]\.features: expected rank 2, got shape",
        ),
        (
            dict(node_features=nodes.astype(np.int32)),
            TypeError,
            r"features: expected a floating dtype",
        ),
        (
            dict(node_n_node=np.array([n + 1], np.int32)),
            ValueError,
            rf"node_sets\['mesh'\]\.n_node: expected non-negative counts summing to {n}",
        ),
        (dict(mesh_n_edge=np.array([1], np.int32)), ValueError, r"n_edge: expected non-negative"),
        (
            dict(
                node_features=np.zeros((0, 5), np.float32),
                node_n_node=np.array([0], np.int32),
                node_mask=np.zeros(0, bool),
                mesh_senders=np.zeros(0, np.int32),
                mesh_receivers=np.zeros(0, np.int32),
                mesh_features=np.zeros((0, 3), np.float32),
                mesh_mask=np.zeros(0, bool),
                mesh_n_edge=np.zeros(1, np.int32),
            ),
            ValueError,
            r"node_sets\['mesh'\]\.n_node: real graph 0 has 0 nodes",
        ),
    ]
    for changes, error, message in cases:
        with pytest.raises(error, match=message):
            _corrupt(g, **changes).validate()


def test_validate_rejects_non_graph_and_bad_edge_set():
    with pytest.raises(TypeError, match="graph: expected MultiGraph"):
        G.validate({"nodes": 1})
    g = mesh_graph(3, 3)
    with pytest.raises(TypeError, match=r"edge_sets\['mesh'\]: expected EdgeSet"):
        g.replace(edge_sets={"mesh": (1, 2, 3)}).validate()
    nodes = g.node_sets["mesh"].features
    with pytest.raises(ValueError, match=r"edge_sets\['mesh'\]: expected \(features"):
        meshsim.make_graph(nodes, {"mesh": (nodes, nodes)})


def test_batch_unbatch_round_trip():
    a, b = mesh_graph(3, 3, seed=1), mesh_graph(4, 2, seed=2)
    ab = meshsim.batch([a, b]).validate()
    assert ab.node_sets["mesh"].n_node.tolist() == [9, 8]
    assert ab.edge_sets["mesh"].senders[len(a.edge_sets["mesh"].senders)] >= 9
    back = meshsim.unbatch(ab)
    for orig, got in zip([a, b], back):
        np.testing.assert_array_equal(
            orig.node_sets["mesh"].features, got.node_sets["mesh"].features
        )
        for field in ("features", "senders", "receivers", "n_edge", "mask"):
            np.testing.assert_array_equal(
                getattr(orig.edge_sets["mesh"], field), getattr(got.edge_sets["mesh"], field)
            )


def test_batch_rejects_mismatched_edge_sets():
    a = mesh_graph(3, 3)
    b = a.replace(edge_sets={"world": a.edge_sets["mesh"]})
    with pytest.raises(ValueError, match=r"graphs\[1\]: expected node sets \['mesh'\] and edge"):
        meshsim.batch([a, b])


def test_pad_routes_padding_to_padding_nodes_and_unpads():
    g = mesh_graph(4, 3)
    budget = meshsim.PaddingBudget.fit(g)
    p = meshsim.pad(g, budget).validate()
    assert p.num_nodes("mesh") == budget.n_node["mesh"] and p.num_graphs == 2
    node_mask = p.node_sets["mesh"].mask
    es = p.edge_sets["mesh"]
    assert es.senders.shape[0] == budget.n_edge["mesh"]
    padded_edges = ~es.mask
    assert padded_edges.any()
    assert np.all(~node_mask[es.senders[padded_edges]])
    assert np.all(~node_mask[es.receivers[padded_edges]])
    assert np.all(np.diff(es.receivers) >= 0), "padding keeps receivers sorted"
    (back,) = meshsim.unbatch(p)
    np.testing.assert_array_equal(back.node_sets["mesh"].features, g.node_sets["mesh"].features)
    np.testing.assert_array_equal(back.edge_sets["mesh"].senders, g.edge_sets["mesh"].senders)


def test_pad_rejects_too_small_budget():
    g = mesh_graph(4, 3)
    budget = lambda n, e, g: meshsim.PaddingBudget({"mesh": n}, {"mesh": e}, g)
    with pytest.raises(
        ValueError, match=r"budget.n_node\['mesh'\]: expected ≥ num_nodes \+ 1 = 13"
    ):
        meshsim.pad(g, budget(12, 1000, 2))
    with pytest.raises(ValueError, match=r"budget.n_edge\['mesh'\]: expected ≥"):
        meshsim.pad(g, budget(64, 2, 2))
    with pytest.raises(ValueError, match=r"budget.n_graph"):
        meshsim.pad(g, budget(64, 1000, 1))
    with pytest.raises(
        ValueError, match=r"PaddingBudget.n_node\['mesh'\]: expected a positive int"
    ):
        budget(8.5, 1000, 2)
    with pytest.raises(ValueError, match="graphs: expected at least one sample graph"):
        meshsim.PaddingBudget.for_dataset([])


def test_bucket_ladder_bounds_waste_and_shape_count():
    sizes = {G.bucket_size(n) for n in range(1000, 4001)}
    # 4x range of sizes, 4 steps per octave: at most 2*4 + 1 distinct shapes.
    assert len(sizes) <= 9
    for n in (1, 63, 64, 65, 1000, 12345, 128_000):
        b = G.bucket_size(n)
        assert b >= n and b % 64 == 0
        assert b <= max(64, n * 2**0.25 + 64)


def test_dataset_budget_fits_every_batch():
    graphs = [mesh_graph(nx, ny) for nx, ny in [(3, 3), (5, 4), (4, 4)]]
    budget = meshsim.PaddingBudget.for_dataset(graphs, graphs_per_batch=2)
    for i in range(3):
        for j in range(3):
            meshsim.pad(meshsim.batch([graphs[i], graphs[j]]), budget).validate()


def test_jraph_round_trip_and_padding():
    g = mesh_graph(3, 4)
    gt = meshsim.to_jraph(g)
    assert isinstance(gt, jraph.GraphsTuple)
    back = meshsim.from_jraph(gt)
    np.testing.assert_array_equal(back.edge_sets["mesh"].receivers, g.edge_sets["mesh"].receivers)
    padded = jraph.pad_with_graphs(gt, n_node=20, n_edge=80, n_graph=3)
    mg = meshsim.from_jraph(padded, padded=True)
    assert mg.node_sets["mesh"].mask.sum() == g.num_nodes("mesh")
    assert mg.edge_sets["mesh"].mask.sum() == len(g.edge_sets["mesh"].senders)
    with pytest.raises(ValueError, match="edge_set: expected one of"):
        meshsim.to_jraph(g, "world")
