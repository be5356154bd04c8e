"""Invariants of the built-in meshes: node types, orientation, topology, grading, checks."""

import ast
import pathlib

import numpy as np
import pytest

from meshsim.meshes import (
    Ellipse,
    TriangleMesh,
    cell_angles,
    channel_mesh,
    check_mesh,
    cloth_mesh,
    cloth_world_pos,
    mesh_quality,
    signed_areas,
)
from meshsim.node_types import NodeType

# Coarse settings keep every channel mesh below ~300 nodes (milliseconds).
COARSE = dict(max_area=4e-3, obstacle_area=4e-4, boundary_points=16)


def _edges(cells):
    e = np.concatenate([cells[:, [0, 1]], cells[:, [1, 2]], cells[:, [2, 0]]])
    return np.unique(np.sort(e, axis=1), axis=0)


@pytest.fixture(scope="module")
def channel():
    return channel_mesh(**COARSE)


def test_meshes_do_not_import_jax():
    root = pathlib.Path(__file__).parents[1] / "meshsim" / "meshes"
    for path in root.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            assert not any(n.split(".")[0] in ("jax", "flax") for n in names), path


def test_channel_mesh_dtypes_and_shapes(channel):
    assert isinstance(channel, TriangleMesh)
    assert channel.points.dtype == np.float64 and channel.points.shape[1] == 2
    assert channel.cells.dtype == np.int32 and channel.cells.shape[1] == 3
    assert channel.node_type.dtype == np.int32 and channel.node_type.shape == (channel.num_nodes,)


def test_channel_node_types_on_the_right_boundaries(channel):
    x, y = channel.points.T
    length, height, tol = 1.6, 0.41, 1e-9
    left, right = np.abs(x) < tol, np.abs(x - length) < tol
    wall = (np.abs(y) < tol) | (np.abs(y - height) < tol)
    on_cylinder = np.abs(np.hypot(x - 0.2, y - 0.2) - 0.05) < 0.05 * (1 - np.cos(np.pi / 16)) + tol
    t = channel.node_type
    # Walls include the 4 corners; inlet/outlet are the edges without corners.
    assert np.all(t[wall] == NodeType.WALL_BOUNDARY)
    assert np.all(t[left & ~wall] == NodeType.INFLOW)
    assert np.all(t[right & ~wall] == NodeType.OUTFLOW)
    # cylinder_flow stores the cylinder as WALL_BOUNDARY.
    assert np.all(t[on_cylinder] == NodeType.WALL_BOUNDARY) and on_cylinder.sum() >= 16
    boundary = left | right | wall | on_cylinder
    assert np.all(t[~boundary] == NodeType.NORMAL)
    assert (left & ~wall).sum() > 2 and (right & ~wall).sum() > 2


def test_obstacle_node_type_is_configurable():
    mesh = channel_mesh(**COARSE, obstacle_node_type=NodeType.OBSTACLE)
    r = np.hypot(mesh.points[:, 0] - 0.2, mesh.points[:, 1] - 0.2)
    assert np.all(mesh.node_type[r < 0.051] == NodeType.OBSTACLE)
    assert np.sum(mesh.node_type == NodeType.OBSTACLE) == np.sum(r < 0.051)


@pytest.mark.parametrize("min_angle", [20.0, 30.0])
def test_channel_cells_ccw_and_min_angle(min_angle):
    mesh = channel_mesh(**COARSE, min_angle=min_angle)
    assert np.all(signed_areas(mesh.points, mesh.cells) > 0)
    # Triangle guarantees the requested angle for inputs without small angles.
    assert cell_angles(mesh.points, mesh.cells).min() >= min_angle - 1e-9
    check_mesh(mesh.points, mesh.cells, min_angle_deg=min_angle - 1e-9)


@pytest.mark.parametrize(
    "obstacles",
    [
        (),
        (Ellipse((0.2, 0.2), (0.05, 0.05)),),
        (Ellipse((0.3, 0.2), (0.08, 0.04), angle=0.6), Ellipse((0.8, 0.15), (0.03, 0.06))),
    ],
)
def test_channel_euler_characteristic(obstacles):
    mesh = channel_mesh(**COARSE, obstacles=obstacles)
    v, e, f = mesh.num_nodes, len(_edges(mesh.cells)), mesh.num_cells
    assert v - e + f == 1 - len(obstacles)  # a disk with k holes


def test_channel_is_refined_near_obstacles(channel):
    edges = _edges(channel.cells)
    mid = channel.points[edges].mean(axis=1)
    length = np.linalg.norm(np.diff(channel.points[edges], axis=1)[:, 0], axis=1)
    d = np.hypot(mid[:, 0] - 0.2, mid[:, 1] - 0.2) - 0.05
    near, far = length[d < 0.05].mean(), length[d > 0.4].mean()
    assert near < 0.6 * far


def test_channel_default_size_like_cylinder_flow():
    mesh = channel_mesh()  # ~25 ms
    assert 1500 <= mesh.num_nodes <= 2200, mesh.num_nodes
    finer = channel_mesh(**COARSE, resolution=2.0)
    assert finer.num_nodes > 3 * channel_mesh(**COARSE).num_nodes


@pytest.mark.parametrize(
    "obstacles, match",
    [
        (
            (Ellipse((0.2, 0.2), (0.05, 0.05)), Ellipse((0.25, 0.2), (0.05, 0.05))),
            r"obstacles\[1\]",
        ),
        (
            (Ellipse((0.2, 0.2), (0.05, 0.05)), Ellipse((1.58, 0.2), (0.05, 0.05))),
            r"obstacles\[1\]",
        ),
        ((Ellipse((0.2, 0.39), (0.05, 0.05)),), r"obstacles\[0\].*outside"),
        ((Ellipse((0.2, 0.2), (0.01, 0.01)), Ellipse((0.2, 0.2), (0.1, 0.1))), r"obstacles\[1\]"),
    ],
)
def test_channel_rejects_bad_obstacles(obstacles, match):
    with pytest.raises(ValueError, match=match):
        channel_mesh(**COARSE, obstacles=obstacles)


def test_ellipse_validation_and_boundary():
    with pytest.raises(ValueError, match="radii"):
        Ellipse((0.0, 0.0), (0.1, -0.1))
    e = Ellipse((1.0, 2.0), (0.3, 0.1), angle=0.4)
    pts = e.boundary(50)
    shoelace = 0.5 * np.sum(pts[:, 0] * np.roll(pts[:, 1], -1) - np.roll(pts[:, 0], -1) * pts[:, 1])
    assert 0.99 * np.pi * 0.3 * 0.1 < shoelace < np.pi * 0.3 * 0.1  # counter-clockwise
    local = e._to_local(pts)
    assert np.allclose((local[:, 0] / 0.3) ** 2 + (local[:, 1] / 0.1) ** 2, 1.0)
    spacing = np.linalg.norm(np.diff(np.vstack([pts, pts[:1]]), axis=0), axis=1)
    assert spacing.max() < 1.05 * spacing.min()  # evenly spaced in arc length
    # Chords are a little shorter than the arcs they span.
    assert 0.99 * e.perimeter < spacing.sum() < e.perimeter


SQUARE = np.array([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]])


@pytest.mark.parametrize(
    "points, cells, match",
    [
        (SQUARE, [[0, 1, 2], [0, 3, 2]], r"cell 1 = \[0, 3, 2\] is inverted"),
        (SQUARE, [[0, 1, 2], [0, 2, 7]], r"cell 1 = \[0, 2, 7\] references a missing point"),
        (SQUARE, [[0, 1, 2], [0, 2, 2]], r"cell 1 = \[0, 2, 2\] repeats a vertex"),
        (SQUARE, [[0, 1, 2]], r"point 3 .* not used"),
        (
            np.vstack([SQUARE, [[0.5, 0.5]]]),
            [[0, 1, 2], [0, 2, 3], [0, 4, 2]],
            r"cell 2 .* degenerate",
        ),
        (
            np.vstack([SQUARE, [[1.0, 1.0]]]),
            [[0, 1, 2], [0, 4, 3]],
            r"points 2 and 4 are duplicates",
        ),
        (
            np.vstack([SQUARE, [[0.5, 0.499]]]),  # cell 0 is a sliver along the diagonal
            [[0, 4, 2], [0, 1, 4], [1, 2, 4], [0, 2, 3]],
            r"cell 0 .* angle of .* < min_angle_deg",
        ),
    ],
)
def test_check_mesh_rejects_degenerate_meshes(points, cells, match):
    with pytest.raises(ValueError, match=match):
        check_mesh(np.asarray(points, dtype=np.float64), np.asarray(cells, dtype=np.int32))


def test_check_mesh_min_area_and_types():
    cells = np.array([[0, 1, 2], [0, 2, 3]], dtype=np.int32)
    check_mesh(SQUARE, cells)
    with pytest.raises(ValueError, match=r"cell 0 has area 0.5 <= min_area"):
        check_mesh(SQUARE, cells, min_area=0.5)
    with pytest.raises(TypeError, match="integer"):
        check_mesh(SQUARE, cells.astype(np.float64))
    with pytest.raises(ValueError, match=r"\[N, 2\]"):
        check_mesh(np.zeros((4, 3)), cells)


def test_mesh_quality_of_two_right_triangles():
    q = mesh_quality(SQUARE, np.array([[0, 1, 2], [0, 2, 3]]))
    assert q.num_cells == 2 and q.num_degenerate == 0
    assert np.isclose(q.min_angle, 45.0) and np.isclose(q.max_angle, 90.0)
    assert np.isclose(q.mean_angle, 60.0) and np.isclose(q.min_area, 0.5)
    # Right isosceles: R = sqrt(2)/2, r = 1 - sqrt(2)/2.
    assert np.isclose(q.max_aspect_ratio, (np.sqrt(2) / 2) / (2 * (1 - np.sqrt(2) / 2)))


def test_cloth_mesh_counts_handles_and_orientation():
    mesh = cloth_mesh()
    assert (mesh.num_nodes, mesh.num_cells) == (51 * 31, 2 * 50 * 30)
    handles = np.flatnonzero(mesh.node_type == NodeType.HANDLE)
    assert np.all(mesh.points[handles, 0] == 0.0) and len(handles) == 31
    assert set(np.unique(mesh.node_type)) == {NodeType.NORMAL, NodeType.HANDLE}
    for orientation in ("alternate", "right", "left"):
        m = cloth_mesh(nx=4, ny=3, orientation=orientation)
        assert np.all(signed_areas(m.points, m.cells) > 0)
        v, e, f = m.num_nodes, len(_edges(m.cells)), m.num_cells
        assert v - e + f == 1


@pytest.mark.parametrize(
    "handles, expected",
    [
        ("left_corners", [0, 8]),
        ("left_edge", [0, 4, 8]),
        ("top_corners", [8, 11]),
        ("top_edge", [8, 9, 10, 11]),
        (np.array([5]), [5]),
    ],
)
def test_cloth_handles(handles, expected):
    mesh = cloth_mesh(width=0.3, height=0.2, nx=4, ny=3, handles=handles)
    assert np.flatnonzero(mesh.node_type == NodeType.HANDLE).tolist() == expected


def test_cloth_rejects_bad_arguments():
    with pytest.raises(ValueError, match="handle node 99"):
        cloth_mesh(nx=3, ny=3, handles=np.array([99]))
    with pytest.raises(ValueError, match="handles must be one of"):
        cloth_mesh(nx=3, ny=3, handles="bottom")
    with pytest.raises(ValueError, match="nx"):
        cloth_mesh(nx=1, ny=3)
    with pytest.raises(ValueError, match="orientation"):
        cloth_mesh(orientation="diagonal")


def test_cloth_world_pos_is_an_isometry():
    mesh = cloth_mesh(width=0.5, height=0.4, nx=5, ny=4)
    world = cloth_world_pos(mesh, origin=(1.0, 2.0, 3.0), yaw=0.7)
    e = _edges(mesh.cells)
    rest = np.linalg.norm(np.diff(mesh.points[e], axis=1), axis=-1)
    assert np.allclose(np.linalg.norm(np.diff(world[e], axis=1), axis=-1), rest)
    assert np.allclose(world[0], [1.0, 2.0, 3.0])
    assert np.allclose(world[:, 2] - 3.0, mesh.points[:, 1])  # v goes up
