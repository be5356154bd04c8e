"""Validates the deforming-plate solver (`meshsim.solvers.plate`).

1. Cantilever beams (the same FEM code, no actuator): tip deflection under a tip
   load and under self weight against Euler–Bernoulli (and Timoshenko), P1 and P2
   tetrahedra, three meshes, ν = 0 and 0.3.
2. The default plate under uniform pressure against the beam formula.
3. Linearity and symmetry: doubling the load doubles the displacement; K = Kᵀ.
4. Contact over `plate_trajectory`'s own seeds: penetration of plate vertices into
   the actuator (exact shape and its tetrahedra, in the float32 data), active-set
   iterations, timing.
5. Contact force against indentation for an actuator across the full width: it
   must grow linearly, at the cantilever stiffness 3 E I / a³ of the touching row.

Writes ``experiments/results/plate_validation.{json,md}``.

    python experiments/validate_plate.py            # ~50 s on a shared 2-core CPU
    python experiments/validate_plate.py --seeds 4
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import time

import numpy as np
import skfem

from meshsim.node_types import NodeType
from meshsim.solvers.plate import (
    PlateConfig,
    plate_meta,
    plate_trajectory,
    sample_plate_config,
    simulate_plate,
)
from meshsim.solvers.plate_fem import (
    build_elastic_system,
    load_vector,
    static_displacement,
    vertex_displacement,
)
from meshsim.solvers.plate_mesh import (
    Actuator,
    box_mesh,
    plate_divisions,
    signed_distance,
    surface_gaps,
    top_faces,
)

E = 2000.0  # MPa
BEAM = (1.0, 0.05, 0.05)  # m
PENETRATION_TOL = 1e-6  # m, in float32 data (rounding of ~1 m coordinates: 6e-8)
# m, actuator node below the plate's top: a node held on one face's plane may sit
# over the next face across a crease (measured ≤ 3.1 µm over 140 trajectories).
NODE_PENETRATION_TOL = 1e-5
BARYCENTRIC_MARGIN = 1e-4  # inside a tetrahedron by more than this (≈ 4 µm here)


def _cantilever(order: int, divisions, nu: float) -> dict:
    length, width, height = BEAM
    points, cells = box_mesh(BEAM, divisions)
    start = time.perf_counter()
    system = build_elastic_system(
        points,
        cells,
        clamped=points[:, 0] <= 1e-12,
        youngs_modulus=E,
        poisson_ratio=nu,
        element_order=order,
    )
    tip = points[:, 0] >= length - 1e-12
    inertia, area = width * height**3 / 12, width * height
    shear = E / (2 * (1 + nu)) * area * 5 / 6  # κ G A
    force, weight = 1e-4, 1e-3  # MN, MN/m³

    def deflection(load):
        return float(-vertex_displacement(system, static_displacement(system, load))[tip, 2].mean())

    point = deflection(load_vector(system, traction=(0, 0, -force / area), traction_vertices=tip))
    own = deflection(load_vector(system, body_force=(0, 0, -weight)))
    eb_point = force * length**3 / (3 * E * inertia)
    eb_own = weight * area * length**4 / (8 * E * inertia)
    return {
        "element": f"P{order}",
        "cells": list(divisions),
        "dofs": int(system.stiffness.shape[0]),
        "poisson_ratio": nu,
        "tip_load_error_vs_euler_bernoulli": point / eb_point - 1,
        "tip_load_error_vs_timoshenko": point / (eb_point + force * length / shear) - 1,
        "self_weight_error_vs_euler_bernoulli": own / eb_own - 1,
        "seconds": time.perf_counter() - start,
    }


def _plate_pressure(nu: float) -> dict:
    size = PlateConfig().size
    points, cells = box_mesh(size, plate_divisions(size, 1.0))
    system = build_elastic_system(
        points, cells, clamped=points[:, 0] <= 1e-12, youngs_modulus=E, poisson_ratio=nu
    )
    pressure = 1e-3  # MPa on the top face
    top = points[:, 2] >= size[2] - 1e-12
    load = load_vector(system, traction=(0, 0, -pressure), traction_vertices=top)
    u = vertex_displacement(system, static_displacement(system, load))
    tip = -u[points[:, 0] >= size[0] - 1e-12, 2].mean()
    inertia = size[1] * size[2] ** 3 / 12
    beam = pressure * size[1] * size[0] ** 4 / (8 * E * inertia)
    return {
        "poisson_ratio": nu,
        "tip_deflection_over_beam": tip / beam,
        "plate_bound_1_over_1_minus_nu2": 1 - nu**2,  # fully plane-strain plate
    }


def _linearity() -> dict:
    points, cells = box_mesh(BEAM, (20, 1, 1))
    system = build_elastic_system(
        points, cells, clamped=points[:, 0] <= 1e-12, youngs_modulus=E, poisson_ratio=0.3
    )
    tip = points[:, 0] >= BEAM[0] - 1e-12
    load = load_vector(system, traction=(0, 0, -0.04), traction_vertices=tip)
    u1, u2 = static_displacement(system, load), static_displacement(system, 2 * load)
    k = system.stiffness
    return {
        "doubled_load_relative_difference": float(np.abs(u2 - 2 * u1).max() / np.abs(u2).max()),
        "stiffness_asymmetry": float(abs(k - k.T).max() / abs(k).max()),
        "sideways_over_vertical_displacement": float(
            np.abs(u1[system.vertex_dofs[:, 1]]).max() / np.abs(u1).max()
        ),
    }


def _inside_mesh(points: np.ndarray, nodes: np.ndarray, cells: np.ndarray) -> int:
    """How many `points [P, 3]` lie inside a tetrahedron of (`nodes`, `cells`) by
    more than `BARYCENTRIC_MARGIN` in every barycentric coordinate."""
    x = nodes[cells]  # [C, 4, 3]
    lo, hi = nodes.min(0), nodes.max(0)
    near = points[np.all((points >= lo) & (points <= hi), axis=1)]
    if not len(near):
        return 0
    inv = np.linalg.inv(np.transpose(x[:, 1:] - x[:, :1], (0, 2, 1)))  # [C, 3, 3]
    lam = np.einsum("cij,pcj->pci", inv, near[:, None, :] - x[None, :, 0])  # [P, C, 3]
    bary = np.concatenate([lam, 1 - lam.sum(-1, keepdims=True)], -1)
    return int(np.any(bary.min(-1) > BARYCENTRIC_MARGIN, axis=1).sum())


def _contact_seeds(seeds: int, steps: int) -> dict:
    rows, seconds = [], []
    for seed in range(seeds):
        config = sample_plate_config(seed)
        start = time.perf_counter()
        sim = simulate_plate(config, steps=steps)
        seconds.append(time.perf_counter() - start)
        traj = {  # the float32 data, as plate_trajectory writes it
            "cells": sim.cells[None],
            "node_type": sim.node_type[None, :, None],
            "world_pos": sim.world_pos.astype(np.float32),
            "stress": sim.stress[..., None].astype(np.float32),
        }
        if seed == 0:
            check = plate_trajectory(seed=seed, steps=steps)
            assert all(np.array_equal(check[k], v) for k, v in traj.items())
        types = traj["node_type"][0, :, 0]
        plate, obstacle = types != NodeType.OBSTACLE, types == NodeType.OBSTACLE
        act_nodes = traj["world_pos"][0, obstacle].astype(np.float64)
        act_cells = traj["cells"][0][np.all(obstacle[traj["cells"][0]], axis=1)] - plate.sum()
        plate_cells = traj["cells"][0][np.all(plate[traj["cells"][0]], axis=1)]
        faces = top_faces(sim.mesh_pos[plate], plate_cells, config.size[2])
        phi_min, deep, inside, gap_min, below = np.inf, 0, 0, np.inf, 0
        for t in range(steps):
            s = t / (steps - 1)
            center = np.array(config.start) + s * np.array(config.travel)
            world = traj["world_pos"][t].astype(np.float64)
            phi, _ = signed_distance(config.actuator, center, world[plate])
            phi_min = min(phi_min, float(phi.min()))
            deep += int((phi < -PENETRATION_TOL).sum())
            shift = world[obstacle][0] - act_nodes[0]
            inside += _inside_mesh(world[plate], act_nodes + shift, act_cells)
            gap = surface_gaps(world[obstacle], world[plate], faces)[1]
            gap_min = min(gap_min, float(gap.min()))
            below += int((gap < -NODE_PENETRATION_TOL).sum())
        stress = traj["stress"][-1, plate, 0]
        rows.append(
            {
                "seed": seed,
                "actuator": config.actuator.shape,
                "nodes": int(len(types)),
                "plate_nodes": int(plate.sum()),
                "frames_in_contact": int(((sim.active + sim.active_nodes) > 0).sum()),
                "max_active_vertices": int(sim.active.max()),
                "max_active_actuator_nodes": int(sim.active_nodes.max()),
                "max_iterations": int(sim.iterations.max()),
                "min_signed_distance_m": phi_min,
                "vertices_deeper_than_tol": deep,
                "vertices_inside_actuator_tets": inside,
                "min_actuator_node_gap_m": gap_min,
                "actuator_nodes_below_plate_top": below,
                "contact_force_last_mn": float(np.linalg.norm(sim.contact_force[-1])),
                "max_displacement_m": float(
                    np.abs(sim.world_pos[-1, plate] - sim.mesh_pos[plate]).max()
                ),
                "stress_last_p50_p99_max_mpa": [
                    float(np.percentile(stress, 50)),
                    float(np.percentile(stress, 99)),
                    float(stress.max()),
                ],
                "seconds": seconds[-1],
            }
        )
    return {
        "per_seed": rows,
        "seconds_first": seconds[0],
        "seconds_median": float(np.median(seconds)),
    }


def _force_vs_indentation(shape: str, depth: float) -> dict:
    config = PlateConfig(
        poisson_ratio=0.0,
        actuator=Actuator(shape=shape, half_extents=(0.05, 0.25, 0.05)),
        start=(0.6, 0.2, 0.101),
        travel=(0.0, 0.0, -0.001 - depth),
    )
    steps = 7
    sim = simulate_plate(config, steps=steps)
    plate = sim.node_type != NodeType.OBSTACLE
    faces = top_faces(sim.mesh_pos[plate], sim.cells[np.all(plate[sim.cells], 1)], 0.05)
    inertia = 0.4 * 0.05**3 / 12
    rows = []
    for t in range(steps):
        center = np.array(config.start) + t / (steps - 1) * np.array(config.travel)
        world = sim.world_pos[t]
        phi, _ = signed_distance(config.actuator, center, world[plate])
        gap = surface_gaps(world[~plate], world[plate], faces)[1]
        # Touching points: plate vertices on the actuator, actuator nodes on the plate.
        touching = np.concatenate(
            [world[plate][np.abs(phi) < 1e-8], world[~plate][np.abs(gap) < 1e-8]]
        )
        force = float(-sim.contact_force[t, 2])
        if not len(touching):
            rows.append({"frame": t, "force_mn": force})
            continue
        row = float(touching[:, 0].mean())
        delta = float(0.05 - touching[:, 2].mean())
        rows.append(
            {
                "frame": t,
                "force_mn": force,
                "contact_x": row,
                "indentation_m": delta,
                "stiffness_over_beam": force / delta / (3 * E * inertia / row**3),
            }
        )
    forces = [r["force_mn"] for r in rows]
    return {
        "actuator": shape,
        "depth_m": depth,
        "frames": rows,
        "force_monotone": bool(np.all(np.diff(forces) >= 0)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--output", default="experiments/results/plate_validation")
    args = parser.parse_args()

    load_average = os.getloadavg()[0]  # timings below are on a shared machine
    contact = _contact_seeds(args.seeds, args.steps)  # first: its first seed assembles
    cantilever = [
        _cantilever(order, divisions, nu)
        for order, divisions in [
            (1, (40, 2, 2)),
            (1, (80, 4, 4)),
            (2, (20, 1, 1)),
            (2, (40, 2, 2)),
            (2, (80, 4, 4)),
        ]
        for nu in (0.0, 0.3)
    ]
    results = {
        "scikit_fem": skfem.__version__,
        "load_average_at_start": load_average,
        "meta": plate_meta(),
        "cantilever": cantilever,
        "plate_pressure": [_plate_pressure(0.0), _plate_pressure(0.3)],
        "linearity": _linearity(),
        "contact": contact,
        "force_vs_indentation": [
            _force_vs_indentation(shape, depth)
            for shape in ("box", "cylinder")
            for depth in (0.02, 0.06)
        ],
    }
    out = pathlib.Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(results, indent=1) + "\n")
    out.with_suffix(".md").write_text(_markdown(results, args))
    print(out.with_suffix(".md").read_text())


def _markdown(r: dict, args) -> str:
    pct = lambda x: f"{100 * x:+.2f}%"  # noqa: E731
    lines = [
        "# Deforming-plate solver validation",
        "",
        f"scikit-fem {r['scikit_fem']}; linear elasticity (small strain), E = {E:g} MPa unless "
        "sampled; lengths in m, stresses in MPa, forces in MN. Produced by "
        "`python experiments/validate_plate.py`.",
        "",
        "## Cantilever, L × W × H = 1 × 0.05 × 0.05 (same FEM code, no actuator)",
        "",
        "Tip deflection (mean over the end-face vertices) under a tip load P (uniform "
        "traction on the end face) against Euler–Bernoulli P L³ / (3 E I) and Timoshenko "
        "(+ P L / (κ G A), κ = 5/6), and under self weight against q L⁴ / (8 E I).",
        "",
        "| element | cells | DOFs | ν | tip load vs E–B | vs Timoshenko | self weight vs E–B | s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for c in r["cantilever"]:
        lines.append(
            f"| {c['element']} | {'×'.join(map(str, c['cells']))} | {c['dofs']} | "
            f"{c['poisson_ratio']} | {pct(c['tip_load_error_vs_euler_bernoulli'])} | "
            f"{pct(c['tip_load_error_vs_timoshenko'])} | "
            f"{pct(c['self_weight_error_vs_euler_bernoulli'])} | {c['seconds']:.1f} |"
        )
    lines += [
        "",
        "## Default plate (1 × 0.4 × 0.05, 24 × 10 × 2 cells, P2) under uniform pressure",
        "",
        "| ν | tip deflection / beam formula | fully plane-strain plate would give |",
        "|---|---|---|",
    ]
    for p in r["plate_pressure"]:
        lines.append(
            f"| {p['poisson_ratio']} | {p['tip_deflection_over_beam']:.4f} | "
            f"{p['plate_bound_1_over_1_minus_nu2']:.4f} |"
        )
    lin = r["linearity"]
    lines += [
        "",
        "## Linearity and symmetry (P2 beam, ν = 0.3)",
        "",
        f"- |u(2P) − 2 u(P)|∞ / |u(2P)|∞ = {lin['doubled_load_relative_difference']:.1e}",
        f"- |K − Kᵀ|max / |K|max = {lin['stiffness_asymmetry']:.1e}",
        f"- sideways / vertical displacement under a vertical load: "
        f"{lin['sideways_over_vertical_displacement']:.1e}",
        "",
        f"## Contact over seeds 0–{args.seeds - 1} ({args.steps} frames, resolution 1, P2, "
        "frictionless)",
        "",
        f"Penetration counted in the float32 `world_pos`: vertices deeper than "
        f"{PENETRATION_TOL:g} m inside the exact actuator shape, and vertices inside one of "
        f"the actuator's tetrahedra (every barycentric coordinate > {BARYCENTRIC_MARGIN:g}); "
        f"and the other way, actuator nodes below the plate's (piecewise-linear) top "
        f"surface by more than {NODE_PENETRATION_TOL:g} m.",
        "",
        "| seed | actuator | nodes | frames in contact | max active vertices / nodes | "
        "max iterations | min signed distance (m) | deeper than tol | inside tets | "
        "min node gap (m) | nodes below top | force at end (MN) | max displacement (m) | "
        "stress p50 / p99 / max (MPa) | s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for c in r["contact"]["per_seed"]:
        s50, s99, smax = c["stress_last_p50_p99_max_mpa"]
        lines.append(
            f"| {c['seed']} | {c['actuator']} | {c['nodes']} | {c['frames_in_contact']} | "
            f"{c['max_active_vertices']} / {c['max_active_actuator_nodes']} | "
            f"{c['max_iterations']} | {c['min_signed_distance_m']:.1e} | "
            f"{c['vertices_deeper_than_tol']} | {c['vertices_inside_actuator_tets']} | "
            f"{c['min_actuator_node_gap_m']:.1e} | {c['actuator_nodes_below_plate_top']} | "
            f"{c['contact_force_last_mn']:.2e} | "
            f"{c['max_displacement_m']:.3f} | {s50:.1f} / {s99:.1f} / {smax:.1f} | "
            f"{c['seconds']:.2f} |"
        )
    lines += [
        "",
        f"Time per trajectory ({args.steps} frames, shared 2-core CPU, load average "
        f"{r['load_average_at_start']:.1f} at the start): "
        f"{r['contact']['seconds_first']:.1f} s for the first (it assembles and caches the "
        f"mesh's stiffness parts), median {r['contact']['seconds_median']:.1f} s.",
        "",
        "## Contact force against indentation (actuator across the full width, ν = 0)",
        "",
        "Actuator (half extents 0.05 × 0.25 × 0.05, yaw 0) centred at x = 0.6, pressing "
        "straight down by 0.02 or 0.06 past the plate's top. The plate is a cantilever "
        "loaded at the mean x of the touching points (plate vertices on the actuator, "
        "actuator nodes on the plate): F / δ = 3 E I / a³, δ the touching points' mean "
        "depth below the rest top. The ratio drifts with depth as the plate turns "
        "(frictionless contact pushes along the tilted normal; linear elasticity has no "
        "large rotations).",
        "",
        "| actuator | depth | frame | indentation δ (m) | force (MN) | contact a (m) | "
        "(F/δ) / (3EI/a³) |",
        "|---|---|---|---|---|---|---|",
    ]
    for f in r["force_vs_indentation"]:
        for row in f["frames"]:
            if "indentation_m" in row:
                lines.append(
                    f"| {f['actuator']} | {f['depth_m']} | {row['frame']} | "
                    f"{row['indentation_m']:.4f} | {row['force_mn']:.3e} | "
                    f"{row['contact_x']:.4f} | {row['stiffness_over_beam']:.4f} |"
                )
        lines.append(
            f"| {f['actuator']} | {f['depth_m']} | | force monotone: {f['force_monotone']} | | | |"
        )
    meta = r["meta"]
    lines += ["", f"meta: `{json.dumps(meta)}`", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
