"""Synthetic cylinder-flow-like inputs on jittered, triangulated structured grids.

The benchmark needs meshes of a chosen size whose statistics match the
MeshGraphNets cylinder-flow data (2-D triangles, about six directed edges per
node, 11 node features = velocity 2 + node-type one-hot 9, 3 edge features =
relative position 2 + its norm, 2 outputs), not a real flow. A structured grid
whose interior nodes are jittered and whose quads are split along a random
diagonal gives exactly that, in milliseconds, for any size. numpy only.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from meshsim.graph import MultiGraph, edges_from_cells, make_graph
from meshsim.node_types import NUM_NODE_TYPES, NodeType

NODE_FEATURES = 2 + NUM_NODE_TYPES  # velocity + one-hot node type
EDGE_FEATURES = 3  # relative mesh position (2) + its norm
OUTPUT_SIZE = 2  # acceleration-like target per node

# Named sizes accepted by `--sizes` (nodes, about); exact counts come from the grid.
SIZES = {"tiny": 200, "2k": 2_000, "16k": 16_000, "128k": 128_000}


class Problem(NamedTuple):
    """One benchmark input: a graph plus what the loss needs.

    Fields:
      graph:     single-edge-set ("mesh") MultiGraph, numpy arrays, receivers sorted.
      target:    [num_nodes, 2] float32 — regression target per node.
      loss_mask: [num_nodes] bool — nodes whose error counts (NORMAL and OUTFLOW).
      cells:     [num_cells, 3] int32 — the triangles (kept for reporting).
    """

    graph: MultiGraph
    target: np.ndarray
    loss_mask: np.ndarray
    cells: np.ndarray


def parse_size(name: str) -> int:
    """'16k' -> 16000, '1m' -> 1000000, '2000' -> 2000; named sizes from SIZES first."""
    name = name.strip().lower()
    if name in SIZES:
        return SIZES[name]
    scale = {"k": 1_000, "m": 1_000_000}.get(name[-1:], 1)
    try:
        return int(float(name.rstrip("km")) * scale)
    except ValueError as err:
        raise ValueError(
            f"size: expected e.g. '16k', '1m' or one of {sorted(SIZES)}, got {name!r}"
        ) from err


def jittered_grid(num_nodes: int, *, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A triangulated, jittered grid on [0, 2] x [0, 1] with about `num_nodes` nodes.

    Returns:
      points    [N, 2] float32, cells [C, 3] int32, node_type [N] int32 (left INFLOW,
      right OUTFLOW, top/bottom WALL_BOUNDARY, interior NORMAL).
    """
    if num_nodes < 9:
        raise ValueError(f"num_nodes: expected ≥ 9, got {num_nodes}")
    rng = np.random.default_rng(seed)
    ny = max(3, round(math.sqrt(num_nodes / 2)))
    nx = max(3, round(num_nodes / ny))
    h = 1.0 / (ny - 1)
    xs, ys = np.meshgrid(np.linspace(0, 2, nx), np.linspace(0, 1, ny), indexing="xy")
    points = np.stack([xs.ravel(), ys.ravel()], 1)
    idx = np.arange(nx * ny).reshape(ny, nx)
    interior = np.zeros((ny, nx), bool)
    interior[1:-1, 1:-1] = True
    jitter = rng.uniform(-0.2 * h, 0.2 * h, size=points.shape)
    points = (points + jitter * interior.ravel()[:, None]).astype(np.float32)
    a, b = idx[:-1, :-1].ravel(), idx[:-1, 1:].ravel()
    c, d = idx[1:, :-1].ravel(), idx[1:, 1:].ravel()
    flip = rng.random(a.shape[0]) < 0.5  # random diagonal per quad
    t1 = np.where(flip[:, None], np.stack([a, b, c], 1), np.stack([a, b, d], 1))
    t2 = np.where(flip[:, None], np.stack([b, d, c], 1), np.stack([a, d, c], 1))
    cells = np.concatenate([t1, t2]).astype(np.int32)
    node_type = np.full((ny, nx), int(NodeType.NORMAL), np.int32)
    node_type[0, :] = node_type[-1, :] = int(NodeType.WALL_BOUNDARY)
    node_type[:, 0] = int(NodeType.INFLOW)
    node_type[:, -1] = int(NodeType.OUTFLOW)
    return points, cells, node_type.ravel()


def make_problem(num_nodes: int, *, seed: int = 0) -> Problem:
    """Cylinder-flow-shaped graph, target and loss mask on a mesh of ~`num_nodes` nodes."""
    points, cells, node_type = jittered_grid(num_nodes, seed=seed)
    rng = np.random.default_rng(seed + 1)
    x, y = points[:, 0], points[:, 1]
    # A smooth channel-like velocity (parabolic profile plus a few modes) and noise.
    u = 4 * y * (1 - y) + 0.1 * np.sin(3 * np.pi * x) * np.cos(2 * np.pi * y)
    v = 0.1 * np.sin(2 * np.pi * x) * np.sin(np.pi * y)
    velocity = np.stack([u, v], 1) + 0.01 * rng.normal(size=(points.shape[0], 2))
    one_hot = np.eye(NUM_NODE_TYPES, dtype=np.float32)[node_type]
    nodes = np.concatenate([velocity.astype(np.float32), one_hot], 1)
    senders, receivers = edges_from_cells(cells)
    rel = points[senders] - points[receivers]
    edge_features = np.concatenate([rel, np.linalg.norm(rel, axis=1, keepdims=True)], 1)
    graph = make_graph(nodes, {"mesh": (edge_features.astype(np.float32), senders, receivers)})
    target = (0.1 * rng.normal(size=(points.shape[0], OUTPUT_SIZE))).astype(np.float32)
    loss_mask = (node_type == int(NodeType.NORMAL)) | (node_type == int(NodeType.OUTFLOW))
    return Problem(graph=graph, target=target, loss_mask=loss_mask, cells=cells)


def channel_problem(num_nodes: int, seed: int = 0):
    """(graph, positions [N, 2], target [N, 2] float32, loss mask [N] bool) on a channel
    mesh of about `num_nodes` nodes with cylinder-flow-shaped features (11 node, 3 edge):
    a real channel mesh with a cylinder (`meshsim.meshes.channel_mesh`), random inputs."""
    from meshsim.meshes import channel_mesh  # imported when used (scipy's meshing)

    # Nodes grow like resolution²; one correction step lands within a few percent.
    resolution = math.sqrt(num_nodes / channel_mesh().num_nodes)
    mesh = channel_mesh(resolution=resolution)
    if abs(mesh.num_nodes / num_nodes - 1) > 0.03:
        mesh = channel_mesh(resolution=resolution * math.sqrt(num_nodes / mesh.num_nodes))
    rng = np.random.default_rng(seed)
    pos = mesh.points.astype(np.float32)
    senders, receivers = edges_from_cells(mesh.cells)
    rel = pos[senders] - pos[receivers]
    edges = np.concatenate([rel, np.linalg.norm(rel, axis=1, keepdims=True)], 1)
    one_hot = np.eye(NUM_NODE_TYPES, dtype=np.float32)[mesh.node_type]
    velocity = rng.normal(size=(mesh.num_nodes, 2)).astype(np.float32)
    nodes = np.concatenate([velocity, one_hot], 1)
    assert nodes.shape[1] == NODE_FEATURES and edges.shape[1] == EDGE_FEATURES
    graph = make_graph(nodes, {"mesh": (edges.astype(np.float32), senders, receivers)})
    target = (0.1 * rng.normal(size=(mesh.num_nodes, 2))).astype(np.float32)
    mask = np.isin(mesh.node_type, [int(NodeType.NORMAL), int(NodeType.OUTFLOW)])
    return graph, mesh.points, target, mask
