"""Mesh containers shared by the mesh generators: `TriangleMesh` and `Ellipse`."""

from __future__ import annotations

import dataclasses
import math
from typing import NamedTuple

import numpy as np

from meshsim.validation import is_int


class TriangleMesh(NamedTuple):
    """A 2-D triangle mesh with MeshGraphNets node types.

    The arrays map one-to-one onto the static trajectory fields of
    docs/CONVENTIONS.md (`mesh_pos`, `cells`, `node_type`) once a leading axis of
    length 1 is added and the dtypes are narrowed to float32/int32.
    """

    points: np.ndarray  # [num_nodes, 2] float64, rest positions (`mesh_pos`)
    cells: np.ndarray  # [num_cells, 3] int32, counter-clockwise vertex indices
    node_type: np.ndarray  # [num_nodes] int32, meshsim.node_types.NodeType values

    @property
    def num_nodes(self) -> int:
        return int(self.points.shape[0])

    @property
    def num_cells(self) -> int:
        return int(self.cells.shape[0])


@dataclasses.dataclass(frozen=True)
class Ellipse:
    """An elliptic obstacle (a hole in a 2-D domain).

    Attributes:
      center: (x, y) of the centre.
      radii: semi-axes (a, b) along the ellipse's own axes, both > 0.
      angle: rotation of the first semi-axis from the +x axis, in radians.
    """

    center: tuple[float, float]
    radii: tuple[float, float]
    angle: float = 0.0

    def __post_init__(self):
        center = tuple(float(c) for c in np.asarray(self.center, dtype=np.float64).ravel())
        radii = tuple(float(r) for r in np.asarray(self.radii, dtype=np.float64).ravel())
        if len(center) != 2 or not all(math.isfinite(c) for c in center):
            raise ValueError(f"Ellipse.center must be 2 finite numbers, got {self.center!r}")
        if len(radii) != 2 or not all(math.isfinite(r) and r > 0 for r in radii):
            raise ValueError(f"Ellipse.radii must be 2 finite positive numbers, got {self.radii!r}")
        if not math.isfinite(float(self.angle)):
            raise ValueError(f"Ellipse.angle must be finite, got {self.angle!r}")
        object.__setattr__(self, "center", center)
        object.__setattr__(self, "radii", radii)
        object.__setattr__(self, "angle", float(self.angle))

    @property
    def half_extent(self) -> tuple[float, float]:
        """Half width and half height of the axis-aligned bounding box."""
        (a, b), c, s = self.radii, math.cos(self.angle), math.sin(self.angle)
        return math.hypot(a * c, b * s), math.hypot(a * s, b * c)

    @property
    def perimeter(self) -> float:
        """Perimeter (Ramanujan's second approximation, relative error < 1e-9 here)."""
        a, b = self.radii
        h = ((a - b) / (a + b)) ** 2
        return math.pi * (a + b) * (1 + 3 * h / (10 + math.sqrt(4 - 3 * h)))

    def boundary(self, num_points: int) -> np.ndarray:
        """Counter-clockwise boundary points evenly spaced in arc length.

        Args:
          num_points: number of points, >= 3.

        Returns:
          `[num_points, 2] float64` points on the ellipse.
        """
        if not is_int(num_points):
            raise TypeError(f"num_points: expected an int >= 3, got {num_points!r}")
        if num_points < 3:
            raise ValueError(f"num_points must be >= 3, got {num_points}")
        # Uniform in arc length (not in the parameter t) so that elongated
        # ellipses get evenly sized boundary segments.
        t_dense = np.linspace(0.0, 2 * np.pi, 64 * num_points + 1)
        dense = self._at(t_dense)
        arc = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(dense, axis=0), axis=1))])
        targets = np.linspace(0.0, arc[-1], num_points, endpoint=False)
        return self._at(np.interp(targets, arc, t_dense))

    def contains(self, points: np.ndarray) -> np.ndarray:
        """`[M] bool`: whether each of `points [M, 2]` lies strictly inside."""
        points = np.asarray(points, dtype=np.float64)
        if points.ndim < 1 or points.shape[-1] != 2:
            raise ValueError(f"points: expected shape [..., 2], got {points.shape}")
        local = self._to_local(points)
        a, b = self.radii
        return (local[..., 0] / a) ** 2 + (local[..., 1] / b) ** 2 < 1.0

    def _at(self, t: np.ndarray) -> np.ndarray:
        a, b = self.radii
        c, s = math.cos(self.angle), math.sin(self.angle)
        x, y = a * np.cos(t), b * np.sin(t)
        return np.stack([self.center[0] + c * x - s * y, self.center[1] + s * x + c * y], axis=-1)

    def _to_local(self, points: np.ndarray) -> np.ndarray:
        c, s = math.cos(self.angle), math.sin(self.angle)
        dx, dy = points[..., 0] - self.center[0], points[..., 1] - self.center[1]
        return np.stack([c * dx + s * dy, -s * dx + c * dy], axis=-1)
