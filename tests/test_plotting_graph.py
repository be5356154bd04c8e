"""`meshsim.plotting.graph`: partition plots and the halo nodes they ring."""

import numpy as np
import pytest
from matplotlib.figure import Figure

import meshsim
from meshsim.parallel import partition_graph
from meshsim.plotting.graph import halo_nodes, plot_partition
from tests.conftest import grid_cells


def strip_graph(nx: int = 4, ny: int = 2):
    """A 4 × 2 grid mesh split into left (x ≤ 1/3) and right halves: (graph, points,
    cells, parts)."""
    points, cells = grid_cells(nx, ny)
    senders, receivers = meshsim.edges_from_cells(cells)
    nodes = np.zeros((points.shape[0], 1), np.float32)
    edges = np.zeros((senders.shape[0], 1), np.float32)
    graph = meshsim.make_graph(nodes, {"mesh": (edges, senders, receivers)})
    parts = (points[:, 0] > 0.5).astype(np.int32)  # columns x = 0, 1/3 | 2/3, 1
    return graph, points, cells, parts


def test_halo_nodes_are_the_neighbours_across_the_cut():
    graph, points, cells, parts = strip_graph()
    pg = partition_graph(graph, parts, 2)
    # Each side's halo is the other side's column next to the cut (x = 1/3 and x = 2/3),
    # so every node of those two columns is in some halo and no other node is.
    expected = np.isclose(points[:, 0], 1 / 3) | np.isclose(points[:, 0], 2 / 3)
    np.testing.assert_array_equal(halo_nodes(pg), expected)
    with pytest.raises(ValueError, match="node_set"):
        halo_nodes(pg, "grid")


def test_plot_partition_colours_cells_by_part_and_rings_halo():
    graph, points, cells, parts = strip_graph()
    pg = partition_graph(graph, parts, 2)
    ax = Figure().subplots()
    collection = plot_partition(ax, points, cells, pg)
    np.testing.assert_array_equal(collection.get_array(), parts[cells[:, 0]])
    (rings,) = ax.collections[1:]  # the halo scatter
    assert len(rings.get_offsets()) == int(halo_nodes(pg).sum()) == 4
    assert ax.get_title() == "2 parts"
    # A plain parts array: no halo drawn.
    ax = Figure().subplots()
    plot_partition(ax, points[None], cells[None], parts, title="parts")
    assert len(ax.collections) == 1 and ax.get_title() == "parts"


def test_plot_partition_rejects_bad_parts():
    _, points, cells, parts = strip_graph()
    ax = Figure().subplots()
    with pytest.raises(ValueError, match="partition"):
        plot_partition(ax, points, cells, parts[:-1])
    with pytest.raises(ValueError, match="partition"):
        plot_partition(ax, points, cells, parts.astype(np.float32))
    with pytest.raises(ValueError, match="≥ 0"):
        plot_partition(ax, points, cells, parts - 1)
