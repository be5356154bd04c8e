"""Mass-spring cloth in wind: the reference solver for flag_simple-style data.

Model (world z up, SI units):
  * lumped masses `m_i = density * a_i`, with `a_i` a third of the rest area of
    the cells around node i;
  * three spring families, each with spring constant
    `k = stiffness * (a_i + a_j) / 2 / L0**2`, so that a stiffness is a
    membrane stiffness in N/m and results do not depend on the resolution:
    stretch (every mesh edge), shear (the two vertices opposite each interior
    edge) and bending (the two ends of straight 2-ring chains, rest angle at
    the middle node >= 150 degrees);
  * optional stiffness-proportional dashpots along springs (`damping`, in s);
  * gravity and wind: each cell feels `wind_drag * area * ((w - v) . n) n`,
    a linear drag on the velocity relative to the wind `w(t)` along the cell
    normal, shared equally by its vertices; `w(t)` is the mean wind turned by
    and scaled with seeded gusts (sums of sinusoids);
  * HANDLE nodes are pinned: they never move.
Integration is velocity Verlet (symplectic, second order) with `substeps`
substeps per frame, inside `lax.scan`s, jitted once per (mesh size, steps,
substeps).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import scipy.sparse
import scipy.sparse.linalg

from meshsim.meshes import TriangleMesh, check_mesh, cloth_mesh, cloth_world_pos
from meshsim.node_types import NodeType
from meshsim.validation import is_number

# Rest angle (degrees) at the middle node above which a 2-ring chain a-b-c is
# "straight" and gets a bending spring a-c.
_BEND_MIN_ANGLE = 150.0
# Number of sinusoids that make up the gust signal.
_NUM_GUST_MODES = 4
# Fraction of the stability limit of the time step used when choosing substeps.
_STABILITY_SAFETY = 0.85


@dataclasses.dataclass(frozen=True)
class ClothParams:
    """Physical and numerical parameters of `simulate_cloth` (SI units)."""

    density: float = 0.2  # kg/m^2, areal mass of the sheet
    stretch_stiffness: float = 1000.0  # N/m, springs along mesh edges
    shear_stiffness: float = 300.0  # N/m, springs across each interior edge
    bend_stiffness: float = 10.0  # N/m, springs along straight 2-ring chains
    # s, dashpot = damping * k along each spring; the default damps the highest
    # (grid-scale) modes by ~20% of critical and leaves the flapping modes alone.
    damping: float = 1e-4
    gravity: tuple[float, float, float] = (0.0, 0.0, -9.81)  # m/s^2
    wind: tuple[float, float, float] = (3.0, 0.0, 0.0)  # m/s, mean wind velocity
    wind_drag: float = 1.0  # kg/(m^2 s), normal force per area per normal speed
    gust_strength: float = 0.5  # relative amplitude of wind-speed fluctuations
    gust_angle: float = 0.35  # rad, amplitude of wind-direction fluctuations
    gust_frequency: float = 0.5  # Hz, typical gust frequency
    dt: float = 0.02  # s between output frames (flag_simple)
    substeps: int | None = None  # per frame; None picks the smallest stable count

    def __post_init__(self):
        for name in ("density", "stretch_stiffness", "dt", "gust_frequency"):
            value = getattr(self, name)
            if not is_number(value, greater_than=0):
                raise ValueError(f"ClothParams.{name} must be finite and > 0, got {value!r}")
        for name in (
            "shear_stiffness",
            "bend_stiffness",
            "damping",
            "wind_drag",
            "gust_strength",
            "gust_angle",
        ):
            value = getattr(self, name)
            if not is_number(value, minimum=0):
                raise ValueError(f"ClothParams.{name} must be finite and >= 0, got {value!r}")
        for name in ("gravity", "wind"):
            value = tuple(float(x) for x in getattr(self, name))
            if len(value) != 3 or not all(math.isfinite(x) for x in value):
                raise ValueError(f"ClothParams.{name} must be 3 finite numbers, got {value!r}")
            object.__setattr__(self, name, value)
        if self.substeps is not None and (int(self.substeps) != self.substeps or self.substeps < 1):
            raise ValueError(
                f"ClothParams.substeps must be None or an int >= 1, got {self.substeps!r}"
            )


class ClothSystem(NamedTuple):
    """Springs and masses of a sheet (a pytree of arrays; build with `build_cloth_system`)."""

    senders: np.ndarray  # [num_springs] int32, first node of each spring
    receivers: np.ndarray  # [num_springs] int32, second node of each spring
    rest_length: np.ndarray  # [num_springs] float32, m
    stiffness: np.ndarray  # [num_springs] float32, spring constant k in N/m
    mass: np.ndarray  # [num_nodes] float32, kg (handles included)
    pinned: np.ndarray  # [num_nodes] bool, True at HANDLE nodes
    cells: np.ndarray  # [num_cells, 3] int32, for wind forces
    rest_pos: np.ndarray  # [num_nodes, 2] float32, m, rest configuration


def _node_areas(points: np.ndarray, cells: np.ndarray) -> np.ndarray:
    x = points[cells]
    e1, e2 = x[:, 1] - x[:, 0], x[:, 2] - x[:, 0]
    area = 0.5 * np.abs(e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0])
    return np.bincount(cells.ravel(), np.repeat(area / 3.0, 3), minlength=len(points))


def _pair_keys(a: np.ndarray, b: np.ndarray, n: int) -> np.ndarray:
    return np.minimum(a, b).astype(np.int64) * n + np.maximum(a, b)


def _spring_pairs(points: np.ndarray, cells: np.ndarray) -> tuple[np.ndarray, ...]:
    """Unique node pairs `[S, 2]` for the stretch, shear and bending families."""
    n = len(points)
    # Local edge k of a cell joins vertices k+1 and k+2 and faces vertex k.
    ea = cells[:, [1, 2, 0]].ravel()
    eb = cells[:, [2, 0, 1]].ravel()
    opposite = cells.ravel()
    keys = _pair_keys(ea, eb, n)
    stretch_keys = np.unique(keys)

    order = np.argsort(keys, kind="stable")
    sorted_keys, sorted_opp = keys[order], opposite[order]
    interior = np.flatnonzero(sorted_keys[1:] == sorted_keys[:-1])  # edges with 2 cells
    shear_keys = np.unique(_pair_keys(sorted_opp[interior], sorted_opp[interior + 1], n))
    shear_keys = np.setdiff1d(shear_keys, stretch_keys)

    # Straight 2-ring chains a-b-c: for every node b, pairs of neighbours whose
    # rest directions from b are nearly opposite.
    src = np.concatenate([stretch_keys // n, stretch_keys % n])
    dst = np.concatenate([stretch_keys % n, stretch_keys // n])
    order = np.argsort(src, kind="stable")
    src, dst = src[order], dst[order]
    bounds = np.searchsorted(src, np.arange(n + 1))
    cos_max = math.cos(math.radians(_BEND_MIN_ANGLE))
    bend = []
    for b in range(n):
        nbr = dst[bounds[b] : bounds[b + 1]]
        d = points[nbr] - points[b]
        d /= np.linalg.norm(d, axis=1, keepdims=True)
        cos = d @ d.T
        i, j = np.nonzero(np.triu(cos <= cos_max, k=1))
        bend.append(_pair_keys(nbr[i], nbr[j], n))
    bend_keys = np.setdiff1d(np.unique(np.concatenate(bend)), np.union1d(stretch_keys, shear_keys))
    return tuple(np.stack([k // n, k % n], axis=1) for k in (stretch_keys, shear_keys, bend_keys))


def _validate_mesh(mesh: TriangleMesh, require_handles: bool = True) -> None:
    if not isinstance(mesh, TriangleMesh):
        raise TypeError(f"mesh must be a TriangleMesh, got {type(mesh).__name__}")
    check_mesh(mesh.points, mesh.cells)
    node_type = np.asarray(mesh.node_type)
    if node_type.shape != (len(mesh.points),):
        raise ValueError(
            f"mesh.node_type must have shape [{len(mesh.points)}], got {node_type.shape}"
        )
    if require_handles and not np.any(node_type == NodeType.HANDLE):
        raise ValueError("mesh has no HANDLE nodes: nothing holds the cloth")


def build_cloth_system(
    mesh: TriangleMesh, params: ClothParams = ClothParams(), *, require_handles: bool = True
) -> ClothSystem:
    """Springs, rest lengths, stiffnesses and masses of a sheet (host side, numpy).

    Args:
      mesh: sheet in its rest configuration (`points [N, 2]` are rest positions).
      params: stiffnesses and density.
      require_handles: raise if no node is a HANDLE; False for a free sheet.

    Returns:
      A `ClothSystem` of numpy arrays.
    """
    _validate_mesh(mesh, require_handles)
    points = np.asarray(mesh.points, dtype=np.float64)
    cells = np.asarray(mesh.cells, dtype=np.int32)
    node_area = _node_areas(points, cells)
    families = _spring_pairs(points, cells)
    stiff = (params.stretch_stiffness, params.shear_stiffness, params.bend_stiffness)
    pairs = np.concatenate(families)
    modulus = np.concatenate([np.full(len(p), s) for p, s in zip(families, stiff, strict=True)])
    keep = modulus > 0
    pairs, modulus = pairs[keep], modulus[keep]
    rest = np.linalg.norm(points[pairs[:, 1]] - points[pairs[:, 0]], axis=1)
    k = modulus * 0.5 * (node_area[pairs[:, 0]] + node_area[pairs[:, 1]]) / rest**2
    return ClothSystem(
        senders=pairs[:, 0].astype(np.int32),
        receivers=pairs[:, 1].astype(np.int32),
        rest_length=rest.astype(np.float32),
        stiffness=k.astype(np.float32),
        mass=(params.density * node_area).astype(np.float32),
        pinned=np.asarray(mesh.node_type) == NodeType.HANDLE,
        cells=cells,
        rest_pos=points.astype(np.float32),
    )


def max_angular_frequency(system: ClothSystem) -> float:
    """Highest angular frequency (rad/s) of the free nodes about the rest state.

    The largest eigenvalue of `M^-1/2 K M^-1/2` for the in-plane stiffness
    `K = sum_springs k (u u^T)` at rest (Lanczos, scipy); out-of-plane modes of a
    flat sheet are softer. Falls back to the Gershgorin bound
    `max_i 2 sum_{springs at i} k / m_i` if Lanczos does not converge.
    """
    n = len(system.mass)
    snd, rcv = system.senders.astype(np.int64), system.receivers.astype(np.int64)
    d = system.rest_pos[rcv].astype(np.float64) - system.rest_pos[snd]
    u = d / np.linalg.norm(d, axis=1, keepdims=True)
    rows, cols, vals = [], [], []
    for a in range(2):
        for b in range(2):
            kuu = system.stiffness * u[:, a] * u[:, b]
            for i, j, sign in ((snd, snd, 1), (rcv, rcv, 1), (snd, rcv, -1), (rcv, snd, -1)):
                rows.append(2 * i + a)
                cols.append(2 * j + b)
                vals.append(sign * kuu)
    stiffness = scipy.sparse.csr_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(2 * n, 2 * n)
    )
    free = np.repeat(~system.pinned, 2)
    scale = scipy.sparse.diags(1.0 / np.sqrt(np.repeat(system.mass.astype(np.float64), 2)))
    dynamic = (scale @ stiffness @ scale)[free][:, free]
    try:
        lam = scipy.sparse.linalg.eigsh(dynamic, k=1, which="LA", return_eigenvectors=False)[0]
    except (scipy.sparse.linalg.ArpackNoConvergence, ValueError, TypeError):
        k_sum = np.bincount(snd, system.stiffness, n) + np.bincount(rcv, system.stiffness, n)
        lam = np.max(2.0 * k_sum[~system.pinned] / system.mass[~system.pinned])
    return math.sqrt(max(float(lam), 0.0))


def stable_substeps(system: ClothSystem, params: ClothParams) -> int:
    """Smallest substep count for which velocity Verlet is stable, with margin.

    Velocity Verlet is stable for `omega dt < 2`; a dashpot of ratio
    `zeta = damping * omega / 2` lowers the limit to
    `2 / omega (sqrt(1 + zeta**2) - zeta)`. The step is kept at 85% of that,
    leaving room for the stiffening of stretched springs.
    """
    omega = max_angular_frequency(system)
    zeta = 0.5 * params.damping * omega
    dt_max = _STABILITY_SAFETY * 2.0 / omega * (math.sqrt(1.0 + zeta**2) - zeta)
    return max(1, math.ceil(params.dt / dt_max))


def spring_energy(system: ClothSystem, world_pos: jax.Array) -> jax.Array:
    """Elastic energy `sum 0.5 k (L - L0)**2` in J of `world_pos [N, 3]`. Jit-safe."""
    d = world_pos[system.receivers] - world_pos[system.senders]
    stretch = jnp.linalg.norm(d, axis=-1) - system.rest_length
    return 0.5 * jnp.sum(system.stiffness * stretch**2)


def total_energy(
    system: ClothSystem, world_pos: jax.Array, velocity: jax.Array, gravity=(0.0, 0.0, -9.81)
) -> jax.Array:
    """Kinetic + elastic + gravitational energy in J. Jit-safe.

    Args:
      system: from `build_cloth_system`.
      world_pos: `[N, 3]` positions.
      velocity: `[N, 3]` velocities.
      gravity: `[3]` acceleration of gravity.
    """
    kinetic = 0.5 * jnp.sum(system.mass[:, None] * velocity**2)
    potential = -jnp.sum(system.mass[:, None] * world_pos * jnp.asarray(gravity))
    return kinetic + potential + spring_energy(system, world_pos)


class _Gusts(NamedTuple):
    frequency: jax.Array  # [K] float32, Hz
    speed_amplitude: jax.Array  # [K] float32, relative
    angle_amplitude: jax.Array  # [K] float32, rad
    speed_phase: jax.Array  # [K] float32, rad
    angle_phase: jax.Array  # [K] float32, rad


def _sample_gusts(params: ClothParams, seed: int) -> _Gusts:
    rng = np.random.default_rng(seed)
    k = _NUM_GUST_MODES
    weights = rng.dirichlet(np.ones(k))  # amplitudes of the modes sum to the strength
    angle_weights = rng.dirichlet(np.ones(k))
    return _Gusts(
        frequency=params.gust_frequency * rng.uniform(0.3, 2.0, k),
        speed_amplitude=params.gust_strength * weights,
        angle_amplitude=params.gust_angle * angle_weights,
        speed_phase=rng.uniform(0.0, 2 * np.pi, k),
        angle_phase=rng.uniform(0.0, 2 * np.pi, k),
    )


def _wind_at(t: jax.Array, mean_wind: jax.Array, gusts: _Gusts) -> jax.Array:
    omega_t = 2 * jnp.pi * gusts.frequency * t
    scale = 1.0 + jnp.sum(gusts.speed_amplitude * jnp.sin(omega_t + gusts.speed_phase))
    angle = jnp.sum(gusts.angle_amplitude * jnp.sin(omega_t + gusts.angle_phase))
    c, s = jnp.cos(angle), jnp.sin(angle)
    turned = jnp.stack(
        [c * mean_wind[0] - s * mean_wind[1], s * mean_wind[0] + c * mean_wind[1], mean_wind[2]]
    )
    return jnp.maximum(scale, 0.0) * turned


def _forces(system, x, v, t, consts, gusts):
    """Total force `[N, 3]` on every node at positions and velocities `x, v [N, 3]`."""
    n = x.shape[0]
    d = x[system.receivers] - x[system.senders]
    length = jnp.linalg.norm(d, axis=-1)
    u = d / length[:, None]
    dv = jnp.sum((v[system.receivers] - v[system.senders]) * u, axis=-1)
    tension = system.stiffness * (length - system.rest_length + consts["damping"] * dv)
    f_spring = (tension[:, None] * u).astype(x.dtype)
    force = jax.ops.segment_sum(f_spring, system.senders, n)
    force -= jax.ops.segment_sum(f_spring, system.receivers, n)
    force += system.mass[:, None] * consts["gravity"]

    xc = x[system.cells]  # [C, 3, 3]
    normal2 = jnp.cross(xc[:, 1] - xc[:, 0], xc[:, 2] - xc[:, 0])  # |normal2| = 2 area
    relative = _wind_at(t, consts["wind"], gusts) - jnp.mean(v[system.cells], axis=1)
    # drag * area * (rel . n) n  with n = normal2 / |normal2|, area = |normal2| / 2
    area2 = jnp.sum(normal2**2, axis=-1, keepdims=True)
    f_cell = consts["wind_drag"] * 0.5 * jnp.sum(relative * normal2, -1, keepdims=True) * normal2
    f_cell = f_cell / jnp.sqrt(jnp.maximum(area2, 1e-30))
    force += jax.ops.segment_sum(jnp.repeat(f_cell / 3.0, 3, axis=0), system.cells.ravel(), n)
    return force


@functools.partial(jax.jit, static_argnames=("num_frames", "substeps", "collide"))
def _rollout(system, x0, v0, consts, gusts, *, num_frames, substeps, collide=None, collider=None):
    """`(world_pos, velocity)`, each `[num_frames, N, 3]`, from `x0, v0 [N, 3]`.

    `collide(collider, x, v, t) -> (x, v)` (optional; `collider` a traced pytree):
    a contact response to free nodes' positions and half-step velocities `[N, 3]`
    after each drift (`meshsim.solvers.cloth_contact`)."""
    dt = consts["dt"] / substeps
    free = ~system.pinned[:, None]
    inv_mass = jnp.where(free, 1.0 / system.mass[:, None], 0.0)

    def accel(x, v, t):
        return inv_mass * _forces(system, x, v, t, consts, gusts)  # 0 at pinned nodes

    # Velocity Verlet (kick-drift-kick). Velocity-dependent forces (dashpots,
    # wind drag) are evaluated with the half-step velocity, which keeps one force
    # evaluation per substep; without them this is exact velocity Verlet.
    def substep(carry, s):
        x, v, a, frame = carry
        t = (frame * substeps + s + 1) * dt
        v_half = v + 0.5 * dt * a
        x = jnp.where(free, x + dt * v_half, x)  # pinned nodes are never touched
        if collide is not None:  # contact moves free nodes only
            x_c, v_c = collide(collider, x, v_half, t)
            x, v_half = jnp.where(free, x_c, x), jnp.where(free, v_c, v_half)
        a = accel(x, v_half, t)
        return (x, v_half + 0.5 * dt * a, a, frame), None

    def frame_step(carry, frame):
        (x, v, a, _), _ = jax.lax.scan(substep, (*carry, frame), jnp.arange(substeps))
        return (x, v, a), (x, v)

    a0 = accel(x0, v0, 0.0)
    _, (xs, vs) = jax.lax.scan(frame_step, (x0, v0, a0), jnp.arange(num_frames - 1))
    return jnp.concatenate([x0[None], xs]), jnp.concatenate([v0[None], vs])


def simulate_cloth(
    mesh: TriangleMesh,
    world_pos0: np.ndarray,
    *,
    steps: int,
    params: ClothParams = ClothParams(),
    seed: int = 0,
    velocity0: np.ndarray | None = None,
    return_velocity: bool = False,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Runs the mass-spring cloth model; frame 0 is the initial state.

    Jit-compiled once per (mesh size, steps, substeps); other parameters and
    the seed are traced, so new trajectories on the same mesh reuse the
    compiled rollout. Cost is O(steps * substeps * (springs + cells)).

    Args:
      mesh: sheet with rest positions `points [N, 2]`, `cells [C, 3]` and at
        least one HANDLE node.
      world_pos0: `[N, 3]` initial positions (e.g. `cloth_world_pos(mesh)`).
      steps: number of output frames (>= 1), `params.dt` apart.
      params: physical and numerical parameters.
      seed: seeds the gusts.
      velocity0: `[N, 3]` initial velocities, zero if None (zeroed at handles).
      return_velocity: also return the velocities.

    Returns:
      `world_pos [steps, N, 3] float32`, plus `velocity [steps, N, 3] float32`
      if `return_velocity`.

    Raises:
      ValueError: on bad shapes, non-finite input, missing handles, or
        `params.substeps` below the stable count.
    """
    if int(steps) != steps or steps < 1:
        raise ValueError(f"steps must be an integer >= 1, got {steps!r}")
    system = build_cloth_system(mesh, params)
    n = len(system.mass)
    x0 = np.asarray(world_pos0, dtype=np.float64)
    if x0.shape != (n, 3):
        raise ValueError(f"world_pos0 must have shape [{n}, 3], got {x0.shape}")
    v0 = np.zeros_like(x0) if velocity0 is None else np.asarray(velocity0, dtype=np.float64)
    if v0.shape != (n, 3):
        raise ValueError(f"velocity0 must have shape [{n}, 3], got {v0.shape}")
    for name, value in (("world_pos0", x0), ("velocity0", v0)):
        if not np.isfinite(value).all():
            raise ValueError(f"{name} contains non-finite values")
    v0 = np.where(system.pinned[:, None], 0.0, v0)
    needed = stable_substeps(system, params)
    substeps = needed if params.substeps is None else int(params.substeps)
    if substeps < needed:
        raise ValueError(f"params.substeps={substeps} is unstable for this mesh; use >= {needed}")

    consts = {
        "dt": params.dt,
        "damping": params.damping,
        "gravity": params.gravity,
        "wind": params.wind,
        "wind_drag": params.wind_drag,
    }
    consts = {k: jnp.asarray(v, dtype=jnp.float32) for k, v in consts.items()}
    gusts = jax.tree.map(lambda a: jnp.asarray(a, jnp.float32), _sample_gusts(params, seed))
    jsystem = jax.tree.map(jnp.asarray, system)
    xs, vs = _rollout(
        jsystem,
        jnp.asarray(x0, jnp.float32),
        jnp.asarray(v0, jnp.float32),
        consts,
        gusts,
        num_frames=int(steps),
        substeps=substeps,
    )
    xs = np.asarray(xs, dtype=np.float32)
    # Pinned nodes stay bit-identical to their float32 start.
    if return_velocity:
        return xs, np.asarray(vs, dtype=np.float32)
    return xs


def sample_cloth_params(params: ClothParams, rng: np.random.Generator) -> ClothParams:
    """Per-trajectory variation of `params`, drawn from `rng`.

    The mean wind is turned about the vertical by U(-60, 60) degrees and scaled
    by U(0.5, 1.5); the gust strength is scaled by U(0.5, 1.5).
    """
    wind = np.asarray(params.wind)
    angle = math.radians(rng.uniform(-60.0, 60.0))
    c, s = math.cos(angle), math.sin(angle)
    turned = np.array([c * wind[0] - s * wind[1], s * wind[0] + c * wind[1], wind[2]])
    return dataclasses.replace(
        params,
        wind=tuple(float(w) for w in rng.uniform(0.5, 1.5) * turned),
        gust_strength=params.gust_strength * float(rng.uniform(0.5, 1.5)),
    )


def cloth_trajectory(
    mesh: TriangleMesh | None = None,
    *,
    steps: int = 401,
    params: ClothParams = ClothParams(),
    seed: int = 0,
    randomize: bool = True,
) -> dict[str, np.ndarray]:
    """One flag trajectory in the docs/CONVENTIONS.md layout.

    The sheet starts at rest in its flat world placement (`cloth_world_pos`);
    with `randomize` the wind is varied per seed by `sample_cloth_params`.

    Args:
      mesh: sheet; `cloth_mesh()` (1581 nodes) if None.
      steps: number of frames, including the initial one (flag_simple: 401).
      params: base parameters.
      seed: seeds the parameter variation and the gusts.
      randomize: vary the parameters per seed.

    Returns:
      `{"cells": [1, C, 3] int32, "mesh_pos": [1, N, 2] float32,
      "node_type": [1, N, 1] int32, "world_pos": [steps, N, 3] float32}`.
    """
    mesh = cloth_mesh() if mesh is None else mesh
    rng = np.random.default_rng(seed)
    if randomize:
        params = sample_cloth_params(params, rng)
    world_pos = simulate_cloth(
        mesh, cloth_world_pos(mesh), steps=steps, params=params, seed=int(rng.integers(2**31))
    )
    return {
        "cells": np.asarray(mesh.cells, dtype=np.int32)[None],
        "mesh_pos": np.asarray(mesh.points, dtype=np.float32)[None],
        "node_type": np.asarray(mesh.node_type, dtype=np.int32)[None, :, None],
        "world_pos": world_pos,
    }
