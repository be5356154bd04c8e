"""Rectangular cloth sheets (the flag_simple setting) and their 3-D placement.

Rest coordinates: `points[:, 0]` = u in [0, width] runs away from the pole,
`points[:, 1]` = v in [0, height] runs up. `cloth_world_pos` stands the sheet
up in the world x-z plane (z up, gravity along -z) with the u = 0 edge on a
vertical pole through `origin`, so "left_edge" (the default: a flag sewn to its
pole) or "left_corners" (two grommets) hold a flag and "top_edge" a curtain.
"""

from __future__ import annotations

import math

import numpy as np

from meshsim.meshes.quality import check_mesh
from meshsim.meshes.types import TriangleMesh
from meshsim.node_types import NodeType
from meshsim.validation import is_number

HANDLE_PRESETS = ("left_corners", "left_edge", "top_corners", "top_edge")
ORIENTATIONS = ("alternate", "right", "left")


def _grid_cells(nx: int, ny: int, orientation: str) -> np.ndarray:
    """`[2 (nx-1) (ny-1), 3] int32` counter-clockwise triangles of a node grid."""
    i, j = np.meshgrid(np.arange(nx - 1), np.arange(ny - 1), indexing="xy")
    i, j = i.ravel(), j.ravel()
    a = j * nx + i  # lower left of each quad
    b, c, d = a + 1, a + nx + 1, a + nx  # lower right, upper right, upper left
    if orientation == "right":  # diagonal a-c ("/")
        slash = np.ones_like(a, dtype=bool)
    elif orientation == "left":  # diagonal b-d ("\")
        slash = np.zeros_like(a, dtype=bool)
    else:  # checkerboard of both: no preferred shear direction
        slash = (i + j) % 2 == 0
    first = np.where(slash[:, None], np.stack([a, b, c], 1), np.stack([a, b, d], 1))
    second = np.where(slash[:, None], np.stack([a, c, d], 1), np.stack([b, c, d], 1))
    return np.stack([first, second], axis=1).reshape(-1, 3).astype(np.int32)


def _handle_indices(handles, nx: int, ny: int) -> np.ndarray:
    top = (ny - 1) * nx
    if isinstance(handles, str):
        presets = {
            "left_corners": [0, top],
            "left_edge": np.arange(ny) * nx,
            "top_corners": [top, top + nx - 1],
            "top_edge": top + np.arange(nx),
        }
        if handles not in presets:
            raise ValueError(
                f"handles must be one of {HANDLE_PRESETS} or node indices, got {handles!r}"
            )
        return np.asarray(presets[handles], dtype=np.int64)
    idx = np.asarray(handles)
    if idx.ndim != 1 or idx.size == 0 or not np.issubdtype(idx.dtype, np.integer):
        raise ValueError(f"handles must be a non-empty 1-D integer array, got {idx!r}")
    bad = idx[(idx < 0) | (idx >= nx * ny)]
    if bad.size:
        raise ValueError(f"handle node {bad[0]} does not exist (mesh has {nx * ny} nodes)")
    return idx


def cloth_mesh(
    *,
    width: float = 2.0,
    height: float = 1.2,
    nx: int = 51,
    ny: int = 31,
    handles: str | np.ndarray = "left_edge",
    orientation: str = "alternate",
) -> TriangleMesh:
    """A rectangular sheet triangulated on an `nx` x `ny` node grid.

    The defaults give 1581 nodes and 3000 cells with 4 cm spacing (flag_simple
    has ~1.6k nodes). Node `j * nx + i` sits at `(i * width / (nx - 1),
    j * height / (ny - 1))`.

    Args:
      width: extent along u (away from the pole).
      height: extent along v (up).
      nx: nodes along u, >= 2.
      ny: nodes along v, >= 2.
      handles: pinned nodes: "left_edge" (a flag sewn to its pole), "left_corners",
        "top_corners", "top_edge", or an integer array of node indices.
      orientation: how each grid square is split: "right" ("/" diagonals),
        "left" ("\\" diagonals) or "alternate" (checkerboard of both).

    Returns:
      A `TriangleMesh`: rest positions `[nx * ny, 2]`, counter-clockwise cells
      `[2 (nx - 1) (ny - 1), 3]`, HANDLE at handles and NORMAL elsewhere.
    """
    for name, value in [("width", width), ("height", height)]:
        if not is_number(value, greater_than=0):
            raise ValueError(f"{name} must be a finite positive number, got {value!r}")
    for name, value in [("nx", nx), ("ny", ny)]:
        if int(value) != value or value < 2:
            raise ValueError(f"{name} must be an integer >= 2, got {value!r}")
    if orientation not in ORIENTATIONS:
        raise ValueError(f"orientation must be one of {ORIENTATIONS}, got {orientation!r}")
    nx, ny = int(nx), int(ny)
    u, v = np.meshgrid(np.linspace(0.0, width, nx), np.linspace(0.0, height, ny), indexing="xy")
    points = np.stack([u.ravel(), v.ravel()], axis=1)
    cells = _grid_cells(nx, ny, orientation)
    node_type = np.full(nx * ny, NodeType.NORMAL, dtype=np.int32)
    node_type[_handle_indices(handles, nx, ny)] = NodeType.HANDLE
    check_mesh(points, cells)
    return TriangleMesh(points=points, cells=cells, node_type=node_type)


def cloth_world_pos(
    mesh: TriangleMesh,
    *,
    origin: tuple[float, float, float] = (0.0, 0.0, 0.0),
    yaw: float = 0.0,
) -> np.ndarray:
    """Places a sheet's rest configuration in 3-D, hanging from a vertical pole.

    Rest coordinate (u, v) goes to `origin + R_z(yaw) (u, 0, v)`: the sheet lies
    in a vertical plane (z up) containing the pole (the z axis through
    `origin`), turned by `yaw` radians about it from the x-z plane.

    Args:
      mesh: a sheet from `cloth_mesh` (`points [N, 2]`).
      origin: world position of rest point (0, 0), the bottom of the pole edge.
      yaw: rotation about the vertical axis, radians.

    Returns:
      `[N, 3] float64` world positions; edge lengths equal the rest lengths.
    """
    points = np.asarray(mesh.points, dtype=np.float64)
    if points.ndim != 2 or points.shape[1] != 2:
        raise ValueError(f"mesh.points must have shape [N, 2], got {points.shape}")
    origin = np.asarray(origin, dtype=np.float64)
    if origin.shape != (3,) or not np.isfinite(origin).all() or not math.isfinite(yaw):
        raise ValueError(f"origin must be 3 finite numbers and yaw finite, got {origin}, {yaw}")
    c, s = math.cos(yaw), math.sin(yaw)
    u, v = points[:, 0], points[:, 1]
    return origin + np.stack([c * u, s * u, v], axis=1)
