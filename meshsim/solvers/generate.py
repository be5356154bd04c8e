"""Built-in datasets: reference simulations written in the native HDF5 format.

`generate_dataset("cylinder_flow", "data/cyl", trajectories=20, steps=300, seed=0)`
writes `data/cyl/train.h5` and `data/cyl/meta.json`. Each trajectory's seed is
derived from (seed, split, index), so splits never share a trajectory and the
same arguments always give the same file contents. Arguments are checked before
anything is simulated, and the output appears only when complete: the split is
written into a temporary sibling directory (`meshsim.atomic.staged_directory`)
that is moved into place at the end, so a failure leaves no empty directory and
no `meta.json` behind.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable

from meshsim.solvers.seeds import trajectory_seed
from meshsim.validation import check_int, check_number

logger = logging.getLogger(__name__)

# Particle cases of `meshsim.solvers.sph_cases` (SPH), written in the particle convention:
# `position` [T, N, D] float32, `particle_type` [1, N, 1] int32 and a "particles" meta entry.
PARTICLE_DOMAINS = (
    "dam_break",
    "taylor_green",
    "taylor_green_3d",
    "lid_driven_cavity",
    "poiseuille",
)
# MeshGraphNets' contact domains: cloth on a sphere (sphere_simple layout) and a plate
# pushed by an actuator (deforming_plate layout), each with a `world_edge_radius`.
CONTACT_DOMAINS = ("cloth_sphere", "deforming_plate")
DOMAINS = ("cylinder_flow", "flag", "shallow_water", *CONTACT_DOMAINS, *PARTICLE_DOMAINS)
SHALLOW_WATER_RESOLUTION_DEG = 5.625  # output grid at mesh_resolution 1 (33 × 64 with poles)
SHALLOW_WATER_STEP_HOURS = 6.0


def _simulator(domain: str, steps: int, mesh_resolution: float) -> tuple[Callable, dict]:
    if domain == "cylinder_flow":
        from meshsim.solvers.cylinder_dataset import cylinder_flow_trajectory

        def simulate(seed):
            return cylinder_flow_trajectory(seed=seed, steps=steps, mesh_resolution=mesh_resolution)

        return simulate, {"simulator": "meshsim-lbm", "dt": 0.01}
    if domain == "flag":
        from meshsim.meshes import cloth_mesh
        from meshsim.solvers.cloth import cloth_trajectory

        nx = max(5, int(round(51 * mesh_resolution)))
        ny = max(4, int(round(31 * mesh_resolution)))
        mesh = cloth_mesh(nx=nx, ny=ny)

        def simulate(seed):
            return cloth_trajectory(mesh, steps=steps, seed=seed)

        return simulate, {"simulator": "meshsim-cloth", "dt": 0.02}
    if domain == "cloth_sphere":
        from meshsim.solvers.cloth_contact import cloth_sphere_meta, cloth_sphere_trajectory

        def simulate(seed):
            return cloth_sphere_trajectory(seed=seed, steps=steps, mesh_resolution=mesh_resolution)

        return simulate, cloth_sphere_meta(mesh_resolution)
    if domain == "deforming_plate":
        from meshsim.solvers.plate import plate_meta, plate_trajectory

        def simulate(seed):
            return plate_trajectory(seed=seed, steps=steps, mesh_resolution=mesh_resolution)

        return simulate, plate_meta(mesh_resolution=mesh_resolution)
    if domain in PARTICLE_DOMAINS:  # mesh_resolution divides the particle spacing
        from meshsim.solvers.sph_cases import case_trajectory

        def simulate(seed):
            return case_trajectory(domain, seed=seed, frames=steps, resolution=mesh_resolution)

        return simulate, {"simulator": "meshsim-sph"}
    raise ValueError(f"domain: expected one of {DOMAINS}, got {domain!r}")


def generate_dataset(
    domain: str,
    out: str | os.PathLike,
    *,
    trajectories: int,
    steps: int,
    seed: int = 0,
    split: str = "train",
    mesh_resolution: float = 1.0,
    compression: str | None = None,
    diurnal: bool = False,
    progress: bool = False,
    region: tuple[float, ...] | None = None,
    region_resolution: float = 2.0,
) -> str:
    """Simulates `trajectories` runs of `steps` frames and writes `<out>/<split>.h5`
    (`<out>/<split>.zarr` in WeatherBench2 layout for "shallow_water": 6-hourly frames on
    a 5.625° / `mesh_resolution` lat-lon grid).
    Particle domains (`PARTICLE_DOMAINS`, SPH) write `position` [steps, N, D] float32 and
    `particle_type` [1, N, 1] int32 with a "particles" meta entry (its velocity and
    acceleration statistics from this split); `mesh_resolution` divides the spacing.
    With a `region` (shallow_water only: lat_min, lat_max, lon_min, lon_max degrees),
    also the fine cut-out `<out>/regional/<split>.zarr` on a grid `region_resolution`
    times finer, for stretched-grid models (`meshsim.data.stretched`).
    `diurnal` (shallow_water only) adds the `2m_temperature` channel with a diurnal
    cycle (`meshsim.solvers.surface_temperature`).

    The file (and `meta.json`, for a new directory) appears only when complete.

    Returns:
      The path of the written file.

    Raises:
      ValueError: a bad argument (named, with the expected and the actual value), or
        an existing `<out>/meta.json` with another schema.
    """
    from meshsim.atomic import staged_directory
    from meshsim.data import HDF5Writer, infer_meta

    _check_arguments(domain, trajectories, steps, seed, split, mesh_resolution)
    if region and domain != "shallow_water":
        raise ValueError(
            f"region (--region): only shallow_water writes a regional cut-out, not {domain!r}"
        )
    if not isinstance(diurnal, bool):
        raise ValueError(f"diurnal: expected True or False, got {diurnal!r}")
    if diurnal and domain != "shallow_water":
        raise ValueError(
            f"diurnal (--diurnal, data.generate_diurnal): only the shallow_water domain has "
            f"a diurnal channel, got domain {domain!r}"
        )
    if domain == "shallow_water":  # weather data: WeatherBench2-layout zarr, not HDF5
        from meshsim.solvers.shallow_water import generate_shallow_water

        spacing = SHALLOW_WATER_RESOLUTION_DEG / mesh_resolution
        if not (spacing <= 90 and abs(180 / spacing - round(180 / spacing)) < 1e-9):
            raise ValueError(
                f"mesh_resolution (--mesh-resolution): for shallow_water it sets the grid "
                f"spacing {SHALLOW_WATER_RESOLUTION_DEG}°/mesh_resolution, which must divide "
                f"180°; got {mesh_resolution!r} (a {spacing:g}° spacing); use e.g. 0.5, 1 or 2"
            )

        return generate_shallow_water(
            out,
            split=split,
            trajectories=trajectories,
            days=(steps - 1) * SHALLOW_WATER_STEP_HOURS / 24.0,
            resolution_deg=SHALLOW_WATER_RESOLUTION_DEG / mesh_resolution,
            seed=seed,
            diurnal=diurnal,
            progress=progress,
            region=tuple(region) if region else None,
            region_resolution_deg=spacing / region_resolution if region else None,
        )
    simulate, meta_extra = _simulator(domain, steps, mesh_resolution)
    generator = {"domain": domain, "seed": seed, "mesh_resolution": mesh_resolution}
    t0 = time.perf_counter()
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=trajectories, desc=f"{domain}/{split}", unit="traj")
    try:
        with staged_directory(out, carry=("meta.json",)) as tmp:
            writer = None
            try:
                trajs = (simulate(trajectory_seed(seed, split, i)) for i in range(trajectories))
                static = ("cells", "mesh_pos", "node_type")
                if domain in PARTICLE_DOMAINS:  # the meta needs statistics of all of them
                    trajs = list(trajs)
                    meta_extra = _particle_meta(domain, trajs, seed, split, mesh_resolution)
                    static = ("particle_type",)
                for traj in trajs:
                    if writer is None:  # the schema comes from the first trajectory
                        meta = infer_meta(
                            traj, static_fields=static, **meta_extra, generator=generator
                        )
                        writer = HDF5Writer(tmp, split, meta, compression=compression)
                    writer.write(traj)
                    if bar is not None:
                        bar.update(1)
                writer.close()
            except BaseException:
                if writer is not None:
                    writer.abort()
                raise
    finally:
        if bar is not None:
            bar.close()
    logger.info(
        "%s/%s: %d trajectories in %.1f s", domain, split, trajectories, time.perf_counter() - t0
    )
    return os.path.join(os.fspath(out), f"{split}.h5")


def _particle_meta(domain, trajectories, seed, split, mesh_resolution) -> dict:
    """Top-level meta keys of a particle dataset: `dt` and `particles`, with the velocity
    and acceleration statistics of the split being written (an existing `meta.json`
    keeps its own)."""
    from meshsim.solvers.sph_cases import CASES, DisplacementStats, particle_meta

    case = CASES[domain](trajectory_seed(seed, split, 0), resolution=mesh_resolution)
    particles = particle_meta(case, per_trajectory=False)
    stats = DisplacementStats(particles["bounds"], particles["periodic"])
    for trajectory in trajectories:
        stats.add(trajectory)
    particles.update(stats.as_meta())
    return {"simulator": "meshsim-sph", "dt": particles["dt"], "particles": particles}


def _check_arguments(domain, trajectories, steps, seed, split, mesh_resolution) -> None:
    if domain not in DOMAINS:
        raise ValueError(f"domain: expected one of {list(DOMAINS)}, got {domain!r}")
    check_int("trajectories", trajectories, minimum=1)
    check_int("steps", steps, minimum=3, expected="an int ≥ 3 (frames)")
    check_int("seed", seed, minimum=0)
    if not isinstance(split, str) or not split or split.startswith(".") or "/" in split:
        raise ValueError(f"split: expected a split name such as 'train', got {split!r}")
    check_number("mesh_resolution", mesh_resolution, greater_than=0)
