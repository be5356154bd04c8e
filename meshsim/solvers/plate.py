"""Quasi-static deforming plate: the reference solver for deforming_plate-style data.

Model (lengths in m, Young's modulus and stresses in MPa, forces in MN = MPa·m²):
  * a linear-elastic (small-strain, isotropic) plate `[0, L] × [0, W] × [0, H]`
    meshed with tetrahedra (`plate_mesh`) and discretised with vector P2
    (default) or P1 Lagrange elements from scikit-fem (`plate_fem`); its end
    face `x = 0` is clamped;
  * a rigid actuator (`plate_mesh.Actuator`: box or horizontal cylinder) whose
    centre moves on a straight line, prescribed frame by frame;
  * frictionless contact, two-sided, solved per frame by a primal-dual active
    set: (a) a plate vertex may not enter the actuator's exact shape, and (b) an
    actuator node may not go below the plate's top surface (piecewise-linear
    over the vertices), which stops sharp corners and edges smaller than a cell
    from poking between vertices. Each active contact is one linear constraint
    with a Lagrange multiplier: (a) the vertex on the actuator's tangent plane,
    `n · u = n · u_k - phi(x_k)`; (b) the node on the plane of the plate face
    under it (the face is held through a frame's iterations). A penetrating
    vertex or node is added (nodes only once no vertex is entering), a contact
    whose multiplier would pull (tensile reaction) is released; repeated until
    the sets are stable and no active contact is off by more than `CONTACT_TOL`.
    With P2 the edge midpoints take no contact constraint.
There is no body force, so every displacement is driven by the actuator alone.

Cost: the stiffness is assembled once per mesh (as its λ and μ parts, cached) and
factorised once per trajectory; a plate vertex costs 3 back-solves the first time
a contact involves it (kept for the trajectory), and each active-set iteration a
dense solve the size of the active set.
"""

from __future__ import annotations

import dataclasses
import math
from typing import NamedTuple

import numpy as np
import scipy.linalg

from meshsim.node_types import NodeType
from meshsim.solvers.plate_fem import (
    ElasticSystem,
    build_elastic_system,
    vertex_displacement,
    von_mises,
)
from meshsim.solvers.plate_mesh import (
    PLATE_CELLS_PER_LENGTH,
    Actuator,
    actuator_mesh,
    box_mesh,
    face_gaps,
    plate_divisions,
    signed_distance,
    surface_gaps,
    top_faces,
)
from meshsim.validation import check_int, check_number, is_number

CONTACT_TOL = 1e-9  # m, allowed penetration / separation of an active contact (solver)
MAX_CONTACT_ITERATIONS = 60  # active-set iterations per frame before giving up
# Ranges sampled per seed by `sample_plate_config` (see the module docstring for units).
YOUNGS_MODULUS_RANGE = (1800.0, 2200.0)  # MPa (a stiff polymer); scales stress only
POISSON_RATIO_RANGE = (0.25, 0.35)
# m, how far the actuator goes below the plate's top. Linear elasticity has no large
# rotations: at 0.06 the plate turns by up to ~0.2 rad, where a rotated plate's
# spurious stretch (θ²/2) reaches ~2%.
DEPTH_RANGE = (0.02, 0.06)
SIDEWAYS_RANGE = 0.03  # m, |x|, |y| travel of the actuator, each uniform in ±this
# World-edge radius as a multiple of the in-plane cell size L / (24 · resolution). It
# must exceed the distance from any point of the actuator's surface to its nearest
# node (≤ 0.69 cell, measured), so that a touching plate vertex has a world edge, and
# stay below the distance between plate vertices that share no mesh edge (≥ 1.13
# cells at rest for resolution ≥ 1; at lower resolutions the 2 layers through the
# thickness are closer), so that world edges at rest are actuator edges only.
WORLD_EDGE_RADIUS_CELLS = 0.9


class _Compliance:
    """Columns of the inverse stiffness for the 3 DOFs of contact vertices, each
    solved once (the first time its vertex touches) and kept for the trajectory."""

    def __init__(self, system: ElasticSystem):
        self.system = system
        self.columns: dict[int, np.ndarray] = {}  # vertex -> [F, 3] float64

    def get(self, vertices: np.ndarray) -> np.ndarray:
        """`[F, m, 3] float64` for `vertices [m]`."""
        for v in vertices:
            v = int(v)
            if v not in self.columns:
                # One vertex (3 right-hand sides) per call: SuperLU's multi-RHS solve
                # slows down superlinearly (48 columns at once: ~4x one at a time).
                rows = self.system.free_index[self.system.vertex_dofs[v]]
                rhs = np.zeros((len(self.system.free), 3))
                rhs[rows, np.arange(3)] = 1.0
                self.columns[v] = self.system.factor.solve(rhs)
        return np.stack([self.columns[int(v)] for v in vertices], axis=1)


class _ContactFrame(NamedTuple):
    """One frame's contact solution (from `_solve_contact`)."""

    u: np.ndarray  # [D] float64, displacement DOFs (m)
    active: np.ndarray  # [N] bool, plate vertices touching the actuator
    active_nodes: np.ndarray  # [A] bool, actuator nodes touching the plate's top
    force: np.ndarray  # [3] float64, total contact force on the plate (MN)
    iterations: int


class _Contacts(NamedTuple):
    """Linearised constraints `Σ_k w_k n · u[vertex_k] = target`, one per active contact."""

    vertices: np.ndarray  # [m, 3] int64, plate vertices (a vertex contact repeats its own)
    weights: np.ndarray  # [m, 3] float64, barycentric weights (a vertex contact: 1, 0, 0)
    normal: np.ndarray  # [m, 3] float64, direction in which the plate is pushed
    target: np.ndarray  # [m] float64, m


def _linearise(actuator, center, rest, u_vertices, faces, act_world, active, node_face):
    """Constraints of the active contacts at the current iterate.

    `node_face [A] int64` is each actuator node's plate face (-1: not in contact).
    A node keeps its face through a frame's iterations (re-chosen only when it is
    no longer over it by a quarter of the face), so that a node in the crease
    between two faces cannot flip between them.
    """
    idx = np.flatnonzero(active)
    phi, n_act = signed_distance(actuator, center, rest[idx] + u_vertices[idx])
    # A vertex on the actuator's tangent plane: n · u = n · u_k - phi(x_k).
    vertex_target = np.einsum("md,md->m", n_act, u_vertices[idx]) - phi
    surface = rest + u_vertices
    nodes = np.flatnonzero(node_face >= 0)
    w, n_face, gap = face_gaps(act_world[nodes], surface, faces[node_face[nodes]])
    moved = nodes[w.min(axis=1) < -0.25]
    if len(moved):
        node_face = node_face.copy()
        node_face[moved] = surface_gaps(act_world[moved], surface, faces)[0]
        nodes = np.flatnonzero(node_face >= 0)
        w, n_face, gap = face_gaps(act_world[nodes], surface, faces[node_face[nodes]])
    tri = faces[node_face[nodes]]
    # An actuator node on the plate face's plane, pushing the face along -n:
    # -n · Σ w_k u_k = -n · Σ w_k u_k(current) - gap.
    node_target = -np.einsum("md,mkd,mk->m", n_face, u_vertices[tri], w) - gap
    contacts = _Contacts(
        np.concatenate([np.repeat(idx[:, None], 3, 1), tri]).astype(np.int64),
        np.concatenate([np.tile([1.0, 0.0, 0.0], (len(idx), 1)), w]),
        np.concatenate([n_act, -n_face]),
        np.concatenate([vertex_target, node_target]),
    )
    return contacts, node_face


def _solve_contact(
    system: ElasticSystem,
    compliance: _Compliance,
    actuator: Actuator,
    center: np.ndarray,
    rest: np.ndarray,
    candidates: np.ndarray,
    faces: np.ndarray,
    act_world: np.ndarray,
    active: np.ndarray,
    active_nodes: np.ndarray,
    u_vertices: np.ndarray,
) -> _ContactFrame:
    """Primal-dual active set for one frame, two-sided (see the module docstring).

    `rest [N, 3]` plate vertex rest positions; `candidates [N] bool` vertices that
    may touch; `faces [F, 3]` the plate's top triangles; `act_world [A, 3]` the
    actuator's nodes this frame; `active [N]`, `active_nodes [A]` (bool) and
    `u_vertices [N, 3]` the warm start.
    """
    u = np.zeros(system.stiffness.shape[0])
    node_face = np.full(len(act_world), -1, dtype=np.int64)
    if active_nodes.any():  # faces are chosen afresh each frame
        node_face[active_nodes] = surface_gaps(act_world[active_nodes], rest + u_vertices, faces)[0]
    for iteration in range(1, MAX_CONTACT_ITERATIONS + 1):
        c, node_face = _linearise(
            actuator, center, rest, u_vertices, faces, act_world, active, node_face
        )
        active_nodes = node_face >= 0
        lam = np.zeros(len(c.target))
        if len(lam):
            used, where = np.unique(c.vertices, return_inverse=True)
            where = where.reshape(c.vertices.shape)  # [m, 3] into `used`
            coef = np.zeros((len(used), 3, len(lam)))  # Cᵀ on the used vertices' DOFs
            for k in range(3):
                np.add.at(
                    coef,
                    (where[:, k], slice(None), np.arange(len(lam))),
                    c.weights[:, k, None] * c.normal,
                )
            coef = coef.reshape(-1, len(lam))
            g_mat = compliance.get(used).reshape(len(system.free), -1) @ coef  # K⁻¹ Cᵀ
            rows = system.free_index[system.vertex_dofs[used]].ravel()
            schur = coef.T @ g_mat[rows]  # C K⁻¹ Cᵀ, SPD unless contacts are redundant
            schur[np.diag_indices_from(schur)] *= 1 + 1e-10
            lam = scipy.linalg.lstsq(schur, c.target)[0]
            u[system.free] = g_mat @ lam
        else:
            u[system.free] = 0.0
        u_vertices = u[system.vertex_dofs]
        surface = rest + u_vertices
        num_v = int(active.sum())
        lam_v, lam_a = np.zeros(len(rest)), np.zeros(len(act_world))
        lam_v[active], lam_a[active_nodes] = lam[:num_v], lam[num_v:]
        phi = np.full(len(rest), np.inf)
        phi[candidates] = signed_distance(actuator, center, surface[candidates])[0]
        held = face_gaps(act_world[active_nodes], surface, faces[node_face[active_nodes]])[2]
        # Nodes above the plate's highest point are outside it (a vertical
        # projection that lands on a triangle from above has a positive gap).
        low = np.flatnonzero(~active_nodes & (act_world[:, 2] <= surface[:, 2].max()))
        face, gap = surface_gaps(act_world[low], surface, faces)
        # Plate vertices first: actuator nodes join only once no vertex penetrates,
        # which keeps flat-on-flat contact from stacking redundant constraints.
        entering = (phi < -CONTACT_TOL) & ~active
        new_active = (active & (lam_v >= 0)) | entering
        new_face = np.where(lam_a >= 0, node_face, -1)
        if not entering.any():
            joining = gap < -CONTACT_TOL
            new_face[low[joining]] = face[joining]
        residual = np.concatenate([phi[active], held])
        settled = not len(residual) or np.abs(residual).max() < CONTACT_TOL
        if (
            settled
            and np.array_equal(new_active, active)
            and np.array_equal(new_face >= 0, active_nodes)
        ):
            force = np.einsum("m,md->d", lam, c.normal)
            return _ContactFrame(u, active, active_nodes, force, iteration)
        active, node_face = new_active, new_face
    raise RuntimeError(
        f"contact: active set not settled after {MAX_CONTACT_ITERATIONS} iterations "
        f"({int(active.sum())} vertices, {int((node_face >= 0).sum())} actuator nodes active)"
    )


@dataclasses.dataclass(frozen=True, kw_only=True)
class PlateConfig:
    """A plate, its material, its actuator and the actuator's path."""

    size: tuple[float, float, float] = (1.0, 0.4, 0.05)  # m, (L, W, H); clamped at x = 0
    youngs_modulus: float = 2000.0  # MPa
    poisson_ratio: float = 0.3
    mesh_resolution: float = 1.0  # 24 · resolution cells per m (825 vertices at 1)
    element_order: int = 2  # 1 or 2
    actuator: Actuator = Actuator()
    start: tuple[float, float, float] = (0.75, 0.2, 0.1)  # m, actuator centre at frame 0
    travel: tuple[float, float, float] = (0.0, 0.0, -0.1)  # m, centre's move to the last frame

    def __post_init__(self):
        for name in ("size", "start", "travel"):
            value = tuple(float(x) for x in getattr(self, name))
            if len(value) != 3 or not all(math.isfinite(x) for x in value):
                raise ValueError(f"PlateConfig.{name}: expected 3 finite numbers, got {value!r}")
            object.__setattr__(self, name, value)
        if min(self.size) <= 0:
            raise ValueError(f"PlateConfig.size: expected 3 numbers > 0, got {self.size}")
        check_number("PlateConfig.youngs_modulus", self.youngs_modulus, greater_than=0)
        check_number("PlateConfig.mesh_resolution", self.mesh_resolution, greater_than=0)
        if not is_number(self.poisson_ratio, minimum=0) or self.poisson_ratio >= 0.5:
            raise ValueError(
                f"PlateConfig.poisson_ratio: expected a number in [0, 0.5), "
                f"got {self.poisson_ratio!r}"
            )
        if self.element_order not in (1, 2):
            raise ValueError(
                f"PlateConfig.element_order: expected 1 or 2, got {self.element_order!r}"
            )

    @property
    def cell_size(self) -> float:
        """In-plane cell size at this resolution, m (the length unit of the mesh)."""
        return 1.0 / (PLATE_CELLS_PER_LENGTH * self.mesh_resolution)


class PlateSimulation(NamedTuple):
    """A simulated trajectory (from `simulate_plate`), plate vertices first."""

    cells: np.ndarray  # [C, 4] int32, plate tetrahedra then actuator tetrahedra
    mesh_pos: np.ndarray  # [N, 3] float64, rest positions (actuator: at frame 0), m
    node_type: np.ndarray  # [N] int32, NORMAL / HANDLE (plate) or OBSTACLE (actuator)
    world_pos: np.ndarray  # [T, N, 3] float64, m
    stress: np.ndarray  # [T, N] float64, von Mises, MPa (actuator: 0)
    contact_force: np.ndarray  # [T, 3] float64, total contact force on the plate, MN
    active: np.ndarray  # [T] int64, plate vertices touching the actuator
    active_nodes: np.ndarray  # [T] int64, actuator nodes touching the plate's top
    iterations: np.ndarray  # [T] int64, active-set iterations
    min_distance: np.ndarray  # [T] float64, min signed distance plate vertex → actuator, m
    min_gap: np.ndarray  # [T] float64, min signed distance actuator node → plate top, m


def simulate_plate(config: PlateConfig, *, steps: int) -> PlateSimulation:
    """Runs the quasi-static contact problem for `steps` frames.

    The actuator's centre is at `config.start + s · config.travel` with `s` going
    linearly from 0 (frame 0) to 1 (last frame). Not jit-safe (scipy on the host).
    Cost at the default resolution (P2; 825 plate and 70–410 actuator vertices),
    measured on a shared 2-core CPU: ~3 s for the first trajectory on a mesh
    (assembly), then ~1.5–2 s per 50 frames (the LU is ~0.6 s of it). Resolution
    2 (3,920 plate vertices, 79k DOFs) needs ~25 s and ~1.5 GB for the LU alone.

    Raises:
      ValueError: `steps` not an int ≥ 1. RuntimeError: the active set did not settle.
    """
    steps = check_int("steps", steps, minimum=1)
    size = config.size
    points, cells = box_mesh(size, plate_divisions(size, config.mesh_resolution))
    clamped = points[:, 0] <= 1e-9 * size[0]
    system = build_elastic_system(
        points,
        cells,
        clamped=clamped,
        youngs_modulus=config.youngs_modulus,
        poisson_ratio=config.poisson_ratio,
        element_order=config.element_order,
    )
    act = config.actuator
    act_local, act_cells = actuator_mesh(act, config.cell_size)
    start, travel = np.array(config.start), np.array(config.travel)
    act_rest = act_local @ act.rotation.T + start

    n_plate = len(points)
    node_type = np.concatenate(
        [
            np.where(clamped, NodeType.HANDLE, NodeType.NORMAL),
            np.full(len(act_rest), NodeType.OBSTACLE),
        ]
    ).astype(np.int32)
    compliance = _Compliance(system)
    candidates = ~clamped
    faces = top_faces(points, cells, size[2])
    active = np.zeros(n_plate, dtype=bool)
    active_nodes = np.zeros(len(act_rest), dtype=bool)
    u_vert = np.zeros((n_plate, 3))
    world = np.zeros((steps, n_plate + len(act_rest), 3))
    stress = np.zeros((steps, n_plate + len(act_rest)))
    force = np.zeros((steps, 3))
    counts, node_counts, iters = (np.zeros(steps, dtype=np.int64) for _ in range(3))
    min_dist, min_gap = np.zeros(steps), np.zeros(steps)
    for t in range(steps):
        s = t / (steps - 1) if steps > 1 else 0.0
        center, act_world = start + s * travel, act_rest + s * travel
        frame = _solve_contact(
            system,
            compliance,
            act,
            center,
            points,
            candidates,
            faces,
            act_world,
            active,
            active_nodes,
            u_vert,
        )
        active, active_nodes = frame.active, frame.active_nodes
        u_vert = vertex_displacement(system, frame.u)
        world[t, :n_plate] = points + u_vert
        world[t, n_plate:] = act_world
        if active.any() or active_nodes.any():
            stress[t, :n_plate] = von_mises(system, frame.u)
        force[t], iters[t] = frame.force, frame.iterations
        counts[t], node_counts[t] = active.sum(), active_nodes.sum()
        min_dist[t] = signed_distance(act, center, world[t, :n_plate])[0].min()
        min_gap[t] = surface_gaps(act_world, world[t, :n_plate], faces)[1].min()
    return PlateSimulation(
        cells=np.concatenate([cells, act_cells + n_plate]).astype(np.int32),
        mesh_pos=world[0].copy(),
        node_type=node_type,
        world_pos=world,
        stress=stress,
        contact_force=force,
        active=counts,
        active_nodes=node_counts,
        iterations=iters,
        min_distance=min_dist,
        min_gap=min_gap,
    )


def sample_plate_config(seed: int, *, mesh_resolution: float = 1.0) -> PlateConfig:
    """A random `PlateConfig` for `seed`: material, actuator shape, size, place and path.

    Box (half extents 0.04–0.1 × 0.04–0.1 × 0.04 m) or horizontal cylinder (radius
    0.04–0.07 m, half length 0.08–0.18 m), turned by a random yaw, centred over
    x ∈ [0.45, 0.85] L, y ∈ [0.3, 0.7] W, its bottom a quarter cell above the plate;
    it goes down by that gap plus `DEPTH_RANGE` and sideways by up to `SIDEWAYS_RANGE`.
    """
    seed = check_int("seed", seed, minimum=0)
    resolution = check_number("mesh_resolution", mesh_resolution, greater_than=0)
    rng = np.random.default_rng(seed)
    length, width, thickness = PlateConfig().size
    if rng.random() < 0.5:
        hx, hy = rng.uniform(0.04, 0.1, size=2)
        actuator = Actuator(shape="box", half_extents=(hx, hy, 0.04), yaw=rng.uniform(0, np.pi / 2))
    else:
        radius, half_length = rng.uniform(0.04, 0.07), rng.uniform(0.08, 0.18)
        actuator = Actuator(
            shape="cylinder", half_extents=(radius, half_length, radius), yaw=rng.uniform(0, np.pi)
        )
    gap = 0.25 / (PLATE_CELLS_PER_LENGTH * resolution)
    start = (
        rng.uniform(0.45, 0.85) * length,
        rng.uniform(0.3, 0.7) * width,
        thickness + actuator.bottom + gap,
    )
    sideways = rng.uniform(-SIDEWAYS_RANGE, SIDEWAYS_RANGE, size=2)
    travel = (sideways[0], sideways[1], -(gap + rng.uniform(*DEPTH_RANGE)))
    return PlateConfig(
        youngs_modulus=rng.uniform(*YOUNGS_MODULUS_RANGE),
        poisson_ratio=rng.uniform(*POISSON_RATIO_RANGE),
        mesh_resolution=resolution,
        actuator=actuator,
        start=start,
        travel=travel,
    )


def plate_trajectory(*, seed: int, steps: int, mesh_resolution: float = 1.0) -> dict:
    """A deforming_plate-style trajectory for `seed` (see `sample_plate_config`).

    Returns:
      A dict of numpy arrays in MeshGraphNets' field names:
      `cells [1, C, 4] int32` (plate tetrahedra, then the actuator's),
      `mesh_pos [1, N, 3] float32` (m), `node_type [1, N, 1] int32` (0 plate,
      1 actuator, 3 clamped plate vertices), `world_pos [steps, N, 3] float32` (m),
      `stress [steps, N, 1] float32` (von Mises, MPa; actuator 0).
    """
    sim = simulate_plate(sample_plate_config(seed, mesh_resolution=mesh_resolution), steps=steps)
    return {
        "cells": sim.cells[None].astype(np.int32),
        "mesh_pos": sim.mesh_pos[None].astype(np.float32),
        "node_type": sim.node_type[None, :, None].astype(np.int32),
        "world_pos": sim.world_pos.astype(np.float32),
        "stress": sim.stress[..., None].astype(np.float32),
    }


def plate_meta(*, mesh_resolution: float = 1.0) -> dict:
    """Extra `meta.json` keys of plate data: simulator, `dt` (one frame per actuator
    step) and `world_edge_radius` (m; see `WORLD_EDGE_RADIUS_CELLS`)."""
    resolution = check_number("mesh_resolution", mesh_resolution, greater_than=0)
    radius = WORLD_EDGE_RADIUS_CELLS / (PLATE_CELLS_PER_LENGTH * resolution)
    return {"simulator": "meshsim-plate", "dt": 1.0, "world_edge_radius": round(radius, 6)}
