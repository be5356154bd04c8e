"""Cloth falling onto a rigid sphere: reference data in MeshGraphNets' sphere_simple layout.

Scene (world z up, SI units): a free square sheet (`cloth_mesh`, no pinned nodes)
starts flat and at rest above a sphere of radius R, falls under gravity, drapes over
it, slides and settles. The sheet is the mass-spring cloth of
`meshsim.solvers.cloth` with the wind off; the sphere is prescribed: it stands
still or moves at a constant velocity during a time window (sideways or up).

Contact (after every substep's drift, through the `collide` hook of the cloth
rollout): a node closer than `R + thickness` to the centre is projected radially
onto that shell; its velocity relative to the sphere loses its inward normal part
(inelastic) and, by Coulomb's law in impulse form (Bridson, Fedkiw & Anderson,
SIGGRAPH 2002), its tangential part shrinks by `mu * dv_n` (the removed
normal speed) or stops (static friction) when smaller than that. Only cloth nodes
collide; cloth edges may cut the shell between nodes by the chord sag
`L**2 / (8 R)` (< 2.5 mm at resolution 1, inside the 5 mm thickness; at 0.5 the
10 cm sheet's diagonals dip up to 4 mm inside R); no self-collision.

Output: cloth nodes first (NORMAL), then the sphere's icosphere nodes (OBSTACLE),
with the sphere's triangles appended to the cells.
"""

from __future__ import annotations

import dataclasses
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from meshsim.meshes import TriangleMesh, cloth_mesh
from meshsim.meshes.obstacle import max_distance_to_vertex, sphere_mesh_pos, sphere_surface_mesh
from meshsim.node_types import NodeType
from meshsim.solvers.cloth import (
    ClothParams,
    _rollout,
    _sample_gusts,
    build_cloth_system,
    stable_substeps,
)
from meshsim.validation import check_int, check_number

# The sheet: gravity only (no wind, no air drag), so free fall conserves energy;
# the springs' dashpots, friction and inelastic contact bring it to rest.
SPHERE_CLOTH_PARAMS = ClothParams(wind=(0.0, 0.0, 0.0), wind_drag=0.0, gust_strength=0.0)
SHEET_SIZE = 1.0  # m, side of the square sheet
# Coulomb coefficient between cloth and sphere: at 0.3 an off-centre sheet slides off.
DEFAULT_FRICTION = 0.5
DEFAULT_THICKNESS = 0.005  # m, contact shell beyond the radius (> chord sag of the cloth)
# The sheet stays on the sphere for these ranges at the default friction (measured over
# seeds 0..19: none slides off at resolution 1, 4 do at 0.5); there is no floor, so a
# sheet that slides off falls freely. Offsets >= 0.1 m with R <= 0.3 m lose many sheets.
RADIUS_RANGE = (0.25, 0.4)  # m, sphere radius per seed
OFFSET_RANGE = (0.0, 0.08)  # m, horizontal distance of the sphere's centre from the sheet's
GAP_RANGE = (0.05, 0.25)  # m, initial height of the sheet above the top of the sphere
MOTIONS = ("static", "slide", "rise")  # sphere kinematics, drawn uniformly per seed
SLIDE_SPEED_RANGE = (0.1, 0.3)  # m/s, horizontal speed of a sliding sphere
RISE_SPEED_RANGE = (0.05, 0.15)  # m/s, vertical speed of a rising sphere
MOVE_START_RANGE = (0.4, 0.8)  # s, when the sphere starts to move
MOVE_DURATION_RANGE = (0.4, 0.8)  # s, how long it moves


class SphereCollider(NamedTuple):
    """A rigid sphere and its contact law (a pytree; every field a float32 array).

    The centre moves at `velocity` for `move_start <= t <= move_end` and stands
    still otherwise: `center(t) = center + velocity * clip(t - move_start, 0,
    move_end - move_start)`.
    """

    center: jax.Array  # [3] float32, m, centre at t = 0
    radius: jax.Array  # [] float32, m
    velocity: jax.Array  # [3] float32, m/s, while moving
    move_start: jax.Array  # [] float32, s
    move_end: jax.Array  # [] float32, s
    friction: jax.Array  # [] float32, Coulomb coefficient mu >= 0
    thickness: jax.Array  # [] float32, m, nodes are kept at radius + thickness


def make_sphere_collider(
    *,
    center,
    radius: float,
    velocity=(0.0, 0.0, 0.0),
    move_start: float = 0.0,
    move_end: float = 0.0,
    friction: float = DEFAULT_FRICTION,
    thickness: float = DEFAULT_THICKNESS,
) -> SphereCollider:
    """A validated `SphereCollider` of float32 arrays (host side).

    Args:
      center: `[3]` centre at t = 0, m.
      radius: > 0, m.
      velocity: `[3]` velocity while moving, m/s.
      move_start, move_end: the moving window, s (`move_end >= move_start`).
      friction: Coulomb coefficient, >= 0.
      thickness: contact offset beyond the radius, >= 0, m.
    """
    vectors = {}
    for name, value in (("center", center), ("velocity", velocity)):
        arr = np.asarray(value, dtype=np.float64)
        if arr.shape != (3,) or not np.isfinite(arr).all():
            raise ValueError(f"{name}: expected 3 finite numbers, got {value!r}")
        vectors[name] = jnp.asarray(arr, jnp.float32)
    check_number("radius", radius, greater_than=0)
    check_number("move_start", move_start, minimum=0)
    check_number("move_end", move_end, minimum=move_start)
    check_number("friction", friction, minimum=0)
    check_number("thickness", thickness, minimum=0)
    scalars = dict(
        radius=radius,
        move_start=move_start,
        move_end=move_end,
        friction=friction,
        thickness=thickness,
    )
    return SphereCollider(**vectors, **{k: jnp.float32(v) for k, v in scalars.items()})


def sphere_center(collider: SphereCollider, t) -> jax.Array:
    """`[..., 3]` centre at times `t [...]` (s). Jit-safe."""
    t = jnp.asarray(t, jnp.float32)[..., None]
    moved = jnp.clip(t - collider.move_start, 0.0, collider.move_end - collider.move_start)
    return collider.center + collider.velocity * moved


def sphere_velocity(collider: SphereCollider, t) -> jax.Array:
    """`[..., 3]` velocity at times `t [...]` (s): `velocity` in the window, else 0. Jit-safe."""
    t = jnp.asarray(t, jnp.float32)[..., None]
    moving = (t >= collider.move_start) & (t < collider.move_end)
    return jnp.where(moving, collider.velocity, 0.0)


def sphere_contact(
    collider: SphereCollider, x: jax.Array, v: jax.Array, t
) -> tuple[jax.Array, jax.Array]:
    """Projects nodes out of the sphere with inelastic Coulomb contact. Jit-safe.

    A node at distance `r < R + thickness` from the centre moves radially to
    `R + thickness`. Its velocity relative to the sphere, `v_n n + v_t`, becomes
    `max(v_n, 0) n + max(0, 1 - mu dv_n / |v_t|) v_t` with `dv_n = max(-v_n, 0)`:
    no bounce, and friction removes at most `mu` times the normal impulse (per
    unit mass) from the sliding speed. Other nodes are untouched.

    Args:
      collider: the sphere.
      x: `[N, 3]` positions after a drift.
      v: `[N, 3]` velocities.
      t: time of `x`, s.

    Returns:
      `(x, v)`, each `[N, 3]`.
    """
    c, u = sphere_center(collider, t), sphere_velocity(collider, t)
    d = x - c
    r = jnp.linalg.norm(d, axis=-1, keepdims=True)
    n = d / jnp.maximum(r, 1e-12)
    reach = collider.radius + collider.thickness
    inside = r < reach
    rel = v - u
    vn = jnp.sum(rel * n, axis=-1, keepdims=True)
    tangential = rel - vn * n
    dvn = jnp.maximum(-vn, 0.0)
    speed_t = jnp.linalg.norm(tangential, axis=-1, keepdims=True)
    keep = jnp.maximum(0.0, 1.0 - collider.friction * dvn / jnp.maximum(speed_t, 1e-12))
    responded = u + jnp.maximum(vn, 0.0) * n + keep * tangential
    return jnp.where(inside, c + reach * n, x), jnp.where(inside, responded, v)


def simulate_cloth_sphere(
    mesh: TriangleMesh,
    world_pos0: np.ndarray,
    collider: SphereCollider,
    *,
    steps: int,
    params: ClothParams = SPHERE_CLOTH_PARAMS,
) -> tuple[np.ndarray, np.ndarray]:
    """Runs the cloth with sphere contact; frame 0 is the initial state.

    The sheet may be free (no HANDLE nodes) or pinned at its HANDLE nodes.
    Jit-compiled once per (mesh size, steps, substeps); the collider and the
    physical parameters are traced. Cost O(steps * substeps * (springs + cells)).

    Args:
      mesh: sheet with rest positions `points [N, 2]` and `cells [C, 3]`.
      world_pos0: `[N, 3]` initial positions (at rest).
      collider: the sphere (`make_sphere_collider`).
      steps: number of frames (>= 1), `params.dt` apart.
      params: cloth parameters; substeps default to the stable count.

    Returns:
      `(world_pos, velocity)`, each `[steps, N, 3] float32`.

    Raises:
      ValueError: bad shapes, non-finite positions, or unstable `params.substeps`.
    """
    check_int("steps", steps, minimum=1)
    if not isinstance(collider, SphereCollider):
        raise TypeError(f"collider: expected a SphereCollider, got {type(collider).__name__}")
    system = build_cloth_system(mesh, params, require_handles=False)
    x0 = np.asarray(world_pos0, dtype=np.float64)
    if x0.shape != (len(system.mass), 3) or not np.isfinite(x0).all():
        raise ValueError(
            f"world_pos0: expected finite values of shape [{len(system.mass)}, 3], got {x0.shape}"
        )
    needed = stable_substeps(system, params)
    substeps = needed if params.substeps is None else int(params.substeps)
    if substeps < needed:
        raise ValueError(f"params.substeps={substeps} is unstable for this mesh; use >= {needed}")
    consts = {k: getattr(params, k) for k in ("dt", "damping", "gravity", "wind", "wind_drag")}
    consts = {k: jnp.asarray(v, dtype=jnp.float32) for k, v in consts.items()}
    gusts = jax.tree.map(lambda a: jnp.asarray(a, jnp.float32), _sample_gusts(params, 0))
    x0 = jnp.asarray(x0, jnp.float32)
    xs, vs = _rollout(
        jax.tree.map(jnp.asarray, system),
        x0,
        jnp.zeros_like(x0),
        consts,
        gusts,
        num_frames=int(steps),
        substeps=substeps,
        collide=sphere_contact,
        collider=collider,
    )
    return np.asarray(xs, dtype=np.float32), np.asarray(vs, dtype=np.float32)


@dataclasses.dataclass(frozen=True, eq=False)
class SphereScene:
    """One seed's set-up: where the sheet starts and how the sphere moves."""

    sheet_pos0: np.ndarray  # [N, 3] float64, m, flat sheet at rest
    collider: SphereCollider
    motion: str  # one of MOTIONS


def scene_mesh(mesh_resolution: float = 1.0) -> tuple[TriangleMesh, int]:
    """The free sheet and the icosphere subdivisions used at `mesh_resolution`.

    The sheet has `n = max(5, round(20 * mesh_resolution) + 1)` nodes per side
    (21 x 21 = 441 nodes, 5 cm apart, at 1) and no pinned nodes; the sphere is
    split `clip(2 + round(log2(mesh_resolution)), 1, 5)` times (162 nodes at 1).
    """
    check_number("mesh_resolution", mesh_resolution, greater_than=0)
    n = max(5, int(round(20 * mesh_resolution)) + 1)
    mesh = cloth_mesh(width=SHEET_SIZE, height=SHEET_SIZE, nx=n, ny=n, handles="left_corners")
    mesh = mesh._replace(node_type=np.full(n * n, NodeType.NORMAL, dtype=np.int32))
    subdivisions = int(np.clip(2 + round(math.log2(mesh_resolution)), 1, 5))
    return mesh, subdivisions


def sample_sphere_scene(
    mesh: TriangleMesh,
    seed: int,
    *,
    friction: float = DEFAULT_FRICTION,
    motion: str | None = None,
) -> SphereScene:
    """Draws a scene from `seed` (deterministic).

    Radius U(RADIUS_RANGE); centre at a horizontal offset U(OFFSET_RANGE) in a
    uniform direction from the sheet's centre, which starts U(GAP_RANGE) above the
    sphere's top, turned by a uniform yaw. The motion is drawn uniformly from
    MOTIONS unless given: "slide" moves the sphere horizontally at
    U(SLIDE_SPEED_RANGE), "rise" up at U(RISE_SPEED_RANGE), from t0 ~
    U(MOVE_START_RANGE) for U(MOVE_DURATION_RANGE) seconds.
    """
    check_int("seed", seed, minimum=0)
    if motion is not None and motion not in MOTIONS:
        raise ValueError(f"motion: expected one of {MOTIONS} or None, got {motion!r}")
    rng = np.random.default_rng(seed)
    radius = rng.uniform(*RADIUS_RANGE)
    offset, heading = rng.uniform(*OFFSET_RANGE), rng.uniform(0, 2 * np.pi)
    gap, yaw = rng.uniform(*GAP_RANGE), rng.uniform(0, 2 * np.pi)
    drawn = MOTIONS[rng.integers(len(MOTIONS))]
    direction = rng.uniform(0, 2 * np.pi)
    speed_u = rng.uniform()  # position within the motion's speed range
    start, duration = rng.uniform(*MOVE_START_RANGE), rng.uniform(*MOVE_DURATION_RANGE)
    motion = drawn if motion is None else motion

    points = np.asarray(mesh.points, dtype=np.float64)
    local = points - points.mean(axis=0)
    c, s = math.cos(yaw), math.sin(yaw)
    sheet = np.stack([c * local[:, 0] - s * local[:, 1], s * local[:, 0] + c * local[:, 1]], axis=1)
    sheet_pos0 = np.concatenate([sheet, np.full((len(sheet), 1), radius + gap)], axis=1)
    center = (offset * math.cos(heading), offset * math.sin(heading), 0.0)
    velocity = np.zeros(3)
    if motion == "slide":
        speed = np.interp(speed_u, [0, 1], SLIDE_SPEED_RANGE)
        velocity = speed * np.array([math.cos(direction), math.sin(direction), 0.0])
    elif motion == "rise":
        velocity = np.array([0.0, 0.0, np.interp(speed_u, [0, 1], RISE_SPEED_RANGE)])
    collider = make_sphere_collider(
        center=center,
        radius=radius,
        velocity=velocity,
        move_start=start,
        move_end=start + duration,
        friction=friction,
    )
    return SphereScene(sheet_pos0=sheet_pos0, collider=collider, motion=motion)


def cloth_sphere_trajectory(
    *,
    seed: int,
    steps: int,
    mesh_resolution: float = 1.0,
    friction: float = DEFAULT_FRICTION,
    motion: str | None = None,
    params: ClothParams = SPHERE_CLOTH_PARAMS,
    return_velocity: bool = False,
) -> dict[str, np.ndarray]:
    """One cloth-on-sphere trajectory in MeshGraphNets' sphere_simple layout.

    Cloth nodes (NORMAL) come first, then the icosphere's (OBSTACLE), whose
    positions follow the sphere's prescribed motion. `mesh_pos` holds the sheet's
    rest (u, v) in m for cloth nodes and (R * longitude, R * latitude) for
    sphere nodes (`meshsim.meshes.obstacle.sphere_mesh_pos`). At the default
    resolution 100 frames take ~0.7 s on 2 CPU cores after a ~1 s compile.

    Args:
      seed: seeds the scene (`sample_sphere_scene`).
      steps: number of frames, `params.dt` (0.02 s) apart, including frame 0.
      mesh_resolution: scales the node spacing of sheet and sphere (`scene_mesh`).
      friction: Coulomb coefficient between cloth and sphere.
      motion: force one of MOTIONS for every seed; None draws it per seed.
      params: cloth parameters.
      return_velocity: also return the cloth nodes' `velocity [steps, N_cloth, 3]`
        (for energy diagnostics; not a sphere_simple field).

    Returns:
      `{"cells": [1, C, 3] int32, "mesh_pos": [1, N, 2] float32,
      "node_type": [1, N, 1] int32, "world_pos": [steps, N, 3] float32}`.
    """
    mesh, subdivisions = scene_mesh(mesh_resolution)
    scene = sample_sphere_scene(mesh, seed, friction=friction, motion=motion)
    cloth_pos, cloth_vel = simulate_cloth_sphere(
        mesh, scene.sheet_pos0, scene.collider, steps=steps, params=params
    )
    radius = float(scene.collider.radius)
    sphere = sphere_surface_mesh(radius, (0.0, 0.0, 0.0), subdivisions)
    centers = np.asarray(sphere_center(scene.collider, np.arange(steps) * params.dt))  # [T, 3]
    sphere_pos = sphere.vertices[None] + centers[:, None].astype(np.float64)
    n_cloth, n_sphere = mesh.num_nodes, len(sphere.vertices)
    node_type = np.concatenate(
        [np.full(n_cloth, NodeType.NORMAL), np.full(n_sphere, NodeType.OBSTACLE)]
    )
    out = {
        "cells": np.concatenate([mesh.cells, sphere.faces + n_cloth]).astype(np.int32)[None],
        "mesh_pos": np.concatenate(
            [mesh.points, sphere_mesh_pos(sphere.vertices, (0.0, 0.0, 0.0), radius)]
        ).astype(np.float32)[None],
        "node_type": node_type.astype(np.int32)[None, :, None],
        "world_pos": np.concatenate([cloth_pos, sphere_pos.astype(np.float32)], axis=1),
    }
    if return_velocity:
        out["velocity"] = cloth_vel
    return out


def cloth_sphere_meta(mesh_resolution: float = 1.0) -> dict:
    """Extra meta.json keys for cloth-on-sphere data.

    `world_edge_radius` (m, rounded up to a mm) is the larger of 1.5 cloth edge
    lengths and 1.25 times the farthest a cloth node resting on the sphere can be
    from every sphere node (the largest icosphere face's circumradius at the
    largest radius, plus the thickness), so that every node in contact has a
    world edge to the obstacle: 0.101 m = 2.0 cloth edges at resolution 1 (icosphere
    nodes up to 8.0 cm from a resting node), 0.054 m = 2.2 edges at resolution 2.

    Args:
      mesh_resolution: as for `cloth_sphere_trajectory`.
    """
    mesh, subdivisions = scene_mesh(mesh_resolution)
    edge = SHEET_SIZE / (math.isqrt(mesh.num_nodes) - 1)
    reach = max_distance_to_vertex(subdivisions) * RADIUS_RANGE[1] + DEFAULT_THICKNESS
    return {
        "simulator": "meshsim-cloth-sphere",
        "dt": SPHERE_CLOTH_PARAMS.dt,
        "world_edge_radius": math.ceil(1000 * max(1.5 * edge, 1.25 * reach)) / 1000,
    }
