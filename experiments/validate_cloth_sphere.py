"""Validates the cloth-on-sphere reference solver (`meshsim.solvers.cloth_contact`).

Checks, at the default resolution (441 cloth nodes, 162 sphere nodes):
1. penetration: cloth nodes closer than R - 1e-4 to the sphere's centre, over every
   frame of seeds with drawn motions (static, sliding, rising spheres);
2. energy (static spheres): kinetic + gravity + spring energy is conserved in free
   fall and never increases between frames after the first contact;
3. rest: final kinetic energy against its maximum, and where the lowest node is;
4. friction: mu = 0 against the default mu on the same scenes (centroid offset);
5. how many of 20 seeds slide off the sphere, at resolutions 0.5 and 1;
6. cost: seconds per 100-frame trajectory.

Writes ``experiments/results/cloth_sphere_validation.{json,md}`` (a smoke run only prints).

    python experiments/validate_cloth_sphere.py           # ~1 min on 2 cores (CPU)
    python experiments/validate_cloth_sphere.py --smoke   # resolution 0.5, fewer seeds
"""

from __future__ import annotations

import argparse
import json
import pathlib
import time

import jax
import numpy as np

from meshsim.solvers.cloth import build_cloth_system, total_energy
from meshsim.solvers.cloth_contact import (
    DEFAULT_FRICTION,
    DEFAULT_THICKNESS,
    SPHERE_CLOTH_PARAMS,
    cloth_sphere_meta,
    cloth_sphere_trajectory,
    sample_sphere_scene,
    scene_mesh,
    sphere_center,
)

RESULTS = pathlib.Path(__file__).resolve().parent / "results"


def _run(seed, steps, resolution, friction=DEFAULT_FRICTION, motion=None):
    """Trajectory, cloth positions/velocities, sphere centres [T, 3] and radius."""
    mesh, _ = scene_mesh(resolution)
    scene = sample_sphere_scene(mesh, seed, friction=friction, motion=motion)
    traj = cloth_sphere_trajectory(
        seed=seed,
        steps=steps,
        mesh_resolution=resolution,
        friction=friction,
        motion=motion,
        return_velocity=True,
    )
    n = mesh.num_nodes
    centers = np.asarray(sphere_center(scene.collider, np.arange(steps) * SPHERE_CLOTH_PARAMS.dt))
    return traj, traj["world_pos"][:, :n], traj["velocity"], centers, scene


def penetration(seeds, steps, resolution):
    rows = []
    for seed in seeds:
        traj, x, _, c, scene = _run(seed, steps, resolution)
        radius = float(scene.collider.radius)
        gap = np.linalg.norm(x - c[:, None], axis=-1) - radius  # [T, N]
        # Cloth edge midpoints: how deep straight edges cut the sphere between nodes.
        cells = traj["cells"][0][: 2 * (int(np.sqrt(x.shape[1])) - 1) ** 2]
        edges = np.unique(np.sort(np.concatenate([cells[:, [0, 1]], cells[:, [1, 2]]]), 1), axis=0)
        mid = 0.5 * (x[:, edges[:, 0]] + x[:, edges[:, 1]])
        mid_gap = np.linalg.norm(mid - c[:, None], axis=-1) - radius
        sphere = traj["world_pos"][:, x.shape[1] :]
        rows.append(
            {
                "seed": seed,
                "motion": scene.motion,
                "radius": round(radius, 4),
                "nodes_inside_R_minus_1e-4": int(np.sum(gap < -1e-4)),
                "min_node_gap_m": float(gap.min()),
                "min_edge_midpoint_gap_m": float(mid_gap.min()),
                "sphere_node_radius_error_m": float(
                    np.abs(np.linalg.norm(sphere - c[:, None], axis=-1) - radius).max()
                ),
            }
        )
    return rows


def energy_and_rest(seeds, steps, resolution):
    mesh, _ = scene_mesh(resolution)
    system = build_cloth_system(mesh, SPHERE_CLOTH_PARAMS, require_handles=False)
    energy_fn = jax.jit(
        jax.vmap(lambda x, v: total_energy(system, x, v, SPHERE_CLOTH_PARAMS.gravity))
    )
    rows = []
    for seed in seeds:
        _, x, v, c, scene = _run(seed, steps, resolution, motion="static")
        radius = float(scene.collider.radius)
        energy = np.asarray(energy_fn(x, v), dtype=np.float64)
        kinetic = 0.5 * np.sum(system.mass[:, None] * v.astype(np.float64) ** 2, axis=(1, 2))
        gap = np.linalg.norm(x - c[:, None], axis=-1) - radius
        contact = gap < DEFAULT_THICKNESS + 1e-4  # [T, N]
        first = int(np.argmax(contact.any(axis=1)))
        lowest = int(np.argmin(x[-1, :, 2]))
        rows.append(
            {
                "seed": seed,
                "first_contact_frame": first,
                "energy0_J": float(energy[0]),
                "free_fall_max_abs_energy_change_J": float(
                    np.abs(energy[:first] - energy[0]).max()
                ),
                "kinetic_at_contact_J": float(kinetic[first]),
                "max_energy_increase_after_contact_J": float(np.diff(energy[first:]).max()),
                "energy_lost_J": float(energy[0] - energy[-1]),
                "max_kinetic_J": float(kinetic.max()),
                "kinetic_at_2s_over_max": float(kinetic[min(100, steps - 1)] / kinetic.max()),
                "final_over_max_kinetic": float(kinetic[-1] / kinetic.max()),
                "nodes_in_contact_at_end": int(contact[-1].sum()),
                "lowest_node_z_m": float(x[-1, lowest, 2]),
                "lowest_node_gap_m": float(gap[-1, lowest]),
            }
        )
    return rows


def friction(seeds, steps, resolution):
    rows = []
    for seed in seeds:
        row = {"seed": seed}
        for mu in (0.0, DEFAULT_FRICTION):
            _, x, _, c, _ = _run(seed, steps, resolution, friction=mu, motion="static")
            shift = x[-1].mean(0) - c[-1]
            row[f"mu={mu}"] = {
                "centroid_horizontal_offset_m": float(np.hypot(shift[0], shift[1])),
                "centroid_height_above_centre_m": float(shift[2]),
            }
        rows.append(row)
    return rows


def stays_on(seeds, steps, resolutions):
    """Seeds (drawn motions) whose sheet touches the sphere in the last frame, per resolution."""
    out = {}
    for resolution in resolutions:
        off = []
        for seed in seeds:
            _, x, _, c, scene = _run(seed, steps, resolution)
            gap = np.linalg.norm(x[-1] - c[-1], axis=-1) - float(scene.collider.radius)
            if not (gap < DEFAULT_THICKNESS + 1e-4).any():
                off.append(seed)
        out[str(resolution)] = {"seeds": len(seeds), "slid_off": off}
    return out


def timing(resolution, steps=100):
    t0 = time.perf_counter()
    cloth_sphere_trajectory(seed=0, steps=steps, mesh_resolution=resolution)
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    traj = cloth_sphere_trajectory(seed=1, steps=steps, mesh_resolution=resolution)
    return {
        "steps": steps,
        "nodes": int(traj["node_type"].shape[1]),
        "cloth_nodes": int(np.sum(traj["node_type"] == 0)),
        "cells": int(traj["cells"].shape[1]),
        "first_call_s": round(first, 2),
        "second_call_s": round(time.perf_counter() - t0, 2),
    }


def _markdown(result):
    pen, er, fr = result["penetration"], result["energy_rest"], result["friction"]
    lines = [
        "# Cloth on a sphere: validation of `meshsim.solvers.cloth_contact`",
        "",
        f"Resolution {result['resolution']}, {result['steps']} frames of "
        f"{SPHERE_CLOTH_PARAMS.dt} s, friction {DEFAULT_FRICTION}, thickness "
        f"{DEFAULT_THICKNESS} m, gravity only. Produced by `experiments/validate_cloth_sphere.py`.",
        "",
        "## Penetration (all frames; drawn motions)",
        "",
        "| seed | motion | R (m) | nodes inside R-1e-4 | min node gap (m) | "
        "min edge-midpoint gap (m) |",
        "|---|---|---|---|---|---|",
    ]
    for r in pen:
        lines.append(
            f"| {r['seed']} | {r['motion']} | {r['radius']} | {r['nodes_inside_R_minus_1e-4']} | "
            f"{r['min_node_gap_m']:.2e} | {r['min_edge_midpoint_gap_m']:.2e} |"
        )
    lines += [
        "",
        "## Energy and rest (static sphere)",
        "",
        "| seed | first contact | free-fall max abs dE (J) | max dE after contact (J) | "
        "max KE (J) | KE / max at 2 s | final KE / max | lowest node z (m) | its gap (m) | "
        "nodes in contact |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in er:
        lines.append(
            f"| {r['seed']} | {r['first_contact_frame']} | "
            f"{r['free_fall_max_abs_energy_change_J']:.1e} | "
            f"{r['max_energy_increase_after_contact_J']:.1e} | {r['max_kinetic_J']:.3f} | "
            f"{r['kinetic_at_2s_over_max']:.1e} | {r['final_over_max_kinetic']:.1e} | "
            f"{r['lowest_node_z_m']:.3f} | {r['lowest_node_gap_m']:.4f} | "
            f"{r['nodes_in_contact_at_end']} |"
        )
    lines += [
        "",
        "## Friction (static sphere): final centroid relative to the sphere's centre",
        "",
        "| seed | mu=0 horizontal (m) | mu=0 height (m) | "
        f"mu={DEFAULT_FRICTION} horizontal (m) | mu={DEFAULT_FRICTION} height (m) |",
        "|---|---|---|---|---|",
    ]
    for r in fr:
        a, b = r["mu=0.0"], r[f"mu={DEFAULT_FRICTION}"]
        lines.append(
            f"| {r['seed']} | {a['centroid_horizontal_offset_m']:.3f} | "
            f"{a['centroid_height_above_centre_m']:.3f} | "
            f"{b['centroid_horizontal_offset_m']:.3f} | {b['centroid_height_above_centre_m']:.3f} |"
        )
    lines += ["", "## Sheets that slid off the sphere (drawn motions, last frame)", ""]
    for resolution, r in result["stays_on"].items():
        lines.append(
            f"- resolution {resolution}: {len(r['slid_off'])} of {r['seeds']} seeds "
            f"slid off {r['slid_off']}"
        )
    lines += [
        "",
        "There is no floor: a sheet that slides off falls freely (as every mu = 0 sheet does).",
    ]
    t = result["timing"]
    lines += [
        "",
        f"Cost: {t['steps']} frames, {t['nodes']} nodes ({t['cloth_nodes']} cloth): "
        f"{t['first_call_s']} s with compilation, {t['second_call_s']} s after "
        f"({result['device']}).",
        "",
        f"meta: `{json.dumps(result['meta'])}`",
        "",
    ]
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="resolution 0.5, fewer seeds")
    args = parser.parse_args()
    resolution, steps = (0.5, 60) if args.smoke else (1.0, 150)
    seeds = range(3) if args.smoke else range(8)
    result = {
        "resolution": resolution,
        "steps": steps,
        "device": jax.devices()[0].device_kind,
        "meta": cloth_sphere_meta(resolution),
        "penetration": penetration(seeds, steps, resolution),
        "energy_rest": energy_and_rest(seeds[:4], steps, resolution),
        "friction": friction(seeds[:3], steps, resolution),
        "stays_on": stays_on(range(5 if args.smoke else 20), steps, (0.5, resolution)),
        "timing": timing(resolution),
    }
    if not args.smoke:  # a smoke run only prints
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / "cloth_sphere_validation.json").write_text(json.dumps(result, indent=1))
        (RESULTS / "cloth_sphere_validation.md").write_text(_markdown(result))
    print(_markdown(result))


if __name__ == "__main__":
    main()
