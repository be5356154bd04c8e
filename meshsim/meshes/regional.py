"""Regional refinement of the icosahedral mesh: a stretched mesh, fine over one region.

As in regional data-driven models (e.g. stretched-grid graphs over a limited
area), the finest global level is split further over a region: a lat-lon box
(which may cross 0°E) or a disc (a spherical cap). A face of the finest global
level is refined iff all three of its corners lie in the region, and then every
one of its descendants is split, `extra_splits` times in all; faces outside keep
their size. New vertices are appended (vertices stay a prefix) and lie in the
spherical triangle of a refined face, so inside a disc exactly, and inside a box
but for the poleward bulge of a side past a latitude bound, ≈ s²/8 · tan(lat) for
a side of s radians (~0.005° at 60° with 6 splits).

Where refined faces meet unrefined ones, the midpoints of the shared sides are
hanging vertices: they lie on the great circle of the neighbour's side, so the
cones of the faces still tile the sphere: a point off the sides lies in exactly
one face (`sphere.containing_faces`). The refined levels, each a full tiling, extend
the hierarchy, so the multimesh (`icosahedral_mesh.multimesh_edges`) is the union of
every level's edges, refined ones included.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from meshsim.meshes.coordinates import latlon_to_xyz, xyz_to_latlon
from meshsim.meshes.icosahedral_mesh import IcosahedralMesh, split_faces
from meshsim.validation import check_int, check_number

MAX_EXTRA_SPLITS = 6  # each extra split quadruples the region's faces; 6 = 4096×


@dataclasses.dataclass(frozen=True)
class Refinement:
    """Where and how much to refine: a lat-lon box or a disc, `extra_splits` times.

    Build with `Refinement.box(...)` or `Refinement.disc(...)`.

    Attributes:
      bounds: (lat_min, lat_max, lon_min, lon_max) degrees, or None. The box runs
        east from lon_min to lon_max, so (350, 10) crosses 0°E; a span of 360° or
        more covers every longitude.
      center: (lat, lon) degrees of the disc's centre, or None.
      radius_deg: the disc's angular radius in (0, 90] degrees (a convex cap), or None.
      extra_splits: splits beyond the global level inside the region, >= 1.
    """

    bounds: tuple[float, float, float, float] | None = None
    center: tuple[float, float] | None = None
    radius_deg: float | None = None
    extra_splits: int = 1

    def __post_init__(self):
        check_int("Refinement.extra_splits", self.extra_splits, minimum=1, maximum=MAX_EXTRA_SPLITS)
        if (self.bounds is None) == (self.center is None) or (self.center is None) != (
            self.radius_deg is None
        ):
            raise ValueError(
                "Refinement: expected either bounds, or center and radius_deg, got "
                f"bounds={self.bounds!r}, center={self.center!r}, radius_deg={self.radius_deg!r}"
            )
        if self.bounds is not None:
            b = _floats(self.bounds)
            if len(b) != 4 or not all(map(math.isfinite, b)) or not -90 <= b[0] < b[1] <= 90:
                raise ValueError(
                    "Refinement.bounds: expected finite (lat_min, lat_max, lon_min, lon_max) "
                    f"with -90 <= lat_min < lat_max <= 90, got {self.bounds!r}"
                )
            if b[2] == b[3]:
                raise ValueError(f"Refinement.bounds: expected lon_min != lon_max, got {b!r}")
            object.__setattr__(self, "bounds", b)
        else:
            c = _floats(self.center)
            if len(c) != 2 or not all(map(math.isfinite, c)) or not -90 <= c[0] <= 90:
                raise ValueError(
                    "Refinement.center: expected finite (lat in [-90, 90], lon), "
                    f"got {self.center!r}"
                )
            radius = check_number("Refinement.radius_deg", self.radius_deg, greater_than=0)
            if radius > 90:
                raise ValueError(f"Refinement.radius_deg: expected <= 90, got {self.radius_deg!r}")
            object.__setattr__(self, "center", c)
            object.__setattr__(self, "radius_deg", radius)

    @classmethod
    def box(cls, lat_min, lat_max, lon_min, lon_max, *, extra_splits: int = 1) -> Refinement:
        """A lat-lon box running east from `lon_min` to `lon_max` (degrees)."""
        return cls(bounds=(lat_min, lat_max, lon_min, lon_max), extra_splits=extra_splits)

    @classmethod
    def disc(cls, lat, lon, radius_deg, *, extra_splits: int = 1) -> Refinement:
        """The points within `radius_deg` degrees of arc of (`lat`, `lon`)."""
        return cls(center=(lat, lon), radius_deg=radius_deg, extra_splits=extra_splits)

    def contains(self, xyz) -> np.ndarray:
        """`[N] bool`: whether each of the unit vectors `xyz [N, 3]` lies in the region
        (boundary included)."""
        xyz = np.asarray(xyz, np.float64).reshape(-1, 3)
        if self.center is not None:
            cosine = xyz @ latlon_to_xyz(*self.center)
            return cosine >= math.cos(math.radians(self.radius_deg))
        lat_min, lat_max, lon_min, lon_max = self.bounds
        span = lon_max - lon_min if lon_max - lon_min >= 360 else (lon_max - lon_min) % 360
        lat, lon = xyz_to_latlon(xyz)
        return (lat >= lat_min) & (lat <= lat_max) & ((lon - lon_min) % 360 <= span)


def _floats(value) -> tuple[float, ...]:
    """The numbers in `value` as a flat tuple; () if it holds anything else."""
    try:
        return tuple(float(x) for x in np.asarray(value, np.float64).ravel())
    except (TypeError, ValueError):
        return ()


def refine(finest: IcosahedralMesh, refinement: Refinement) -> list[IcosahedralMesh]:
    """The refined levels below the finest global level, each a tiling of the sphere.

    Args:
      finest: the finest global level (e.g. `icosahedral_hierarchy(6)[-1]`).
      refinement: where and how often to split.

    Returns:
      `refinement.extra_splits` meshes; level k holds the unrefined faces of
      `finest` followed by the k-times split descendants of the refined ones, and
      all vertices so far ([V_k, 3] float64, nested).

    Raises:
      ValueError: if no face of `finest` lies inside the region.
    """
    if not isinstance(refinement, Refinement):
        raise TypeError(f"refinement: expected a Refinement, got {type(refinement).__name__}")
    chosen = refinement.contains(finest.vertices)[finest.faces].all(axis=1)
    if not chosen.any():
        raise ValueError(
            f"refinement: no face of the finest level ({finest.num_faces} faces) has all "
            f"corners inside {refinement}; enlarge the region or add global splits"
        )
    vertices, active, kept = finest.vertices, finest.faces[chosen], finest.faces[~chosen]
    levels = []
    for _ in range(refinement.extra_splits):
        vertices, active = split_faces(vertices, active)
        levels.append(IcosahedralMesh(vertices=vertices, faces=np.concatenate([kept, active])))
    return levels


def vertex_radii(mesh: IcosahedralMesh, fraction: float) -> np.ndarray:
    """`[V] float64`: `fraction` × the longest side of the faces around each vertex.

    The grid2mesh radius for meshes of varying resolution (GraphCast's global rule
    uses the longest side of the whole level). A grid point in a face is within
    the face's circumradius, ≈ 0.577 × its side for these near-equilateral faces,
    of a corner, and each corner's radius covers its largest face, so `fraction`
    >= 0.6 links every grid point.
    """
    longest = mesh.edge_lengths().max(axis=1)  # [F]
    radii = np.zeros(mesh.num_vertices)
    for k in range(3):
        np.maximum.at(radii, mesh.faces[:, k], longest)
    return check_number("fraction", fraction, greater_than=0) * radii
