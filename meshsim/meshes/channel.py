"""Triangulated 2-D channels with elliptic obstacles (the cylinder_flow domain).

Node types follow the released MeshGraphNets `cylinder_flow` dataset, which uses
four types only: NORMAL inside, INFLOW on the left edge, OUTFLOW on the right
edge and WALL_BOUNDARY for every no-slip node, i.e. the top and bottom walls
*and the cylinder*. The corners belong to the walls (no-slip wins over the
inlet/outlet condition). Pass `obstacle_node_type=NodeType.OBSTACLE` to tell
obstacles apart from walls.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence

import numpy as np
import triangle
from scipy.spatial import cKDTree

from meshsim.meshes.quality import check_mesh, mesh_quality, signed_areas
from meshsim.meshes.types import Ellipse, TriangleMesh
from meshsim.node_types import NodeType
from meshsim.validation import is_number

logger = logging.getLogger(__name__)

# Boundary markers handed to Triangle; vertices that Triangle inserts on a
# segment inherit the segment's marker. 0 (interior) and 1 (Triangle's default
# for unmarked boundary) are avoided on purpose.
_WALL, _INFLOW, _OUTFLOW, _OBSTACLE0 = 2, 3, 4, 10

# Triangle's quality refinement guarantees min angles up to ~33 degrees; above
# that it may never terminate.
_MAX_MIN_ANGLE = 33.0
_MAX_REFINEMENT_PASSES = 8

DEFAULT_OBSTACLES = (Ellipse((0.2, 0.2), (0.05, 0.05)),)


def _equilateral_side(area: float) -> float:
    return math.sqrt(4.0 * area / math.sqrt(3.0))


def _validate_obstacles(
    obstacles: Sequence[Ellipse], length: float, height: float, clearance: float
) -> None:
    for k, ob in enumerate(obstacles):
        if not isinstance(ob, Ellipse):
            raise TypeError(f"obstacles[{k}] must be an Ellipse, got {type(ob).__name__}")
        hx, hy = ob.half_extent
        cx, cy = ob.center
        gap = min(cx - hx, length - cx - hx, cy - hy, height - cy - hy)
        if gap < clearance:
            raise ValueError(
                f"obstacles[{k}] {ob} is outside the channel [0, {length}] x [0, {height}] or "
                f"closer than {clearance:.3g} to its edge (gap {gap:.3g})"
            )
    dense = [ob.boundary(256) for ob in obstacles]
    for k, a in enumerate(obstacles):
        for m in range(k):
            b = obstacles[m]
            overlap = a.contains(dense[m]).any() or b.contains(dense[k]).any()
            overlap = overlap or a.contains(np.array(b.center)) or b.contains(np.array(a.center))
            gap = float(cKDTree(dense[m]).query(dense[k])[0].min())
            if overlap or gap < clearance:
                raise ValueError(
                    f"obstacles[{k}] {a} overlaps obstacles[{m}] {b} or is closer than "
                    f"{clearance:.3g} to it (gap {0.0 if overlap else gap:.3g})"
                )


def _edge_points(p0: np.ndarray, p1: np.ndarray, spacing: float) -> np.ndarray:
    """Points from p0 (included) towards p1 (excluded), `[n, 2]`."""
    n = max(1, math.ceil(np.linalg.norm(p1 - p0) / spacing))
    return p0 + np.linspace(0.0, 1.0, n + 1)[:-1, None] * (p1 - p0)


def _planar_graph(
    length: float, height: float, obstacles: Sequence[Ellipse], wall_spacing: float, n_obstacle: int
) -> dict[str, np.ndarray]:
    corners = np.array([[0.0, 0.0], [length, 0.0], [length, height], [0.0, height]])
    side_markers = (_WALL, _OUTFLOW, _WALL, _INFLOW)  # bottom, right, top, left
    vertices, vertex_markers, segment_markers = [], [], []
    for k, marker in enumerate(side_markers):
        pts = _edge_points(corners[k], corners[(k + 1) % 4], wall_spacing)
        marks = np.full(len(pts), marker)
        marks[0] = _WALL  # each side starts at a corner; corners are walls
        vertices.append(pts)
        vertex_markers.append(marks)
        segment_markers.append(np.full(len(pts), marker))
    n_outer = sum(len(v) for v in vertices)
    idx = np.arange(n_outer)
    segments = [np.stack([idx, (idx + 1) % n_outer], axis=1)]
    for k, ob in enumerate(obstacles):
        start = sum(len(v) for v in vertices)
        idx = np.arange(n_obstacle)
        vertices.append(ob.boundary(n_obstacle))
        vertex_markers.append(np.full(n_obstacle, _OBSTACLE0 + k))
        segment_markers.append(np.full(n_obstacle, _OBSTACLE0 + k))
        segments.append(start + np.stack([idx, (idx + 1) % n_obstacle], axis=1))
    graph = {
        "vertices": np.concatenate(vertices),
        "vertex_markers": np.concatenate(vertex_markers)[:, None].astype(np.int32),
        "segments": np.concatenate(segments).astype(np.int32),
        "segment_markers": np.concatenate(segment_markers)[:, None].astype(np.int32),
    }
    if obstacles:
        graph["holes"] = np.array([ob.center for ob in obstacles])
    return graph


def channel_mesh(
    *,
    length: float = 1.6,
    height: float = 0.41,
    obstacles: Sequence[Ellipse] = DEFAULT_OBSTACLES,
    max_area: float = 6.0e-4,
    obstacle_area: float = 2.5e-5,
    boundary_points: int = 40,
    grading_length: float = 0.3,
    min_angle: float = 25.0,
    resolution: float = 1.0,
    obstacle_node_type: NodeType = NodeType.WALL_BOUNDARY,
) -> TriangleMesh:
    """Quality triangulation of the channel [0, length] x [0, height] minus ellipses.

    The target cell size grows linearly with the distance d to the nearest
    obstacle boundary, from the side of an equilateral triangle of area
    `obstacle_area` at d = 0 to one of area `max_area` at d >= `grading_length`;
    Triangle refines (`r` switch with per-cell area bounds) until every cell
    meets it. The defaults give about 1.9k nodes and 3.6k cells, like the
    MeshGraphNets cylinder_flow meshes. Host-side, deterministic, ~10 ms.

    Args:
      length: channel length along x.
      height: channel height along y.
      obstacles: ellipses to cut out (0 or more); inside the channel, not
        overlapping and not touching each other or the walls.
      max_area: largest cell area far from obstacles (at resolution 1).
      obstacle_area: largest cell area at obstacle boundaries (at resolution 1).
      boundary_points: segments on each obstacle boundary (at resolution 1).
      grading_length: distance over which the cell size grows from fine to coarse.
      min_angle: smallest cell angle in degrees, at most 33.
      resolution: multiplies the linear resolution: areas are divided by
        `resolution**2`, boundary points multiplied by `resolution`.
      obstacle_node_type: node type of obstacle boundary nodes (WALL_BOUNDARY in
        cylinder_flow).

    Returns:
      A `TriangleMesh` with counter-clockwise cells and node types INFLOW (left
      edge without corners), OUTFLOW (right edge without corners),
      WALL_BOUNDARY (top and bottom walls with the four corners),
      `obstacle_node_type` (obstacle boundaries) and NORMAL.

    Raises:
      ValueError: for invalid sizes or obstacles outside the channel or
        overlapping (naming the obstacle index).
    """
    for name, value in [
        ("length", length),
        ("height", height),
        ("max_area", max_area),
        ("obstacle_area", obstacle_area),
        ("grading_length", grading_length),
        ("resolution", resolution),
    ]:
        if not is_number(value, greater_than=0):
            raise ValueError(f"{name} must be a finite positive number, got {value!r}")
    if obstacle_area > max_area:
        raise ValueError(f"obstacle_area {obstacle_area} must be <= max_area {max_area}")
    if not 0 < min_angle <= _MAX_MIN_ANGLE:
        raise ValueError(f"min_angle must be in (0, {_MAX_MIN_ANGLE}], got {min_angle}")
    if boundary_points < 8:
        raise ValueError(f"boundary_points must be >= 8, got {boundary_points}")
    obstacles = tuple(obstacles)
    obstacle_node_type = NodeType(obstacle_node_type)

    far_area = max_area / resolution**2
    near_area = obstacle_area / resolution**2
    n_obstacle = max(8, round(boundary_points * resolution))
    h_far, h_near = _equilateral_side(far_area), _equilateral_side(near_area)
    _validate_obstacles(obstacles, length, height, clearance=h_near)

    graph = _planar_graph(length, height, obstacles, h_far, n_obstacle)
    switches = f"pq{min_angle}"
    mesh = triangle.triangulate(graph, f"{switches}a{far_area:.17g}")
    if obstacles:
        # Distance to obstacle boundaries, from densely sampled boundary points.
        tree = cKDTree(np.concatenate([ob.boundary(8 * n_obstacle) for ob in obstacles]))
        for _ in range(_MAX_REFINEMENT_PASSES):
            x = mesh["vertices"][mesh["triangles"]]
            distance = tree.query(x.mean(axis=1))[0]
            size = h_near + (h_far - h_near) * np.clip(distance / grading_length, 0.0, 1.0)
            target = np.sqrt(3.0) / 4.0 * size**2
            if np.all(np.abs(signed_areas(mesh["vertices"], mesh["triangles"])) <= target):
                break
            mesh["triangle_max_area"] = target[:, None]
            mesh = triangle.triangulate(mesh, f"r{switches}a")

    points = np.ascontiguousarray(mesh["vertices"], dtype=np.float64)
    cells = np.ascontiguousarray(mesh["triangles"], dtype=np.int32)
    flip = signed_areas(points, cells) < 0
    cells[flip] = cells[flip][:, ::-1]

    markers = mesh["vertex_markers"].ravel()
    node_type = np.full(len(points), NodeType.NORMAL, dtype=np.int32)
    node_type[markers == _WALL] = NodeType.WALL_BOUNDARY
    node_type[markers == _INFLOW] = NodeType.INFLOW
    node_type[markers == _OUTFLOW] = NodeType.OUTFLOW
    node_type[markers >= _OBSTACLE0] = obstacle_node_type
    unknown = ~np.isin(markers, [0, _WALL, _INFLOW, _OUTFLOW]) & (markers < _OBSTACLE0)
    if unknown.any():  # would mean Triangle created boundary we did not declare
        raise RuntimeError(f"unexpected boundary marker {markers[unknown][0]} from Triangle")

    check_mesh(points, cells)
    quality = mesh_quality(points, cells)
    if quality.min_angle < min_angle - 1e-6:
        logger.warning("channel mesh min angle %.2f < requested %.2f", quality.min_angle, min_angle)
    logger.debug("channel mesh: %d nodes, %d cells, %s", len(points), len(cells), quality)
    return TriangleMesh(points=points, cells=cells, node_type=node_type)
