"""Tetrahedral meshes and shapes of the deforming-plate solver: the plate (a box),
the rigid actuator (a box or a horizontal cylinder) and the actuator's signed
distance, which the contact solver uses.

Everything here is numpy on the host (scikit-fem only builds the triangles of a
cylinder's cross-section). Points are `[N, 3] float64`, cells `[C, 4] int32`
with positive volume.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from meshsim.validation import check_number, is_number

# Cells per unit length of the plate's mesh at mesh_resolution 1 (24 × 10 cells in
# plane on the default 1 × 0.4 × 0.05 plate, 2 through the thickness: 825 nodes).
PLATE_CELLS_PER_LENGTH = 24.0
ACTUATOR_SHAPES = ("box", "cylinder")


@dataclasses.dataclass(frozen=True, kw_only=True)
class Actuator:
    """A rigid actuator in its own frame: centred at the origin, extruded along the
    local y axis, turned by `yaw` about the world z axis.

    `box`: half extents `(hx, hy, hz)`. `cylinder`: radius `hx` (= `hz`), half
    length `hy`, axis along the local y axis (horizontal), so that it rolls a line
    into the plate.
    """

    shape: str = "box"  # one of ACTUATOR_SHAPES
    half_extents: tuple[float, float, float] = (0.06, 0.06, 0.04)  # m, (hx, hy, hz)
    yaw: float = 0.0  # rad, turn about world z

    def __post_init__(self):
        if self.shape not in ACTUATOR_SHAPES:
            raise ValueError(
                f"Actuator.shape: expected one of {ACTUATOR_SHAPES}, got {self.shape!r}"
            )
        h = tuple(float(x) for x in self.half_extents)
        if len(h) != 3 or not all(is_number(x, greater_than=0) for x in h):
            raise ValueError(
                f"Actuator.half_extents: expected 3 finite numbers > 0, got {self.half_extents!r}"
            )
        if self.shape == "cylinder" and h[0] != h[2]:
            raise ValueError(
                f"Actuator.half_extents: a cylinder needs hx == hz (its radius), got {h}"
            )
        object.__setattr__(self, "half_extents", h)
        check_number("Actuator.yaw", self.yaw)

    @property
    def rotation(self) -> np.ndarray:
        """`[3, 3] float64`: local → world rotation (yaw about z)."""
        c, s = math.cos(self.yaw), math.sin(self.yaw)
        return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])

    @property
    def bottom(self) -> float:
        """Distance from the centre down to the lowest point (m)."""
        return self.half_extents[2]


def _positive_cells(points: np.ndarray, cells: np.ndarray) -> np.ndarray:
    """Cells `[C, 4] int32` reordered so that every signed volume is positive."""
    cells = np.asarray(cells, dtype=np.int32).copy()
    x = points[cells]
    vol = np.einsum("ij,ij->i", np.cross(x[:, 1] - x[:, 0], x[:, 2] - x[:, 0]), x[:, 3] - x[:, 0])
    flip = vol < 0
    cells[flip, 0], cells[flip, 1] = cells[flip, 1], cells[flip, 0].copy()
    return cells


def tet_volumes(points: np.ndarray, cells: np.ndarray) -> np.ndarray:
    """Signed volumes `[C] float64` of tetrahedra `cells [C, 4]` over `points [N, 3]`."""
    x = np.asarray(points, dtype=np.float64)[cells]
    e = x[:, 1:] - x[:, :1]
    return np.einsum("ij,ij->i", np.cross(e[:, 0], e[:, 1]), e[:, 2]) / 6.0


def box_mesh(
    size: tuple[float, float, float], divisions: tuple[int, int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """A box `[0, Lx] × [0, Ly] × [0, Lz]` split into `divisions` cubes, 6 tetrahedra each.

    Returns:
      `points [N, 3] float64` (N = prod(divisions + 1)), `cells [C, 4] int32`
      (C = 6 prod(divisions)).
    """
    from skfem import MeshTet

    size = tuple(check_number(f"size[{i}]", s, greater_than=0) for i, s in enumerate(size))
    divisions = tuple(int(d) for d in divisions)
    if len(divisions) != 3 or min(divisions) < 1:
        raise ValueError(f"divisions: expected 3 ints >= 1, got {divisions!r}")
    axes = [np.linspace(0.0, s, d + 1) for s, d in zip(size, divisions, strict=True)]
    mesh = MeshTet.init_tensor(*axes)
    points = np.ascontiguousarray(mesh.p.T, dtype=np.float64)
    return points, _positive_cells(points, mesh.t.T)


def plate_divisions(
    size: tuple[float, float, float], mesh_resolution: float
) -> tuple[int, int, int]:
    """Cells along (x, y, z) of a plate of `size` at `mesh_resolution`: about
    `PLATE_CELLS_PER_LENGTH · resolution` per m, at least 2 along each axis (through
    the thickness rounded up, so that P2 elements see bending)."""
    n = PLATE_CELLS_PER_LENGTH * mesh_resolution
    return (
        max(2, round(n * size[0])),
        max(2, round(n * size[1])),
        max(2, math.ceil(n * size[2] - 1e-9)),
    )


def _extrude(
    points2d: np.ndarray, triangles: np.ndarray, ys: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """A 2-D triangulation in the local (x, z) plane extruded along local y.

    Each prism is cut into 3 tetrahedra by the sorted-index rule (every quad face
    is split along the diagonal from its smallest vertex index), which makes the
    cuts of neighbouring prisms agree.
    """
    n2, layers = len(points2d), len(ys)
    points = np.zeros((n2 * layers, 3))
    for k, y in enumerate(ys):
        points[k * n2 : (k + 1) * n2] = np.stack(
            [points2d[:, 0], np.full(n2, y), points2d[:, 1]], -1
        )
    tri = np.sort(triangles, axis=1)  # a < b < c
    a, b, c = tri[:, 0], tri[:, 1], tri[:, 2]
    cells = []
    for k in range(layers - 1):
        lo, hi = k * n2, (k + 1) * n2
        d, e, f = a + hi, b + hi, c + hi
        cells += [
            np.stack([a + lo, b + lo, c + lo, f], -1),
            np.stack([a + lo, b + lo, e, f], -1),
            np.stack([a + lo, d, e, f], -1),
        ]
    cells = np.concatenate(cells)
    return points, _positive_cells(points, cells)


def actuator_mesh(actuator: Actuator, spacing: float) -> tuple[np.ndarray, np.ndarray]:
    """The actuator's tetrahedra in its local frame, edges about `spacing` long.

    A cylinder's boundary nodes lie on its surface (the mesh is inscribed), so a
    point outside the exact shape (`signed_distance >= 0`) is outside the mesh too.

    Returns:
      `points [N, 3] float64` (local frame, centre at the origin), `cells [C, 4] int32`.
    """
    from skfem import MeshTri

    spacing = check_number("spacing", spacing, greater_than=0)
    hx, hy, hz = actuator.half_extents
    ny = max(1, math.ceil(2 * hy / spacing))
    ys = np.linspace(-hy, hy, ny + 1)
    if actuator.shape == "box":
        nx, nz = max(1, math.ceil(2 * hx / spacing)), max(1, math.ceil(2 * hz / spacing))
        tri = MeshTri.init_tensor(np.linspace(-hx, hx, nx + 1), np.linspace(-hz, hz, nz + 1))
        return _extrude(tri.p.T, tri.t.T, ys)
    # init_circle(r) has 4 * 2**r boundary edges on the unit circle.
    refs = max(1, math.ceil(math.log2(2 * math.pi * hx / spacing / 4)))
    tri = MeshTri.init_circle(refs)
    return _extrude(hx * tri.p.T, tri.t.T, ys)


def signed_distance(
    actuator: Actuator, center: np.ndarray, points: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Signed distance from world `points [P, 3]` to the actuator centred at `center [3]`.

    Negative inside. The normal is the distance's gradient: the outward normal of
    the nearest face (inside) or the unit vector from the nearest surface point
    (outside).

    Returns:
      `phi [P] float64` (m) and `normal [P, 3] float64` (world frame, unit length).
    """
    rot = actuator.rotation
    p = (np.asarray(points, dtype=np.float64) - np.asarray(center, dtype=np.float64)) @ rot
    sign = np.where(p >= 0, 1.0, -1.0)
    hx, hy, hz = actuator.half_extents
    if actuator.shape == "box":
        q = np.abs(p) - np.array([hx, hy, hz])  # [P, 3] distance past each face pair
        dirs = sign[:, :, None] * np.eye(3)  # [P, 3 faces, 3] outward normals
    else:
        r = np.hypot(p[:, 0], p[:, 2])
        radial = np.zeros_like(p)
        safe = np.maximum(r, 1e-300)
        radial[:, 0], radial[:, 2] = p[:, 0] / safe, p[:, 2] / safe
        radial[r == 0] = (0.0, 0.0, -1.0)  # on the axis: any radial direction
        axial = np.zeros_like(p)
        axial[:, 1] = sign[:, 1]
        q = np.stack([r - hx, np.abs(p[:, 1]) - hy], -1)  # [P, 2]
        dirs = np.stack([radial, axial], 1)  # [P, 2, 3]
    outside = np.maximum(q, 0.0)
    out_norm = np.linalg.norm(outside, axis=1)
    phi = out_norm + np.minimum(q.max(axis=1), 0.0)
    nearest = dirs[np.arange(len(p)), q.argmax(axis=1)]
    weights = outside / np.maximum(out_norm, 1e-300)[:, None]
    normal = np.where((out_norm > 0)[:, None], np.einsum("pk,pkd->pd", weights, dirs), nearest)
    return phi, normal @ rot.T


def top_faces(points: np.ndarray, cells: np.ndarray, height: float) -> np.ndarray:
    """Boundary triangles `[F, 3] int32` of tetrahedra `cells [C, 4]` whose vertices
    all lie at `z == height` (a plate's top), ordered so their normals point to +z."""
    faces = np.concatenate(
        [cells[:, [1, 2, 3]], cells[:, [0, 2, 3]], cells[:, [0, 1, 3]], cells[:, [0, 1, 2]]]
    )
    unique, counts = np.unique(np.sort(faces, axis=1), axis=0, return_counts=True)
    boundary = unique[counts == 1]
    top = boundary[
        np.all(np.abs(points[boundary, 2] - height) <= 1e-9 * max(1.0, abs(height)), axis=1)
    ]
    x = points[top]
    nz = np.cross(x[:, 1] - x[:, 0], x[:, 2] - x[:, 0])[:, 2]
    top[nz < 0] = top[nz < 0][:, [0, 2, 1]]
    return top.astype(np.int32)


def face_gaps(
    points: np.ndarray, surface: np.ndarray, triangles: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each of `points [P, 3]` against the plane of its own triangle
    `triangles [P, 3]` (vertex indices into `surface [N, 3]`, normals to +z).

    Returns:
      `weights [P, 3]` (barycentric in xy of the vertical projection; outside
      [0, 1] when the point is not over its triangle), `normal [P, 3]` (unit) and
      `gap [P]` (signed distance from the plane, negative below it).
    """
    x = surface[triangles]  # [P, 3 vertices, 3]
    e1, e2 = x[:, 1, :2] - x[:, 0, :2], x[:, 2, :2] - x[:, 0, :2]
    d = points[:, :2] - x[:, 0, :2]
    det = e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0]
    w1 = (d[:, 0] * e2[:, 1] - d[:, 1] * e2[:, 0]) / det
    w2 = (e1[:, 0] * d[:, 1] - e1[:, 1] * d[:, 0]) / det
    n = np.cross(x[:, 1] - x[:, 0], x[:, 2] - x[:, 0])
    normal = n / np.linalg.norm(n, axis=1, keepdims=True)
    gap = np.einsum("pd,pd->p", normal, points - x[:, 0])
    return np.stack([1 - w1 - w2, w1, w2], -1), normal, gap


def surface_gaps(
    points: np.ndarray, surface: np.ndarray, faces: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Where `points [P, 3]` lie against a surface that is a height field over xy.

    `surface [N, 3]` are the surface's vertex positions and `faces [F, 3]` its
    triangles (normals to +z); each point is projected vertically onto the
    triangle under (or above) it.

    Returns:
      `face [P] int64` (index into `faces`, -1 where no triangle is under the
      point) and `gap [P] float64` (signed distance from that triangle's plane,
      negative below it; inf without a triangle). Cost: O(P · F) time and memory.
    """
    face_ids = np.arange(len(faces))
    if len(points):  # only triangles whose xy box meets the points' xy box
        x = surface[faces][..., :2]  # [F, 3, 2]
        lo, hi = points[:, :2].min(0), points[:, :2].max(0)
        meets = np.all((x.max(1) >= lo - 1e-12) & (x.min(1) <= hi + 1e-12), axis=1)
        face_ids = face_ids[meets]
    if not len(face_ids):  # nothing under any point
        return np.full(len(points), -1, dtype=np.int64), np.full(len(points), np.inf)
    x = surface[faces[face_ids]]  # [F', 3, 3]
    e1, e2 = x[:, 1, :2] - x[:, 0, :2], x[:, 2, :2] - x[:, 0, :2]
    det = e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0]  # [F'], > 0 for an upward normal
    d = points[:, None, :2] - x[None, :, 0, :2]  # [P, F', 2]
    w1 = (d[..., 0] * e2[:, 1] - d[..., 1] * e2[:, 0]) / det
    w2 = (e1[:, 0] * d[..., 1] - e1[:, 1] * d[..., 0]) / det
    inside = (w1 >= -1e-12) & (w2 >= -1e-12) & (w1 + w2 <= 1 + 1e-12)
    face = np.where(inside.any(axis=1), face_ids[inside.argmax(axis=1)], -1)
    gap = face_gaps(points, surface, faces[np.maximum(face, 0)])[2]
    return face, np.where(face >= 0, gap, np.inf)
