"""Triangle-mesh quality measures and a validity check run by every mesh generator."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from scipy.spatial import cKDTree

# Areas and distances below this fraction of the bounding-box diagonal (squared
# for areas) are treated as zero: far above float64 round-off, far below any
# cell a simulation would use.
_RELATIVE_TOLERANCE = 1e-12


class MeshQuality(NamedTuple):
    """Summary statistics of a 2-D triangle mesh (angles in degrees)."""

    num_points: int
    num_cells: int
    min_angle: float  # smallest interior angle over all cells
    max_angle: float  # largest interior angle over all cells
    mean_angle: float  # always 60 for a valid mesh; kept for completeness
    min_area: float  # smallest signed cell area (negative: inverted cell)
    max_area: float  # largest signed cell area
    num_degenerate: int  # cells with |area| <= tolerance
    max_aspect_ratio: float  # circumradius / (2 * inradius); 1 for equilateral
    mean_aspect_ratio: float


def _points_and_cells(
    points, cells, *, dim: int | None = 2, min_cells: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """`(points [N, dim] float64, cells [C, 3] int)` after checking shapes, dtypes and that
    every index lies in [0, N); ValueError/TypeError naming the argument otherwise."""
    points, cells = np.asarray(points), np.asarray(cells)
    want = "[N, d]" if dim is None else f"[N, {dim}]"
    if points.ndim != 2 or (dim is not None and points.shape[1] != dim):
        raise ValueError(f"points: expected shape {want}, got {points.shape}")
    if not (np.issubdtype(points.dtype, np.floating) or np.issubdtype(points.dtype, np.integer)):
        raise TypeError(f"points: expected a float array, got dtype {points.dtype}")
    if cells.ndim != 2 or cells.shape[1] != 3 or cells.shape[0] < min_cells:
        raise ValueError(f"cells: expected shape [C, 3] with C ≥ {min_cells}, got {cells.shape}")
    if not np.issubdtype(cells.dtype, np.integer):
        if cells.size:
            raise TypeError(f"cells: expected an integer array, got dtype {cells.dtype}")
        cells = cells.astype(np.int64)  # np.asarray([]) is float64: an empty list is fine
    bad = np.flatnonzero(((cells < 0) | (cells >= points.shape[0])).any(axis=1))
    if bad.size:
        c = int(bad[0])
        raise ValueError(
            f"cells: expected indices in [0, {points.shape[0]}) (N points), got cell {c} = "
            f"{cells[c].tolist()}"
        )
    return points.astype(np.float64), cells


def signed_areas(points: np.ndarray, cells: np.ndarray) -> np.ndarray:
    """Signed areas of triangles, positive for counter-clockwise cells.

    Args:
      points: `[N, 2]` float vertex positions.
      cells: `[C, 3]` integer vertex indices.

    Returns:
      `[C] float64` signed areas.

    Raises:
      ValueError, TypeError: naming `points` or `cells` (shape, dtype, index range).
    """
    points, cells = _points_and_cells(points, cells)
    x = points[cells]  # [C, 3, 2]
    e1, e2 = x[:, 1] - x[:, 0], x[:, 2] - x[:, 0]
    return 0.5 * (e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0])


def cell_angles(points: np.ndarray, cells: np.ndarray) -> np.ndarray:
    """Interior angles of triangles, in degrees.

    Args:
      points: `[N, d]` float vertex positions (any dimension d).
      cells: `[C, 3]` integer vertex indices.

    Returns:
      `[C, 3] float64`; column k is the angle at vertex `cells[:, k]`
      (NaN for cells with a zero-length edge).

    Raises:
      ValueError, TypeError: naming `points` or `cells` (shape, dtype, index range).
    """
    points, cells = _points_and_cells(points, cells, dim=None)
    x = points[cells]  # [C, 3, d]
    angles = np.empty(x.shape[:2])
    for k in range(3):
        u = x[:, (k + 1) % 3] - x[:, k]
        v = x[:, (k + 2) % 3] - x[:, k]
        norms = np.linalg.norm(u, axis=-1) * np.linalg.norm(v, axis=-1)
        with np.errstate(invalid="ignore", divide="ignore"):
            cos = np.sum(u * v, axis=-1) / norms
        angles[:, k] = np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))
    return angles


def _edge_lengths(points: np.ndarray, cells: np.ndarray) -> np.ndarray:
    x = np.asarray(points, dtype=np.float64)[np.asarray(cells)]
    return np.stack([np.linalg.norm(x[:, (k + 1) % 3] - x[:, k], axis=-1) for k in range(3)], -1)


def mesh_quality(points: np.ndarray, cells: np.ndarray) -> MeshQuality:
    """Angle, area and aspect-ratio statistics of a 2-D triangle mesh.

    Cost is O(C); no validity checks are made (see `check_mesh`).

    Args:
      points: `[N, 2]` float vertex positions.
      cells: `[C, 3]` integer vertex indices, C >= 1.

    Returns:
      A `MeshQuality`.

    Raises:
      ValueError, TypeError: naming `points` or `cells` (shape, dtype, index range, or
        no cell at all: the statistics of an empty mesh are undefined).
    """
    points, cells = _points_and_cells(points, cells, min_cells=1)
    area = signed_areas(points, cells)
    angles = cell_angles(points, cells)
    tol = _RELATIVE_TOLERANCE * _scale(points) ** 2
    lengths = _edge_lengths(points, cells)
    semi_perimeter = 0.5 * lengths.sum(-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        # R = abc / (4A), r = A / s  =>  R / (2r) = abc * s / (8 A^2).
        aspect = np.prod(lengths, -1) * semi_perimeter / (8.0 * area**2)
    aspect = np.where(np.abs(area) > tol, aspect, np.inf)
    return MeshQuality(
        num_points=int(points.shape[0]),
        num_cells=int(cells.shape[0]),
        min_angle=float(np.nanmin(angles)),
        max_angle=float(np.nanmax(angles)),
        mean_angle=float(np.nanmean(angles)),
        min_area=float(area.min()),
        max_area=float(area.max()),
        num_degenerate=int(np.sum(np.abs(area) <= tol)),
        max_aspect_ratio=float(aspect.max()),
        mean_aspect_ratio=float(aspect.mean()),
    )


def _scale(points: np.ndarray) -> float:
    if points.size == 0:
        return 1.0
    diagonal = float(np.linalg.norm(points.max(0) - points.min(0)))
    return diagonal if diagonal > 0 else 1.0


def check_mesh(
    points: np.ndarray,
    cells: np.ndarray,
    *,
    min_angle_deg: float = 1.0,
    min_area: float = 0.0,
) -> None:
    """Raises ValueError if a 2-D triangle mesh is unusable for simulation.

    Checks, in order: shapes and dtypes, finite coordinates, cell indices in
    range, cells repeating a vertex, duplicated points, unused points,
    inverted (clockwise) and zero-area cells, cells with area <= `min_area`,
    cells with an angle < `min_angle_deg`. The message names the first
    offending cell (or point) and its value. Host-side numpy, O(N log N + C).

    Args:
      points: `[N, 2]` float vertex positions.
      cells: `[C, 3]` integer vertex indices, counter-clockwise.
      min_angle_deg: smallest interior angle allowed, in degrees.
      min_area: cells must have area strictly greater than this.

    Raises:
      ValueError: naming the offending cell or point.
      TypeError: if `cells` is not an integer array.
    """
    points, cells = np.asarray(points), np.asarray(cells)
    if points.ndim != 2 or points.shape[1] != 2:
        raise ValueError(f"points must have shape [N, 2], got {points.shape}")
    if not np.issubdtype(points.dtype, np.floating):
        raise TypeError(f"points must be a float array, got dtype {points.dtype}")
    if cells.ndim != 2 or cells.shape[1] != 3 or cells.shape[0] == 0:
        raise ValueError(f"cells must have shape [C, 3] with C >= 1, got {cells.shape}")
    if not np.issubdtype(cells.dtype, np.integer):
        raise TypeError(f"cells must be an integer array, got dtype {cells.dtype}")
    bad = np.flatnonzero(~np.isfinite(points).all(axis=1))
    if bad.size:
        raise ValueError(f"point {bad[0]} is not finite: {points[bad[0]].tolist()}")
    num_points = points.shape[0]
    bad = np.flatnonzero(((cells < 0) | (cells >= num_points)).any(axis=1))
    if bad.size:
        c = bad[0]
        raise ValueError(
            f"cell {c} = {cells[c].tolist()} references a missing point "
            f"(valid indices are 0..{num_points - 1})"
        )
    repeated = (
        (cells[:, 0] == cells[:, 1]) | (cells[:, 1] == cells[:, 2]) | (cells[:, 0] == cells[:, 2])
    )
    bad = np.flatnonzero(repeated)
    if bad.size:
        raise ValueError(f"cell {bad[0]} = {cells[bad[0]].tolist()} repeats a vertex")

    points = points.astype(np.float64)
    scale = _scale(points)
    pairs = cKDTree(points).query_pairs(_RELATIVE_TOLERANCE * scale, output_type="ndarray")
    if len(pairs):
        i, j = sorted(pairs[np.argmin(pairs.min(axis=1))])
        raise ValueError(f"points {i} and {j} are duplicates at {points[i].tolist()}")
    used = np.zeros(num_points, dtype=bool)
    used[cells.ravel()] = True
    bad = np.flatnonzero(~used)
    if bad.size:
        raise ValueError(f"point {bad[0]} at {points[bad[0]].tolist()} is not used by any cell")

    area = signed_areas(points, cells)
    tol = _RELATIVE_TOLERANCE * scale**2
    bad = np.flatnonzero(area < -tol)
    if bad.size:
        c = bad[0]
        raise ValueError(
            f"cell {c} = {cells[c].tolist()} is inverted (clockwise), signed area {area[c]:.3g}; "
            "cells must be counter-clockwise"
        )
    bad = np.flatnonzero(area <= tol)
    if bad.size:
        c = bad[0]
        raise ValueError(f"cell {c} = {cells[c].tolist()} is degenerate, area {area[c]:.3g}")
    bad = np.flatnonzero(area <= min_area)
    if bad.size:
        c = bad[0]
        raise ValueError(f"cell {c} has area {area[c]:.3g} <= min_area {min_area:.3g}")
    angles = cell_angles(points, cells).min(axis=1)
    bad = np.flatnonzero(angles < min_angle_deg)
    if bad.size:
        c = bad[0]
        raise ValueError(
            f"cell {c} = {cells[c].tolist()} has an angle of {angles[c]:.3g} degrees "
            f"< min_angle_deg {min_angle_deg}"
        )
