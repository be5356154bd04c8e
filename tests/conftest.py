"""Shared test fixtures: tiny meshes built by hand, and deterministic seeds."""

import os

os.environ.setdefault("MPLBACKEND", "Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

import meshsim  # noqa: E402


def grid_cells(nx: int, ny: int) -> tuple[np.ndarray, np.ndarray]:
    """A structured triangle mesh of the unit square: (points [N,2] f32, cells [C,3] i32)."""
    xs, ys = np.meshgrid(np.linspace(0, 1, nx), np.linspace(0, 1, ny), indexing="xy")
    points = np.stack([xs.ravel(), ys.ravel()], 1).astype(np.float32)
    idx = np.arange(nx * ny).reshape(ny, nx)
    a, b = idx[:-1, :-1].ravel(), idx[:-1, 1:].ravel()
    c, d = idx[1:, :-1].ravel(), idx[1:, 1:].ravel()
    cells = np.concatenate([np.stack([a, b, d], 1), np.stack([a, d, c], 1)]).astype(np.int32)
    return points, cells


def mesh_graph(nx: int, ny: int, node_features: int = 5, seed: int = 0) -> meshsim.MultiGraph:
    """A one-edge-set graph on a grid mesh with random node features and relative-position
    edge features ([dx, dy, |d|])."""
    rng = np.random.default_rng(seed)
    points, cells = grid_cells(nx, ny)
    senders, receivers = meshsim.edges_from_cells(cells)
    rel = points[senders] - points[receivers]
    edge_features = np.concatenate([rel, np.linalg.norm(rel, axis=1, keepdims=True)], 1)
    nodes = rng.normal(size=(points.shape[0], node_features)).astype(np.float32)
    return meshsim.make_graph(nodes, {"mesh": (edge_features, senders, receivers)})


@pytest.fixture
def small_graph() -> meshsim.MultiGraph:
    return mesh_graph(4, 3)
