"""Cloth diagnostics: edge strain against the rest mesh (host-side numpy)."""

from __future__ import annotations

import numpy as np

from meshsim.diagnostics._checks import _mesh, _trajectory
from meshsim.graph import unique_edges

# ----------------------------------------------------------------------------- cloth strain


def edge_strain(world_pos: np.ndarray, mesh_pos: np.ndarray, cells: np.ndarray) -> np.ndarray:
    """Engineering strain |x_i − x_j| / L_ij − 1 of every mesh edge, per frame.

    Rest lengths L_ij come from `mesh_pos`, the flat rest configuration of
    flag_simple-style data: 0 for rigid motions, ε for a uniform stretch by 1 + ε.

    `world_pos [T, N, D]` float (D = 3 for cloth), `mesh_pos [N, 2]` float, `cells
    [C, 3]` int -> `[T, E] float64`, edges ordered as `meshsim.graph.unique_edges(cells)`.
    """
    pos, cells = _mesh(mesh_pos, cells)
    x = _trajectory(world_pos, "world_pos", len(pos))
    edges = unique_edges(cells)  # [E, 2]
    rest = np.linalg.norm(pos[edges[:, 0]] - pos[edges[:, 1]], axis=1)
    if not (rest > 0).all():
        edge = edges[np.argmin(rest)].tolist()
        raise ValueError(f"mesh_pos: expected edges of positive rest length, edge {edge} has 0")
    return np.linalg.norm(x[:, edges[:, 0]] - x[:, edges[:, 1]], axis=-1) / rest - 1.0


def mean_abs_strain(world_pos: np.ndarray, mesh_pos: np.ndarray, cells: np.ndarray) -> np.ndarray:
    """Mean |strain| over edges per frame: `[T] float64` (arguments of `edge_strain`)."""
    return np.mean(np.abs(edge_strain(world_pos, mesh_pos, cells)), axis=1)


def strain_error(
    pred: np.ndarray, truth: np.ndarray, mesh_pos: np.ndarray, cells: np.ndarray
) -> np.ndarray:
    """Mean over edges of |strain_pred − strain_truth|, `[T] float64`; `pred` and
    `truth` are `[T, N, D]` float, the rest as in `edge_strain`."""
    if np.shape(pred) != np.shape(truth):
        raise ValueError(
            f"pred, truth: expected equal shapes, got {np.shape(pred)}, {np.shape(truth)}"
        )
    difference = edge_strain(pred, mesh_pos, cells) - edge_strain(truth, mesh_pos, cells)
    return np.mean(np.abs(difference), axis=1)
