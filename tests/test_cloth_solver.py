"""Physics invariants of the mass-spring cloth solver, on sheets of 12-20 nodes."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from meshsim.meshes import cloth_mesh, cloth_world_pos
from meshsim.node_types import NodeType
from meshsim.solvers import (
    ClothParams,
    build_cloth_system,
    cloth_trajectory,
    simulate_cloth,
    spring_energy,
    stable_substeps,
    total_energy,
)
from meshsim.solvers import cloth as cloth_module

CONSERVATIVE = ClothParams(damping=0.0, wind_drag=0.0)


@pytest.fixture(scope="module")
def curtain():
    return cloth_mesh(width=0.4, height=0.3, nx=5, ny=4, handles="top_edge")


@pytest.fixture(scope="module")
def flag():
    return cloth_mesh(width=0.4, height=0.3, nx=4, ny=3)


def _edge_strain(mesh, world_pos):
    e = np.concatenate([mesh.cells[:, [0, 1]], mesh.cells[:, [1, 2]], mesh.cells[:, [2, 0]]])
    e = np.unique(np.sort(e, axis=1), axis=0)
    rest = np.linalg.norm(mesh.points[e[:, 1]] - mesh.points[e[:, 0]], axis=-1)
    return (
        np.linalg.norm(world_pos[..., e[:, 1], :] - world_pos[..., e[:, 0], :], axis=-1) / rest - 1
    )


def test_energy_is_conserved_without_damping_and_wind(curtain):
    system = build_cloth_system(curtain, CONSERVATIVE)
    params = dataclasses.replace(CONSERVATIVE, substeps=8 * stable_substeps(system, CONSERVATIVE))
    x0 = cloth_world_pos(curtain)
    x0[:, 1] += 0.05 * np.sin(8 * curtain.points[:, 0]) * (curtain.node_type == NodeType.NORMAL)
    xs, vs = simulate_cloth(curtain, x0, steps=50, params=params, return_velocity=True)
    energy = jax.vmap(lambda x, v: total_energy(system, x, v, params.gravity))(xs, vs)
    kinetic = 0.5 * np.sum(system.mass[:, None] * vs**2, axis=(1, 2))
    # Velocity Verlet conserves a nearby "shadow" energy: the error oscillates
    # without drift with amplitude O((omega dt)^2). At an eighth of the stable
    # step (omega dt ~ 0.2) it measures ~0.4% of the peak kinetic energy (1.6%
    # at a quarter, 4x per halving as expected); 2% leaves room for float32.
    assert kinetic.max() > 1e-3  # the sheet really moves
    assert np.abs(energy - energy[0]).max() < 0.02 * kinetic.max()


def test_handles_never_move(flag):
    traj = cloth_trajectory(flag, steps=20, seed=0)
    handles = np.flatnonzero(flag.node_type == NodeType.HANDLE)
    start = cloth_world_pos(flag).astype(np.float32)[handles]
    assert np.array_equal(
        traj["world_pos"][:, handles], np.broadcast_to(start, (20, len(handles), 3))
    )
    free = np.flatnonzero(flag.node_type == NodeType.NORMAL)
    assert np.abs(traj["world_pos"][-1, free] - traj["world_pos"][0, free]).max() > 1e-3


def test_stretch_is_bounded_under_gravity(curtain):
    xs = simulate_cloth(
        curtain, cloth_world_pos(curtain), steps=60, params=ClothParams(wind_drag=0.0)
    )
    # Static strain of a hanging curtain is density * g * height / stretch_stiffness
    # = 0.2 * 9.81 * 0.3 / 1000 = 0.06%; dropping from rest at most doubles it.
    # Diagonal and shear springs share the load, so 0.5% is a generous bound.
    assert np.isfinite(xs).all()
    assert _edge_strain(curtain, xs).max() < 5e-3
    assert xs[-1, :, 2].min() < xs[0, :, 2].min()  # it did sag


def test_trajectory_layout_and_determinism(flag):
    a = cloth_trajectory(flag, steps=20, seed=1)
    b = cloth_trajectory(flag, steps=20, seed=1)
    c = cloth_trajectory(flag, steps=20, seed=2)
    n, num_cells = flag.num_nodes, flag.num_cells
    expected = {
        "cells": ((1, num_cells, 3), np.int32),
        "mesh_pos": ((1, n, 2), np.float32),
        "node_type": ((1, n, 1), np.int32),
        "world_pos": ((20, n, 3), np.float32),
    }
    assert {k: (v.shape, v.dtype) for k, v in a.items()} == expected
    for key in a:
        assert np.array_equal(a[key], b[key])
    assert not np.allclose(a["world_pos"][-1], c["world_pos"][-1])


def test_scanned_rollout_matches_a_python_loop(flag):
    # The reference steps velocity Verlet by hand, calling the jitted forces.
    params = ClothParams(dt=0.002)  # short frames: 2 substeps are stable
    system = jax.tree.map(jnp.asarray, build_cloth_system(flag, params))
    frames, substeps = 3, 2
    assert stable_substeps(build_cloth_system(flag, params), params) <= substeps
    consts = {
        k: jnp.asarray(getattr(params, k), jnp.float32)
        for k in ("dt", "damping", "gravity", "wind", "wind_drag")
    }
    gusts = jax.tree.map(
        lambda a: jnp.asarray(a, jnp.float32), cloth_module._sample_gusts(params, 0)
    )
    x0 = jnp.asarray(cloth_world_pos(flag), jnp.float32)
    xs, _ = cloth_module._rollout(
        system, x0, jnp.zeros_like(x0), consts, gusts, num_frames=frames, substeps=substeps
    )

    forces = jax.jit(lambda x, v, t: cloth_module._forces(system, x, v, t, consts, gusts))
    free = ~np.asarray(system.pinned)[:, None]
    inv_mass = np.where(free, 1.0 / np.asarray(system.mass)[:, None], 0.0)
    dt = params.dt / substeps
    x, v = np.asarray(x0), np.zeros(x0.shape, np.float32)
    a = inv_mass * np.asarray(forces(x, v, 0.0))
    expected = [x]
    for step in range((frames - 1) * substeps):
        v_half = v + 0.5 * dt * a
        x = np.where(free, x + dt * v_half, x)
        a = inv_mass * np.asarray(forces(x, v_half, (step + 1) * dt))
        v = v_half + 0.5 * dt * a
        if (step + 1) % substeps == 0:
            expected.append(x)
    np.testing.assert_allclose(xs, np.stack(expected), atol=1e-6)


def test_energy_helpers_at_rest(flag):
    system = build_cloth_system(flag)
    x = jnp.asarray(cloth_world_pos(flag))
    assert float(spring_energy(system, x)) == pytest.approx(0.0, abs=1e-9)
    potential = 9.81 * np.sum(system.mass * np.asarray(x[:, 2]))
    total = float(total_energy(system, x, jnp.zeros_like(x)))
    assert total == pytest.approx(potential, rel=1e-5)
    # Mass is the sheet's area times the density.
    assert np.sum(system.mass) == pytest.approx(0.4 * 0.3 * ClothParams().density, rel=1e-6)


def test_input_validation(flag):
    x0 = cloth_world_pos(flag)
    with pytest.raises(ValueError, match=r"world_pos0 must have shape \[12, 3\]"):
        simulate_cloth(flag, x0[:, :2], steps=2)
    with pytest.raises(ValueError, match="non-finite"):
        simulate_cloth(flag, np.where(np.arange(12)[:, None] == 3, np.nan, x0), steps=2)
    with pytest.raises(ValueError, match="no HANDLE"):
        no_handles = flag._replace(node_type=np.zeros_like(flag.node_type))
        simulate_cloth(no_handles, x0, steps=2)
    with pytest.raises(ValueError, match="unstable"):
        simulate_cloth(flag, x0, steps=2, params=ClothParams(substeps=1))
    with pytest.raises(ValueError, match="steps"):
        simulate_cloth(flag, x0, steps=0)
    with pytest.raises(ValueError, match="stretch_stiffness"):
        ClothParams(stretch_stiffness=-1.0)
    with pytest.raises(ValueError, match="wind"):
        ClothParams(wind=(1.0, 0.0))
