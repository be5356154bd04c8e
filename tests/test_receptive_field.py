"""The mesh tasks' wider receptive field (`task.options.k_hop`, `dilation`,
`global_nodes`): pairs by hop distance against a dense shortest-path computation, the
edge sets and features a task builds from them, their validation, graph parallelism's
positions, and their counts in `meshsim inspect`."""

import jax
import numpy as np
import pytest
from scipy.sparse.csgraph import shortest_path

import meshsim
from meshsim.data import format_inspection, infer_meta, inspect_dataset, write_hdf5_split
from meshsim.graph import PaddingBudget
from meshsim.graph.hops import dilated_pairs, hop_pairs, k_hop_pairs
from meshsim.graph.window import pad_window
from meshsim.parallel import partition_graph, partition_nodes
from meshsim.tasks import (
    DILATED_EDGES,
    FROM_GLOBAL,
    GLOBAL_NODES,
    KHOP_EDGES,
    TO_GLOBAL,
    WORLD_EDGES,
    cfd_task,
    get_task,
    task_options,
)
from tests.conftest import grid_cells, synthetic_cfd_trajectory


def _hops(nx=7, ny=6):
    """(senders, receivers, N, [N, N] hop distance by dense BFS) of a grid mesh."""
    _, cells = grid_cells(nx, ny)
    s, r = meshsim.edges_from_cells(cells)
    n = nx * ny
    adjacency = np.zeros((n, n))
    adjacency[r, s] = 1
    return s, r, n, shortest_path(adjacency, unweighted=True, directed=False)


def _pairs(s, r):
    return set(zip(r.tolist(), s.tolist()))  # (receiver, sender)


@pytest.mark.parametrize("kind", ["k_hop 3", "dilation 2 x 3", "hops {1, 4}"])
def test_pairs_are_those_at_the_asked_hop_distances(kind):
    s, r, n, dist = _hops()
    if kind == "k_hop 3":
        got, wanted = k_hop_pairs(s, r, n, 3), (2, 3)
    elif kind == "dilation 2 x 3":
        got, wanted = dilated_pairs(s, r, n, 2, 3), (2, 4, 6)
    else:
        got, wanted = hop_pairs(s, r, n, [4, 1]), (1, 4)
    expected = {(i, j) for i, j in zip(*np.nonzero(np.isin(dist, wanted)))}
    assert _pairs(*got) == expected and len(got[0]) == len(expected)
    order = np.lexsort((got[0], got[1]))
    assert np.array_equal(order, np.arange(len(order)))  # sorted by receiver, then sender
    assert got[0].dtype == np.int32 and got[1].dtype == np.int32
    assert k_hop_pairs(s, r, n, 1)[0].size == 0


def test_task_builds_the_edge_sets_and_their_features():
    trajectory = synthetic_cfd_trajectory(nx=6, ny=5)
    task = cfd_task(k_hop=2, dilation=2, dilation_levels=2, global_nodes=3)
    structure = task.structure(trajectory)
    assert set(structure.edge_sets) == {"mesh", KHOP_EDGES, DILATED_EDGES, TO_GLOBAL, FROM_GLOBAL}
    assert structure.num_nodes(GLOBAL_NODES) == 3
    s, r, n, dist = _hops(6, 5)
    khop = structure.edge_sets[KHOP_EDGES]
    assert _pairs(khop.senders, khop.receivers) == set(zip(*np.nonzero(dist == 2)))
    dilated = structure.edge_sets[DILATED_EDGES]
    assert _pairs(dilated.senders, dilated.receivers) == set(
        zip(*np.nonzero(np.isin(dist, (2, 4))))
    )
    to_global = structure.edge_sets[TO_GLOBAL]
    assert to_global.num_edges == 3 * n and (to_global.sender, to_global.receiver) == (
        "mesh",
        GLOBAL_NODES,
    )
    assert set(zip(to_global.senders.tolist(), to_global.receivers.tolist())) == {
        (i, g) for i in range(n) for g in range(3)
    }
    # Padded, the graph holds the declared widths and real features.
    window = task.window(trajectory, 2, structure)
    budget = PaddingBudget.fit(structure, multiple=8)
    padded = pad_window(window, budget, task.node_set)
    graph = jax.jit(task.build_graph)(padded.fields, padded.graph)
    for name, (sender, receiver, width) in task.edge_types.items():
        es = graph.edge_sets[name]
        assert (es.sender, es.receiver, es.features.shape[1]) == (sender, receiver, width)
    for name, width in task.node_feature_sizes.items():
        assert graph.node_sets[name].features.shape[1] == width
    pos = trajectory["mesh_pos"][0]
    es = graph.edge_sets[KHOP_EDGES]
    real = np.asarray(es.mask)
    rel = pos[np.asarray(es.senders)[real]] - pos[np.asarray(es.receivers)[real]]
    np.testing.assert_allclose(np.asarray(es.features)[real][:, :2], rel, atol=1e-6)
    # Global nodes: one-hot of their index (padding rows 0), as are their edges.
    g = np.asarray(graph.node_sets[GLOBAL_NODES].features)
    np.testing.assert_array_equal(g[:3], np.eye(3))
    assert not g[3:].any()
    fg = graph.edge_sets[FROM_GLOBAL]
    real = np.asarray(fg.mask)
    np.testing.assert_array_equal(
        np.asarray(fg.features)[real], np.eye(3)[np.asarray(fg.senders)[real]]
    )
    graph.replace(edge_sets={k: v for k, v in graph.edge_sets.items()}).validate()


def test_options_are_validated_naming_the_key():
    with pytest.raises(ValueError, match=r"task\.options\.k_hop: expected an int ≥ 1, got 0"):
        task_options("cfd", {"k_hop": 0})
    with pytest.raises(ValueError, match=r"task\.options\.dilation: expected 0 \(off\)"):
        task_options("cloth", {"dilation": 1})
    with pytest.raises(TypeError, match=r"task\.options\.global_nodes: expected an int"):
        task_options("airfoil", {"global_nodes": 1.5})
    with pytest.raises(ValueError, match=r"unknown keys \['hops'\]"):
        task_options("deforming_plate", {"hops": 2})
    both = task_options("sphere_simple", {"k_hop": 2, "world_radius": 0.1})
    assert both["k_hop"] == 2 and both["world_radius"] == 0.1 and both["global_nodes"] == 0


def test_world_edges_still_skip_only_the_mesh_with_khop_edges():
    from tests.contact_data import sphere_meta, sphere_trajectory

    trajectory = sphere_trajectory(1, 8)
    task = get_task("sphere_simple", meta=sphere_meta(8), world_radius=0.06, k_hop=2)
    structure = task.structure(trajectory)
    assert {WORLD_EDGES, KHOP_EDGES} <= set(structure.edge_sets)
    budget = PaddingBudget.fit(structure, multiple=8)
    window = pad_window(task.window(trajectory, 4, structure), budget, task.node_set)
    built, _ = jax.jit(task.dynamic_structure)(window.fields, window.graph)
    graph = jax.jit(task.build_graph)(window.fields, built)
    world = graph.edge_sets[WORLD_EDGES]
    mesh = graph.edge_sets["mesh"]
    mesh_pairs = set(
        zip(np.asarray(mesh.senders)[mesh.mask], np.asarray(mesh.receivers)[mesh.mask])
    )
    got = set(zip(np.asarray(world.senders)[world.mask], np.asarray(world.receivers)[world.mask]))
    assert got and not (got & mesh_pairs)
    assert graph.edge_sets[KHOP_EDGES].features.shape[1] == task.mesh_edge_width


def test_global_nodes_get_positions_for_graph_parallelism():
    trajectory = synthetic_cfd_trajectory(nx=8, ny=6)
    task = cfd_task(global_nodes=2)
    structure = task.structure(trajectory)
    positions = task.partition_positions(trajectory, structure)
    np.testing.assert_allclose(
        positions[GLOBAL_NODES],
        np.repeat(trajectory["mesh_pos"][0].astype(np.float64).mean(0)[None], 2, 0),
    )
    pg = partition_graph(structure, partition_nodes(positions, 2), 2)
    assert pg.num_parts == 2


def test_inspect_counts_the_added_edges(tmp_path, capsys):
    trajectories = [synthetic_cfd_trajectory(nx=6 + i, ny=5, steps=3, seed=i) for i in range(2)]
    write_hdf5_split(tmp_path, "train", trajectories, infer_meta(trajectories[0], dt=0.01))
    options = {"k_hop": 3, "dilation": 2, "global_nodes": 2}
    report = inspect_dataset(tmp_path, receptive_field=options)
    counts = report["splits"]["train"]["receptive_field"]
    task = cfd_task(**options)
    for key, names in (
        ("khop", [KHOP_EDGES]),
        ("dilated", [DILATED_EDGES]),
        ("global", [TO_GLOBAL, FROM_GLOBAL]),
    ):
        want = [sum(task.structure(t).edge_sets[n].num_edges for n in names) for t in trajectories]
        assert (counts[key]["min"], counts[key]["max"]) == (min(want), max(want))
    assert "khop edges (directed)" in format_inspection(report)
    assert inspect_dataset(tmp_path)["splits"]["train"]["receptive_field"] is None
    from meshsim.cli import main

    assert main(["inspect", str(tmp_path), "--k-hop", "2", "--global-nodes", "1"]) == 0
    assert "global edges (directed)" in capsys.readouterr().out
