"""Cloth falling onto a sphere: the icosphere, the contact law and the trajectories.

Trajectories use mesh_resolution 0.5 (121 cloth + 42 sphere nodes) and 80 frames
(1.6 s), so that every rollout shares one compilation.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from meshsim.meshes import cloth_mesh
from meshsim.meshes.obstacle import max_distance_to_vertex, sphere_mesh_pos, sphere_surface_mesh
from meshsim.node_types import NodeType
from meshsim.solvers import cloth as cloth_module
from meshsim.solvers.cloth import build_cloth_system, total_energy
from meshsim.solvers.cloth_contact import (
    DEFAULT_FRICTION,
    DEFAULT_THICKNESS,
    SPHERE_CLOTH_PARAMS,
    cloth_sphere_meta,
    cloth_sphere_trajectory,
    make_sphere_collider,
    sample_sphere_scene,
    scene_mesh,
    simulate_cloth_sphere,
    sphere_center,
    sphere_contact,
    sphere_velocity,
)

RESOLUTION, STEPS = 0.5, 80


@pytest.fixture(scope="module")
def sheet():
    return scene_mesh(RESOLUTION)[0]


@pytest.fixture(scope="module")
def system(sheet):
    return build_cloth_system(sheet, SPHERE_CLOTH_PARAMS, require_handles=False)


def _run(seed, motion=None, friction=DEFAULT_FRICTION):
    return cloth_sphere_trajectory(
        seed=seed,
        steps=STEPS,
        mesh_resolution=RESOLUTION,
        motion=motion,
        friction=friction,
        return_velocity=True,
    )


def _split(traj, sheet, seed, motion=None):
    """Cloth positions [T, n, 3], sphere centres [T, 3] and the radius."""
    scene = sample_sphere_scene(sheet, seed, motion=motion)
    centers = np.asarray(sphere_center(scene.collider, np.arange(STEPS) * SPHERE_CLOTH_PARAMS.dt))
    return traj["world_pos"][:, : sheet.num_nodes], centers, float(scene.collider.radius)


# --- the icosphere ----------------------------------------------------------------


@pytest.mark.parametrize("subdivisions", [0, 1, 2, 3])
def test_icosphere_counts_radius_and_outward_faces(subdivisions):
    center, radius = np.array([0.3, -0.2, 1.0]), 0.7
    mesh = sphere_surface_mesh(radius, tuple(center), subdivisions)
    v, f = mesh.vertices, mesh.faces
    assert v.shape == (10 * 4**subdivisions + 2, 3) and v.dtype == np.float64
    assert f.shape == (20 * 4**subdivisions, 3) and f.dtype == np.int32
    np.testing.assert_allclose(np.linalg.norm(v - center, axis=1), radius, rtol=1e-12)
    a, b, c = (v[f[:, k]] for k in range(3))
    outward = np.einsum("fx,fx->f", np.cross(b - a, c - a), (a + b + c) / 3 - center)
    assert (outward > 0).all()
    # Closed and consistently oriented: every directed edge appears once, reversed once.
    directed = np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]])
    assert len({tuple(e) for e in directed}) == len(directed)
    assert {tuple(e) for e in directed} == {tuple(e[::-1]) for e in directed}
    assert len(v) - len(directed) // 2 + len(f) == 2  # Euler characteristic of a sphere
    # The bound on the distance to the nearest vertex holds for random points.
    rng = np.random.default_rng(0)
    p = rng.normal(size=(2000, 3))
    p = center + radius * p / np.linalg.norm(p, axis=1, keepdims=True)
    nearest = np.min(np.linalg.norm(p[:, None] - v[None], axis=-1), axis=1)
    assert nearest.max() <= radius * max_distance_to_vertex(subdivisions) * (1 + 1e-9)


def test_icosphere_and_mesh_pos_validation():
    with pytest.raises(ValueError, match="radius"):
        sphere_surface_mesh(0.0)
    with pytest.raises(ValueError, match="center"):
        sphere_surface_mesh(1.0, (0.0, 0.0))
    with pytest.raises(ValueError, match="subdivisions"):
        sphere_surface_mesh(1.0, subdivisions=7)
    with pytest.raises(ValueError, match="vertices"):
        sphere_mesh_pos(np.zeros((4, 2)), (0, 0, 0), 1.0)


def test_sphere_mesh_pos_is_radius_times_longitude_and_latitude():
    radius, center = 2.0, np.array([1.0, 1.0, 1.0])
    points = center + radius * np.array([[1, 0, 0], [0, 1, 0], [-1, 0, 0], [0, 0, 1], [0, -1, 0]])
    expected = radius * np.array(
        [[0, 0], [np.pi / 2, 0], [np.pi, 0], [0, np.pi / 2], [-np.pi / 2, 0]]
    )
    np.testing.assert_allclose(sphere_mesh_pos(points, center, radius), expected, atol=1e-12)


# --- the contact law -----------------------------------------------------------------


def test_contact_response_by_hand():
    collider = make_sphere_collider(center=(0, 0, 0), radius=1.0, friction=0.5, thickness=0.0)
    x = jnp.array(
        [
            [0.0, 0.0, 0.9],  # inside, moving in and sliding fast: kinetic friction
            [0.0, 0.0, 0.99],  # inside, moving in, sliding slowly: static friction
            [0.0, 0.0, 0.95],  # inside but already moving out: untouched velocity
            [0.0, 0.0, 1.5],  # outside: untouched
        ]
    )
    v = jnp.array([[2.0, 0.0, -1.0], [0.3, 0.0, -1.0], [1.0, 0.0, 0.5], [1.0, 2.0, -3.0]])
    for fn in (sphere_contact, jax.jit(sphere_contact)):
        x_new, v_new = fn(collider, x, v, 0.0)
        np.testing.assert_allclose(x_new, [[0, 0, 1], [0, 0, 1], [0, 0, 1], [0, 0, 1.5]], atol=1e-6)
        # Normal speed 1 removed; sliding speed 2 loses mu * 1 = 0.5; 0.3 < 0.5 stops.
        np.testing.assert_allclose(
            v_new, [[1.5, 0, 0], [0, 0, 0], [1.0, 0, 0.5], [1, 2, -3]], atol=1e-6
        )


def test_contact_is_relative_to_a_moving_sphere():
    def sphere(friction):
        return make_sphere_collider(
            center=(0, 0, 0),
            radius=1.0,
            velocity=(1.0, 0.0, 0.5),
            move_start=0.0,
            move_end=2.0,
            friction=friction,
            thickness=0.01,
        )

    # At t = 1 the centre is at (1, 0, 0.5); a node at rest just inside its top is
    # pushed to the shell. Relative to the sphere it moves at (-1, 0, -0.5): the
    # normal 0.5 is removed and friction takes mu * 0.5 off the sliding 1.
    x = jnp.array([[1.0, 0.0, 1.45]])
    for friction, vx in ((1.0, 0.5), (2.0, 1.0), (3.0, 1.0)):  # sticks from mu = 2 on
        x_new, v_new = sphere_contact(sphere(friction), x, jnp.zeros_like(x), 1.0)
        np.testing.assert_allclose(x_new, [[1.0, 0.0, 1.51]], atol=1e-6)
        np.testing.assert_allclose(v_new, [[vx, 0.0, 0.5]], atol=1e-6)
    collider = sphere(1.0)
    t = np.array([0.5, 1.0, 2.0, 3.0])
    np.testing.assert_allclose(
        sphere_center(collider, t), [[0.5, 0, 0.25], [1, 0, 0.5], [2, 0, 1], [2, 0, 1]]
    )
    np.testing.assert_allclose(sphere_velocity(collider, t)[:, 0], [1, 1, 0, 0])


def test_collider_and_simulation_validation(sheet):
    with pytest.raises(ValueError, match="radius"):
        make_sphere_collider(center=(0, 0, 0), radius=-1.0)
    with pytest.raises(ValueError, match="center"):
        make_sphere_collider(center=(0, 0), radius=1.0)
    with pytest.raises(ValueError, match="move_end"):
        make_sphere_collider(center=(0, 0, 0), radius=1.0, move_start=1.0, move_end=0.5)
    with pytest.raises(ValueError, match="friction"):
        make_sphere_collider(center=(0, 0, 0), radius=1.0, friction=-0.1)
    with pytest.raises(ValueError, match="motion"):
        sample_sphere_scene(sheet, 0, motion="spin")
    collider = make_sphere_collider(center=(0, 0, 0), radius=0.3)
    with pytest.raises(ValueError, match=r"world_pos0.*\[121, 3\]"):
        simulate_cloth_sphere(sheet, np.zeros((121, 2)), collider, steps=2)
    with pytest.raises(TypeError, match="collider"):
        simulate_cloth_sphere(sheet, np.zeros((121, 3)), (0, 0, 0), steps=2)


def test_flags_still_need_handles():
    free = cloth_mesh(nx=3, ny=3)
    free = free._replace(node_type=np.zeros(9, np.int32))
    with pytest.raises(ValueError, match="no HANDLE"):
        build_cloth_system(free)
    assert not build_cloth_system(free, require_handles=False).pinned.any()


# --- trajectories ------------------------------------------------------------------


def test_trajectory_layout_and_determinism(sheet):
    a = cloth_sphere_trajectory(seed=3, steps=STEPS, mesh_resolution=RESOLUTION)
    b = cloth_sphere_trajectory(seed=3, steps=STEPS, mesh_resolution=RESOLUTION)
    c = cloth_sphere_trajectory(seed=4, steps=STEPS, mesh_resolution=RESOLUTION)
    n_cloth, n_sphere = sheet.num_nodes, 42  # 11 x 11 sheet, icosphere split once
    n, num_cells = n_cloth + n_sphere, sheet.num_cells + 80
    expected = {
        "cells": ((1, num_cells, 3), np.int32),
        "mesh_pos": ((1, n, 2), np.float32),
        "node_type": ((1, n, 1), np.int32),
        "world_pos": ((STEPS, n, 3), np.float32),
    }
    assert {k: (v.shape, v.dtype) for k, v in a.items()} == expected
    for key in a:
        assert np.array_equal(a[key], b[key])
    assert not np.allclose(a["world_pos"][-1], c["world_pos"][-1])
    assert (a["node_type"][0, :n_cloth, 0] == NodeType.NORMAL).all()
    assert (a["node_type"][0, n_cloth:, 0] == NodeType.OBSTACLE).all()
    cells = a["cells"][0]
    assert np.array_equal(cells[: sheet.num_cells], sheet.cells)
    assert cells[sheet.num_cells :].min() == n_cloth and cells.max() == n - 1
    np.testing.assert_allclose(a["mesh_pos"][0, :n_cloth], sheet.points, atol=1e-6)


@pytest.mark.parametrize("seed,motion", [(0, "slide"), (0, "rise"), (2, None)])
def test_no_cloth_node_enters_the_sphere_and_the_sphere_is_rigid(sheet, seed, motion):
    traj = _run(seed, motion)
    x, centers, radius = _split(traj, sheet, seed, motion)
    gap = np.linalg.norm(x - centers[:, None], axis=-1) - radius
    assert np.sum(gap < -1e-4) == 0
    # Nodes are kept on the shell R + thickness, up to float32 rounding.
    assert gap.min() > DEFAULT_THICKNESS - 1e-5
    assert (gap < DEFAULT_THICKNESS + 1e-4).any()  # and contact did happen
    sphere = traj["world_pos"][:, sheet.num_nodes :]
    np.testing.assert_allclose(
        np.linalg.norm(sphere - centers[:, None], axis=-1), radius, atol=1e-5
    )
    np.testing.assert_allclose(
        sphere - sphere[:1],
        np.broadcast_to((centers - centers[0])[:, None], sphere.shape),
        atol=1e-5,
    )


@pytest.mark.parametrize("seed", [0, 2])
def test_energy_is_conserved_in_free_fall_and_never_grows_after_contact(sheet, system, seed):
    traj = _run(seed, "static")
    x, centers, radius = _split(traj, sheet, seed, "static")
    v = traj["velocity"]
    energy = np.asarray(jax.vmap(lambda a, b: total_energy(system, a, b))(x, v), np.float64)
    kinetic = 0.5 * np.sum(system.mass[:, None] * v.astype(np.float64) ** 2, axis=(1, 2))
    touching = np.linalg.norm(x - centers[:, None], axis=-1) < radius + DEFAULT_THICKNESS + 1e-4
    first = int(np.argmax(touching.any(axis=1)))
    assert first >= 3  # some free fall to check
    # Free fall of a flat sheet: springs stay at rest length and velocity Verlet
    # integrates constant gravity exactly; the rest is float32 rounding (measured
    # <= 5e-6 J at E0 ~ 1 J, against a kinetic energy of ~0.1 J at contact).
    assert np.abs(energy[:first] - energy[0]).max() < 1e-4 * max(kinetic[first], 1e-3)
    # After contact only dissipation (dashpots, inelastic contact, friction): the
    # measured frame-to-frame change is always negative; 1e-5 J allows rounding.
    assert np.diff(energy[first:]).max() < 1e-5
    assert energy[-1] < energy[0] - 0.5 * kinetic.max()


def test_sheet_settles_on_the_sphere(sheet, system):
    traj = _run(0, "static")
    x, centers, radius = _split(traj, sheet, 0, "static")
    v = traj["velocity"]
    kinetic = 0.5 * np.sum(system.mass[:, None] * v**2, axis=(1, 2))
    # Measured 0.031 at 1.6 s on this coarse sheet (5e-4 at 3 s on the default one).
    assert kinetic[-1] < 0.05 * kinetic.max()
    gap = np.linalg.norm(x[-1] - centers[-1], axis=-1) - radius
    assert gap.min() >= 0 and gap[np.argmin(x[-1, :, 2])] >= 0  # lowest node outside
    assert np.sum(gap < DEFAULT_THICKNESS + 1e-4) >= 5  # resting on it
    assert x[-1, :, 2].mean() > centers[-1, 2]  # draped over the top


def test_friction_holds_the_sheet(sheet):
    shifts = {}
    for mu in (0.0, DEFAULT_FRICTION):
        x, centers, _ = _split(_run(0, "static", friction=mu), sheet, 0, "static")
        shifts[mu] = x[-1].mean(0) - centers[-1]
    # Without friction the off-centre sheet slides off and falls; with it, it stays.
    assert np.hypot(*shifts[0.0][:2]) > 0.3 and shifts[0.0][2] < -0.5
    assert np.hypot(*shifts[DEFAULT_FRICTION][:2]) < 0.1 and shifts[DEFAULT_FRICTION][2] > 0


@pytest.mark.parametrize("motion", ["slide", "rise"])
def test_a_moving_sphere_carries_the_sheet(sheet, motion):
    moved, _, _ = _split(_run(0, motion), sheet, 0, motion)
    still, centers, _ = _split(_run(0, "static"), sheet, 0, "static")
    scene = sample_sphere_scene(sheet, 0, motion=motion)
    displacement = np.asarray(sphere_center(scene.collider, 1e3)) - centers[-1]
    assert np.linalg.norm(displacement) > 0.05
    # The sheet rests on the sphere and moves with it (measured within 3 mm).
    carried = moved[-1].mean(0) - still[-1].mean(0)
    np.testing.assert_allclose(carried, displacement, atol=0.015)


def test_meta_world_edge_radius_reaches_the_sphere():
    for resolution in (0.5, 1.0):
        meta = cloth_sphere_meta(resolution)
        assert meta["simulator"] == "meshsim-cloth-sphere"
        assert meta["dt"] == SPHERE_CLOTH_PARAMS.dt
        sheet, subdivisions = scene_mesh(resolution)
        edge = 1.0 / (np.sqrt(sheet.num_nodes) - 1)
        reach = 0.4 * max_distance_to_vertex(subdivisions) + DEFAULT_THICKNESS
        assert meta["world_edge_radius"] >= max(1.5 * edge, reach)
        assert meta["world_edge_radius"] <= 2.5 * edge
    assert cloth_sphere_meta(1.0)["world_edge_radius"] == pytest.approx(0.101)


def test_a_new_scene_or_friction_reuses_the_compiled_rollout():
    _run(5)
    before = cloth_module._rollout._cache_size()
    cloth_sphere_trajectory(seed=6, steps=STEPS, mesh_resolution=RESOLUTION, friction=0.2)
    assert cloth_module._rollout._cache_size() == before
