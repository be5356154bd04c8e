"""Randomised cylinder-flow trajectories in the MeshGraphNets `cylinder_flow` layout.

Draws a geometry and flow (obstacle size and position, inflow speed, Reynolds
number) from a seed, meshes the channel with `meshsim.meshes.channel_mesh`, runs
the lattice Boltzmann solver of `meshsim.solvers.cylinder_flow` and samples its
fields on the mesh nodes every 0.01 time units.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from meshsim.meshes import Ellipse, channel_mesh
from meshsim.solvers.cylinder_flow import (
    CylinderFlowConfig,
    lattice_setup,
    simulate_cylinder_flow,
)
from meshsim.validation import is_int

# Randomisation ranges of `random_cylinder_config` (chosen to keep periodic shedding and a
# stable lattice at the demo resolution; Re uses the obstacle's height across the flow).
DEFAULT_RANGES = {
    "diameter": (0.08, 0.12),  # obstacle height D
    "center_x": (0.15, 0.4),
    "center_y": (0.15, 0.26),
    "u_mean": (0.6, 1.2),
    "reynolds": (80.0, 150.0),
    "aspect": (0.6, 1.0),  # ellipse semi-axis ratio when elliptic
}
GRID_REFERENCE = 0.1  # demo lattice spacing is GRID_REFERENCE / resolution, for all shapes


def random_cylinder_config(
    seed: int,
    *,
    length: float = 1.6,
    height: float = 0.41,
    resolution: float = 10.0,
    num_obstacles: int = 1,
    elliptic: bool = False,
    ranges: dict[str, tuple[float, float]] | None = None,
    **overrides: Any,
) -> CylinderFlowConfig:
    """A randomised set-up on a fixed lattice (one compilation for all draws).

    Draws each obstacle's height D and centre, the mean inflow speed and
    ``Re_D = u_mean D / nu`` (D of the first obstacle) from ``ranges`` (defaults
    `DEFAULT_RANGES`), optionally ellipses with random aspect ratio and angle. Further
    obstacles are placed downstream of the first (x up to 0.6 length), at least 0.05
    apart. The lattice spacing is ``GRID_REFERENCE / resolution`` whatever D, so every
    draw shares one compiled simulator; ``config.reynolds`` is expressed on that
    reference length (``Re_D * GRID_REFERENCE / D``).

    Args:
      seed: numpy seed.
      length: channel length.
      height: channel height.
      resolution: lattice cells per GRID_REFERENCE (0.1).
      num_obstacles: number of obstacles, >= 1.
      elliptic: draw ellipses instead of circles.
      ranges: overrides for entries of `DEFAULT_RANGES`.
      **overrides: further `CylinderFlowConfig` fields (e.g. ``spinup_time``).
    """
    unknown = set(ranges or {}) - set(DEFAULT_RANGES)
    if unknown:
        raise ValueError(f"unknown ranges {sorted(unknown)}; valid: {sorted(DEFAULT_RANGES)}")
    if not is_int(num_obstacles, minimum=1):
        raise ValueError(f"num_obstacles must be an int >= 1, got {num_obstacles!r}")
    r = {**DEFAULT_RANGES, **(ranges or {})}
    rng = np.random.default_rng(seed)
    obstacles, diameters = [], []
    for _ in range(100 * num_obstacles):
        if len(obstacles) == num_obstacles:
            break
        draw = {name: float(rng.uniform(*bounds)) for name, bounds in r.items()}
        if obstacles:
            draw["center_x"] = float(rng.uniform(r["center_x"][1], 0.6 * length))
        half = draw["diameter"] / 2
        if elliptic:
            # Pick semi-axes and angle, then scale so that the height across the flow is D.
            angle = float(rng.uniform(0.0, np.pi))
            shape = Ellipse(center=(0.0, 0.0), radii=(1.0, draw["aspect"]), angle=angle)
            scale = half / shape.half_extent[1]
            radii = (scale, scale * draw["aspect"])
        else:
            angle, radii = 0.0, (half, half)
        centre = (draw["center_x"], draw["center_y"])
        if any(
            math.dist(centre, ob.center) < max(radii) + max(ob.radii) + 0.05 for ob in obstacles
        ):
            continue
        obstacles.append(Ellipse(center=centre, radii=radii, angle=angle))
        diameters.append(draw["diameter"])
        if len(obstacles) == 1:
            first = draw
    if len(obstacles) < num_obstacles:
        raise ValueError(f"could not place {num_obstacles} obstacles in 100 draws each")
    fields = dict(
        length=length,
        height=height,
        obstacles=tuple(obstacles),
        reynolds=first["reynolds"] * GRID_REFERENCE / diameters[0],
        u_mean=first["u_mean"],
        resolution=resolution,
        reference_length=GRID_REFERENCE,
    )
    return CylinderFlowConfig(**{**fields, **overrides})


def cylinder_flow_trajectory(
    *,
    seed: int,
    steps: int = 300,
    mesh_resolution: float = 1.0,
    resolution: float = 10.0,
    num_obstacles: int = 1,
    elliptic: bool = False,
    ranges: dict[str, tuple[float, float]] | None = None,
    **overrides: Any,
) -> dict[str, np.ndarray]:
    """One randomised trajectory in the MeshGraphNets ``cylinder_flow`` layout.

    Draws a set-up with `random_cylinder_config`, meshes the channel with
    `meshsim.meshes.channel.channel_mesh` (``mesh_resolution`` 1: ~1.9k nodes), simulates
    it and samples every ``frame_dt``. At the defaults (160 x 41 lattice, 300 frames
    after 3 time units of spin-up) about 1.5-4 s per trajectory on a 2-core CPU after a
    one-off compilation of a few seconds.

    Args:
      seed: seeds geometry, flow parameters and the initial perturbation.
      steps: frames T.
      mesh_resolution: `channel_mesh` resolution factor.
      resolution: see `random_cylinder_config`.
      num_obstacles: see `random_cylinder_config`.
      elliptic: see `random_cylinder_config`.
      ranges: see `random_cylinder_config`.
      **overrides: see `random_cylinder_config`.

    Returns:
      ``cells [1, C, 3] int32``, ``mesh_pos [1, N, 2] float32``,
      ``node_type [1, N, 1] int32``, ``velocity [T, N, 2] float32``,
      ``pressure [T, N, 1] float32`` (docs/CONVENTIONS.md).
    """
    config = random_cylinder_config(
        seed,
        resolution=resolution,
        num_obstacles=num_obstacles,
        elliptic=elliptic,
        ranges=ranges,
        **overrides,
    )
    mesh = channel_mesh(
        length=config.length,
        height=config.height,
        obstacles=config.obstacles,
        resolution=mesh_resolution,
    )
    fields = simulate_cylinder_flow(config, query_points=mesh.points, steps=steps, seed=seed)
    return {
        "cells": mesh.cells.astype(np.int32)[None],
        "mesh_pos": mesh.points.astype(np.float32)[None],
        "node_type": mesh.node_type.astype(np.int32)[None, :, None],
        "velocity": fields["velocity"],
        "pressure": fields["pressure"],
    }


def meta_for_cylinder_flow(steps: int, config: CylinderFlowConfig | None = None) -> dict:
    """meta.json dict (docs/CONVENTIONS.md schema) for trajectories of ``steps`` frames.

    Args:
      steps: trajectory length T.
      config: a representative config whose solver parameters go to ``generator``
        (default: ``random_cylinder_config(0)``).
    """
    config = config or random_cylinder_config(0)
    lat = lattice_setup(config)
    feature = {
        "cells": ("static", [1, -1, 3], "int32"),
        "mesh_pos": ("static", [1, -1, 2], "float32"),
        "node_type": ("static", [1, -1, 1], "int32"),
        "velocity": ("dynamic", [steps, -1, 2], "float32"),
        "pressure": ("dynamic", [steps, -1, 1], "float32"),
    }
    return {
        "simulator": "meshsim-lbm",
        "dt": config.frame_dt,
        "collision_radius": None,
        "features": {
            name: {"type": kind, "shape": shape, "dtype": dtype}
            for name, (kind, shape, dtype) in feature.items()
        },
        "field_names": list(feature),
        "trajectory_length": steps,
        "generator": {
            "method": "D2Q9 lattice Boltzmann, MRT (He-Luo incompressible equilibrium), "
            "Bouzidi bounce-back, velocity inlet, zero-pressure outlet",
            "ranges": {k: list(v) for k, v in DEFAULT_RANGES.items()},
            "resolution": config.resolution,
            "grid": [lat.nx, lat.ny],
            "dx": lat.dx,
            "lattice_dt": lat.dt,
            "lattice_u_max": config.lattice_u_max,
            "spinup_time": config.spinup_time,
            "magic": lat.magic,
            "bulk_relaxation": config.bulk_relaxation,
            "pressure": "kinematic, c_s^2 (rho - 1) (dx/dt)^2, zero at the outlet",
        },
    }
