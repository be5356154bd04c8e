"""The icosahedral multimesh: the icosahedron, its hierarchy of splits and their edges.

Level r + 1 splits every face of level r into 4; vertices are nested, so the
multimesh is the union of every level's edges on the finest level's vertices, as in
GraphCast (Lam et al., Science 2023). Points are unit vectors in the frame of
`meshsim.meshes.sphere`. numpy/scipy only.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
from scipy.spatial import ConvexHull

from meshsim.validation import check_int

MAX_SPLITS = 10  # 10.5M vertices: more would exhaust host memory, and no model needs it


@dataclasses.dataclass(frozen=True, eq=False)
class IcosahedralMesh:
    """A triangulation of the unit sphere (one level of an icosahedral hierarchy).

    Attributes:
      vertices: [V, 3] float64 unit vectors; a level's vertices are a prefix of the
        next level's, so an index names the same point at every level.
      faces: [F, 3] int32 vertex indices, counter-clockwise seen from outside.
    """

    vertices: np.ndarray
    faces: np.ndarray

    @property
    def num_vertices(self) -> int:
        return int(self.vertices.shape[0])

    @property
    def num_faces(self) -> int:
        return int(self.faces.shape[0])

    def edge_lengths(self) -> np.ndarray:
        """`[F, 3] float64` chord lengths of sides ab, bc, ca of every face."""
        corners = self.vertices[self.faces]
        return np.linalg.norm(corners - np.roll(corners, -1, axis=1), axis=-1)


def icosahedron() -> IcosahedralMesh:
    """The regular icosahedron on the unit sphere, oriented as GraphCast's.

    Vertices: the cyclic permutations of (0, ±1, ±φ), normalised, which put an
    edge parallel to y on top. As GraphCast does, we turn them about the y axis
    by -(π - θ)/2, θ = 2 arcsin(φ/√3) ≈ 138.19° the dihedral angle, so that a face
    lies flat on top: the poles are face centres and no vertex sits on them. The
    orientation matters: it gives 1,618,824 grid2mesh edges for 0.25° and 6 splits
    (DeepMind's float32 code: 1,618,818; the paper: 1,618,746); the unturned
    icosahedron gives 1,629,780.
    """
    phi = (1 + math.sqrt(5)) / 2
    raw = np.array(
        [np.roll([0.0, a, b * phi], k) for k in range(3) for a in (1, -1) for b in (1, -1)]
    )
    angle = -(math.pi - 2 * math.asin(phi / math.sqrt(3))) / 2
    c, s = math.cos(angle), math.sin(angle)
    vertices = raw @ np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]]).T
    vertices /= np.linalg.norm(vertices, axis=1, keepdims=True)
    faces = ConvexHull(vertices).simplices  # the 20 faces, in either orientation
    corners = vertices[faces]
    normals = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    inward = np.einsum("fx,fx->f", normals, corners.sum(axis=1)) < 0
    faces = np.where(inward[:, None], faces[:, ::-1], faces)
    return IcosahedralMesh(vertices=vertices, faces=faces.astype(np.int32))


def split_faces(vertices: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Splits every face into 4 through its side midpoints, projected onto the sphere.

    Args:
      vertices: [V, 3] float64 unit vectors.
      faces: [F, 3] int, counter-clockwise from outside (may be a subset of a mesh).

    Returns:
      (vertices [V + M, 3] float64: the input, then the midpoints of the M distinct
      sides of `faces` in sorted order; faces [4F, 3] int32: face f becomes rows
      4f..4f+3 = its corners a, b, c and its centre, all counter-clockwise). A side
      shared by two faces gets one midpoint (a vectorised midpoint cache).
    """
    num = vertices.shape[0]
    a, b, c = faces.astype(np.int64).T
    sides = np.stack(
        [np.minimum(u, v) * num + np.maximum(u, v) for u, v in ((a, b), (b, c), (c, a))]
    )
    keys, inverse = np.unique(sides, return_inverse=True)
    mid = vertices[keys // num] + vertices[keys % num]
    mid /= np.linalg.norm(mid, axis=1, keepdims=True)
    ab, bc, ca = num + inverse.reshape(3, -1)
    children = np.stack([[a, ab, ca], [ab, b, bc], [ca, bc, c], [ab, bc, ca]])  # [4, 3, F]
    children = children.transpose(2, 0, 1).reshape(-1, 3).astype(np.int32)
    return np.concatenate([vertices, mid]), children


def icosahedral_hierarchy(splits: int) -> list[IcosahedralMesh]:
    """Levels 0..splits of the split icosahedron: 10·4^r + 2 vertices, 20·4^r faces.

    Level r + 1 splits every face of level r into 4 (`split_faces`); vertices are
    nested (prefixes). 6 splits take ~0.1 s.
    """
    levels = [icosahedron()]
    for _ in range(check_int("splits", splits, minimum=0, maximum=MAX_SPLITS)):
        levels.append(IcosahedralMesh(*split_faces(levels[-1].vertices, levels[-1].faces)))
    return levels


def multimesh_edges(hierarchy) -> tuple[np.ndarray, np.ndarray]:
    """The multimesh: the union of every level's edges, on the finest level's vertices.

    Args:
      hierarchy: `IcosahedralMesh`es with nested vertices, coarse to fine.

    Returns:
      (senders [E] int32, receivers [E] int32): both directions, no duplicates,
      sorted by sender then receiver. Levels 0..6 give 60, 300, 1,260, 5,100,
      20,460, 81,900, 327,660 edges.
    """
    hierarchy = list(hierarchy)
    if not hierarchy or not all(isinstance(m, IcosahedralMesh) for m in hierarchy):
        raise TypeError(
            f"hierarchy: expected a non-empty list of IcosahedralMesh, got {hierarchy!r:.60}"
        )
    faces = np.concatenate([m.faces for m in hierarchy]).astype(np.int64)
    num = hierarchy[-1].num_vertices
    keys = np.unique(faces[:, [0, 1, 2, 1, 2, 0]] * num + faces[:, [1, 2, 0, 0, 1, 2]])
    return (keys // num).astype(np.int32), (keys % num).astype(np.int32)


def max_edge_length(mesh: IcosahedralMesh) -> float:
    """The longest side (chord length) of `mesh.faces`."""
    return float(mesh.edge_lengths().max())
