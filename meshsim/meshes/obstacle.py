"""Rigid obstacle surfaces in 3-D: the icosphere that cloth falls onto (sphere_simple).

The sphere is the split icosahedron of `meshsim.meshes.icosahedral_mesh` scaled to a
radius and moved to a centre; its vertices lie on the sphere and its flat faces
inside it. numpy only.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from meshsim.meshes.coordinates import xyz_to_latlon
from meshsim.meshes.icosahedral_mesh import icosahedral_hierarchy
from meshsim.validation import check_int, is_number

# Icosphere splits above this give > 40k vertices: far more than any obstacle needs.
MAX_OBSTACLE_SUBDIVISIONS = 6


class SurfaceMesh(NamedTuple):
    """A closed triangulated surface in 3-D."""

    vertices: np.ndarray  # [V, 3] float64, world positions
    faces: np.ndarray  # [F, 3] int32, counter-clockwise seen from outside (outward normals)


def sphere_surface_mesh(
    radius: float,
    center: tuple[float, float, float] = (0.0, 0.0, 0.0),
    subdivisions: int = 2,
) -> SurfaceMesh:
    """An icosphere: `10 * 4**s + 2` vertices on the sphere, `20 * 4**s` faces.

    Args:
      radius: sphere radius, > 0.
      center: `[3]` world position of the centre.
      subdivisions: times every face of the icosahedron is split in 4, in
        [0, MAX_OBSTACLE_SUBDIVISIONS]. The edge length is about
        `1.1 * radius / 2**s` (0.27 R at s = 2, 0.14 R at s = 3).

    Returns:
      A `SurfaceMesh` with outward-oriented faces (the normal `(b - a) x (c - a)`
      points away from the centre).

    Raises:
      ValueError: a non-positive or non-finite radius, a centre that is not 3
        finite numbers, or subdivisions out of range.
    """
    if not is_number(radius, greater_than=0):
        raise ValueError(f"radius: expected a finite number > 0, got {radius!r}")
    center_arr = np.asarray(center, dtype=np.float64)
    if center_arr.shape != (3,) or not np.isfinite(center_arr).all():
        raise ValueError(f"center: expected 3 finite numbers, got {center!r}")
    level = check_int("subdivisions", subdivisions, minimum=0, maximum=MAX_OBSTACLE_SUBDIVISIONS)
    unit = icosahedral_hierarchy(level)[-1]
    return SurfaceMesh(vertices=center_arr + radius * unit.vertices, faces=unit.faces.copy())


def sphere_mesh_pos(vertices: np.ndarray, center, radius: float) -> np.ndarray:
    """`[V, 2] float64` 2-D rest coordinates of sphere vertices: (R * longitude, R * latitude).

    Longitude in (-pi, pi] about the world z axis through `center`, latitude in
    [-pi/2, pi/2] from the equator, both in radians and scaled by `radius`, so
    distances near the equator are world distances (an equirectangular map; it
    shrinks towards the poles and cuts along longitude pi).

    Args:
      vertices: `[V, 3]` points on the sphere.
      center: `[3]` centre.
      radius: radius, > 0.
    """
    vertices = np.asarray(vertices, dtype=np.float64)
    if vertices.ndim != 2 or vertices.shape[1] != 3:
        raise ValueError(f"vertices: expected shape [V, 3], got {vertices.shape}")
    if not is_number(radius, greater_than=0):
        raise ValueError(f"radius: expected a finite number > 0, got {radius!r}")
    lat, lon = xyz_to_latlon(vertices - np.asarray(center, dtype=np.float64))
    lon = np.where(lon > 180.0, lon - 360.0, lon)
    return radius * np.radians(np.stack([lon, lat], axis=1))


def max_distance_to_vertex(subdivisions: int) -> float:
    """Largest distance from a point of the unit sphere to its nearest icosphere vertex.

    The circumradius (measured on the sphere, as a chord) of the largest face of
    the unit icosphere with `subdivisions` splits; multiply by the radius. It
    bounds how far a cloth node resting on the sphere can be from every sphere node.
    """
    unit = icosahedral_hierarchy(
        check_int("subdivisions", subdivisions, minimum=0, maximum=MAX_OBSTACLE_SUBDIVISIONS)
    )[-1]
    a, b, c = (unit.vertices[unit.faces[:, k]] for k in range(3))
    # The point of the sphere equidistant from a face's corners is its normalised normal.
    normal = np.cross(b - a, c - a)
    normal /= np.linalg.norm(normal, axis=1, keepdims=True)
    return float(np.max(np.linalg.norm(normal - a, axis=1))) if len(a) else math.nan
