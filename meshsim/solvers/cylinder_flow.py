"""Reference simulator for 2-D incompressible flow past obstacles in a channel.

Generates MeshGraphNets ``cylinder_flow``-style data with the D2Q9 lattice Boltzmann
kernel of `meshsim.solvers.lbm` on a uniform grid, and samples the fields onto mesh
nodes. Geometry and units follow the DFG benchmark (Schäfer & Turek 1996): channel
``[0, length] x [0, height]`` (1.6 or 2.2 by 0.41), parabolic inflow with mean speed
``u_mean`` (maximum ``1.5 u_mean``), no-slip walls and obstacles, zero pressure at
the outlet, density 1, and ``Re = u_mean * D / nu`` with ``D`` the obstacle's height
across the flow.

Units: velocity, pressure and time are physical (lattice values times ``dx/dt``,
``(dx/dt)^2`` and ``dt``). Pressure is the LBM pressure ``c_s^2 (rho - 1)`` converted
to physical units (kinematic, i.e. divided by the fluid density, which is 1), relative
to the outlet.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from meshsim.meshes import Ellipse
from meshsim.solvers import lbm
from meshsim.validation import is_int, is_number

logger = logging.getLogger(__name__)

# Stability/accuracy limits on the lattice (see `lattice_setup`).
MAX_LATTICE_U = 0.2  # max inflow speed in lattice units (Mach 0.35); errors grow as Ma^2
MIN_TAU_MINUS_HALF = 0.005  # tau - 1/2 = 3 nu_lattice; below this TRT blows up at Re ~100
MIN_CELLS_PER_OBSTACLE = 4.0  # obstacle height in cells
_POINT_BUCKET = 256  # query points are padded to a multiple of this to reuse compilations
_LINK_BUCKET = 512  # boundary links are padded likewise
_MAX_CHUNK_FRAMES = 100  # frames per compiled chunk (bounds memory, one compilation)


@dataclasses.dataclass(frozen=True, kw_only=True)
class CylinderFlowConfig:
    """Physical set-up and lattice resolution of one flow simulation.

    Attributes:
      length: channel length along x (1.6 for cylinder_flow, 2.2 for DFG).
      height: channel height along y.
      obstacles: `Ellipse` obstacles (at least one), inside the channel.
      reynolds: ``u_mean * reference_length / nu``.
      u_mean: mean inflow speed; the parabola's maximum is ``1.5 * u_mean``.
      resolution: lattice cells per ``reference_length``.
      reference_length: length for Re, resolution and force coefficients; None means
        the height (y extent) of ``obstacles[0]``.
      lattice_u_max: target inflow maximum in lattice units (sets the time step).
      frame_dt: physical time between output frames.
      spinup_time: physical time simulated before the first output frame.
      perturbation: amplitude of the seeded initial cross-flow blob behind each
        obstacle, relative to the inflow maximum (breaks symmetry so shedding starts).
      magic: TRT "magic" parameter ``(tau - 1/2)(tau_odd - 1/2)`` of the MRT collision
        (3/16 puts walls exactly mid-link). None: ``min(3/16, tau - 1/2)``, i.e. exact
        walls where the viscosity allows and ``tau_odd <= 3/2`` near ``tau = 1/2``, where
        larger values made the inlet unstable at Re 100 and 10 cells per diameter.
      bulk_relaxation: relaxation rate of the energy moments (bulk viscosity
        ``(1/rate - 1/2) / 3`` lattice units); 1.0 damps the sound waves that otherwise
        ring in the channel. None gives the TRT model.
      interpolated_bounce_back: Bouzidi interpolated bounce-back on obstacles (more
        accurate forces) instead of half-way bounce-back.
      dtype: "float32" or "float64" (the latter for validation; slower).
    """

    length: float = 1.6
    height: float = 0.41
    obstacles: tuple[Ellipse, ...] = (Ellipse(center=(0.2, 0.2), radii=(0.05, 0.05)),)
    reynolds: float = 100.0
    u_mean: float = 1.0
    resolution: float = 10.0
    reference_length: float | None = None
    lattice_u_max: float = 0.1
    frame_dt: float = 0.01
    spinup_time: float = 3.0
    perturbation: float = 0.1
    magic: float | None = None
    bulk_relaxation: float | None = 1.0
    interpolated_bounce_back: bool = True
    dtype: str = "float32"

    def __post_init__(self):
        object.__setattr__(self, "obstacles", tuple(self.obstacles))
        positive = ["length", "height", "reynolds", "u_mean", "resolution", "frame_dt"]
        optional = ["reference_length", "magic", "bulk_relaxation"]
        positive += ["lattice_u_max"] + [n for n in optional if getattr(self, n) is not None]
        for name in positive:
            value = getattr(self, name)
            if not is_number(value, finite=False):
                raise TypeError(f"{name} must be a number, got {type(value).__name__}")
            if not is_number(value, greater_than=0):
                raise ValueError(f"{name} must be a finite positive number, got {value!r}")
        for name in ["spinup_time", "perturbation"]:
            value = getattr(self, name)
            if not is_number(value, minimum=0):
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
        if self.lattice_u_max > MAX_LATTICE_U:
            raise ValueError(
                f"lattice_u_max={self.lattice_u_max} exceeds {MAX_LATTICE_U} (Mach number too "
                "high for the incompressible limit); lower it and the time step follows"
            )
        if self.dtype not in ("float32", "float64"):
            raise ValueError(f"dtype must be 'float32' or 'float64', got {self.dtype!r}")
        if not self.obstacles:
            raise ValueError("obstacles must hold at least one Ellipse")
        for k, ob in enumerate(self.obstacles):
            if not isinstance(ob, Ellipse):
                raise TypeError(f"obstacles[{k}] must be an Ellipse, got {type(ob).__name__}")
            hx, hy = ob.half_extent
            (cx, cy) = ob.center
            if cx - hx <= 0 or cx + hx >= self.length or cy - hy <= 0 or cy + hy >= self.height:
                raise ValueError(
                    f"obstacles[{k}] {ob} must lie strictly inside the channel "
                    f"[0, {self.length}] x [0, {self.height}]"
                )

    @property
    def u_max(self) -> float:
        """Maximum of the parabolic inflow profile."""
        return 1.5 * self.u_mean

    @property
    def diameter(self) -> float:
        """The reference length D used in Re and the force coefficients."""
        return self.reference_length or 2.0 * self.obstacles[0].half_extent[1]

    @property
    def viscosity(self) -> float:
        """Kinematic viscosity ``u_mean * D / Re``."""
        return self.u_mean * self.diameter / self.reynolds


class Lattice(NamedTuple):
    """Lattice discretisation derived from a config by `lattice_setup`."""

    nx: int  # cells along x
    ny: int  # cells along y (height = ny * dx exactly)
    dx: float  # cell size (physical)
    dt: float  # lattice time step (physical); frame_dt = steps_per_frame * dt
    steps_per_frame: int
    u_max: float  # inflow maximum, lattice units
    tau: float  # shear relaxation time, 1/2 + 3 nu_lattice
    magic: float  # resolved TRT magic parameter


def lattice_setup(config: CylinderFlowConfig) -> Lattice:
    """Grid size and time step for `config`, with stability checks.

    Raises:
      ValueError: when the lattice would be unstable or too coarse, naming the cause
        and a remedy.
    """
    d = config.diameter
    ny = max(2, round(config.height * config.resolution / d))
    dx = config.height / ny
    nx = max(3, round(config.length / dx))
    spf = math.ceil(config.frame_dt * config.u_max / (dx * config.lattice_u_max) - 1e-9)
    dt = config.frame_dt / spf
    u_lat = config.u_max * dt / dx
    tau = 0.5 + 3.0 * config.viscosity * dt / dx**2
    for k, ob in enumerate(config.obstacles):
        cells = 2 * min(ob.radii) / dx
        if cells < MIN_CELLS_PER_OBSTACLE:
            raise ValueError(
                f"obstacles[{k}] spans only {cells:.1f} lattice cells (< "
                f"{MIN_CELLS_PER_OBSTACLE}); increase resolution (now {config.resolution})"
            )
    if tau - 0.5 < MIN_TAU_MINUS_HALF:
        raise ValueError(
            f"relaxation time tau={tau:.4f} is too close to 1/2 (unstable) for "
            f"reynolds={config.reynolds} at resolution={config.resolution}; increase "
            f"resolution (tau - 1/2 grows like resolution), raise lattice_u_max or lower reynolds"
        )
    if config.bulk_relaxation is not None and config.bulk_relaxation >= 2:
        raise ValueError(f"bulk_relaxation must be in (0, 2), got {config.bulk_relaxation}")
    magic = min(3 / 16, tau - 0.5) if config.magic is None else config.magic
    return Lattice(
        nx=nx, ny=ny, dx=dx, dt=dt, steps_per_frame=spf, u_max=u_lat, tau=tau, magic=magic
    )


# ----------------------------------------------------------------------------- geometry


def _inside(ob: Ellipse, points: np.ndarray, tol: float = 0.0) -> np.ndarray:
    """``[M] bool``: points ``[M, 2]`` inside ``ob`` or within relative ``tol`` of it."""
    c, s = math.cos(ob.angle), math.sin(ob.angle)
    px, py = points[:, 0] - ob.center[0], points[:, 1] - ob.center[1]
    lx, ly = c * px + s * py, -s * px + c * py
    return (lx / ob.radii[0]) ** 2 + (ly / ob.radii[1]) ** 2 <= (1.0 + tol) ** 2


def _ray_fraction(ob: Ellipse, x: np.ndarray, d: np.ndarray) -> np.ndarray:
    """Smallest ``t`` in ``(0, 1]`` with ``x + t d`` on the ellipse (1 if none)."""
    c, s = math.cos(ob.angle), math.sin(ob.angle)
    a, b = ob.radii
    px, py = x[:, 0] - ob.center[0], x[:, 1] - ob.center[1]
    lx, ly = (c * px + s * py) / a, (-s * px + c * py) / b
    dx, dy = (c * d[:, 0] + s * d[:, 1]) / a, (-s * d[:, 0] + c * d[:, 1]) / b
    qa, qb, qc = dx**2 + dy**2, 2 * (lx * dx + ly * dy), lx**2 + ly**2 - 1
    disc = np.maximum(qb**2 - 4 * qa * qc, 0.0)
    t = (-qb - np.sqrt(disc)) / (2 * qa)  # entry point; qc > 0 since x is outside
    return np.where((t > 0) & (t <= 1), t, 1.0)


def _boundary(config: CylinderFlowConfig, lat: Lattice) -> lbm.LatticeBoundary:
    """Rasterise the obstacles and build the lattice boundary rule."""
    xs = (np.arange(lat.nx) + 0.5) * lat.dx
    ys = (np.arange(lat.ny) + 0.5) * lat.dx
    centres = np.stack(np.meshgrid(xs, ys, indexing="ij"), -1).reshape(-1, 2)
    obstacle_id = np.full(len(centres), -1, np.int32)
    for k, ob in enumerate(config.obstacles):
        obstacle_id[(obstacle_id < 0) & _inside(ob, centres)] = k
    obstacles = config.obstacles

    def wall_fraction(x, c, oid):  # lattice units in, fractions out
        q = np.ones(len(x))
        for k, ob in enumerate(obstacles):
            sel = oid == k
            q[sel] = _ray_fraction(ob, x[sel] * lat.dx, c[sel] * lat.dx)
        return q

    def inlet_ux(y):  # y in lattice units
        return 4.0 * lat.u_max * y * (lat.ny - y) / lat.ny**2

    boundary = lbm.build_boundary(
        obstacle_id=obstacle_id.reshape(lat.nx, lat.ny),
        wall_fraction=wall_fraction,
        inlet_ux=inlet_ux,
        interpolated=config.interpolated_bounce_back,
        num_obstacles=len(config.obstacles),
        dtype=np.dtype(config.dtype),
    )
    # Pad the link and solid lists to bucket sizes so that geometries of one grid share a
    # compilation: padded entries repeat entry 0 (same write twice; force dropped).
    links, solids = len(boundary.link_dest), len(boundary.solid)
    pad_l = -(-links // _LINK_BUCKET) * _LINK_BUCKET - links
    pad_s = -(-solids // _POINT_BUCKET) * _POINT_BUCKET - solids
    boundary = boundary._replace(
        solid=jnp.concatenate([boundary.solid, jnp.repeat(boundary.solid[:1], pad_s)]),
        link_obstacle=jnp.concatenate(
            [boundary.link_obstacle, jnp.full(pad_l, len(config.obstacles), jnp.int32)]
        ),
        **{
            name: jnp.concatenate([arr, jnp.repeat(arr[:1], pad_l)])
            for name, arr in boundary._asdict().items()
            if name not in ("solid", "link_obstacle")
        },
    )
    return boundary


def _sampler(config: CylinderFlowConfig, lat: Lattice, points: np.ndarray) -> lbm.PointSampler:
    """Interpolation weights for ``points [N, 2]``; zero velocity on the obstacles."""
    centres = np.stack(np.meshgrid(np.arange(lat.nx), np.arange(lat.ny), indexing="ij"), -1) + 0.5
    centres = centres.reshape(-1, 2) * lat.dx
    solid = np.zeros(len(centres), bool)
    on_obstacle = np.zeros(len(points), bool)
    for ob in config.obstacles:
        solid |= _inside(ob, centres)
        on_obstacle |= _inside(ob, points, tol=1e-6)
    return lbm.point_sampler(
        points=points / lat.dx,
        solid=solid.reshape(lat.nx, lat.ny),
        no_slip=on_obstacle,
        inlet_ux=lambda y: 4.0 * lat.u_max * y * (lat.ny - y) / lat.ny**2,
        dtype=np.dtype(config.dtype),
    )


# ----------------------------------------------------------------------------- simulation


def _initial_state(config: CylinderFlowConfig, lat: Lattice, seed: int) -> np.ndarray:
    """Equilibrium ``[9, nx, ny]`` of the inflow parabola plus seeded cross-flow blobs."""
    rng = np.random.default_rng(seed)
    x = (np.arange(lat.nx) + 0.5)[:, None] * np.ones(lat.ny)
    y = np.ones(lat.nx)[:, None] * (np.arange(lat.ny) + 0.5)
    ux = 4.0 * lat.u_max * y * (lat.ny - y) / lat.ny**2
    uy = np.zeros_like(ux)
    solid = np.zeros(x.shape, bool)
    centres = np.stack([x, y], -1).reshape(-1, 2) * lat.dx
    for ob in config.obstacles:
        solid |= _inside(ob, centres).reshape(x.shape)
        hy = ob.half_extent[1] / lat.dx
        x0 = ob.center[0] / lat.dx + ob.half_extent[0] / lat.dx + rng.uniform(1.0, 2.0) * hy
        y0 = ob.center[1] / lat.dx + rng.uniform(-0.5, 0.5) * hy
        amp = config.perturbation * lat.u_max * rng.choice([-1.0, 1.0]) * rng.uniform(0.5, 1.0)
        uy += amp * np.exp(-((x - x0) ** 2 + (y - y0) ** 2) / (2 * hy**2))
    ux[solid], uy[solid] = 0.0, 0.0
    return np.asarray(lbm.equilibrium(np.ones_like(ux), ux, uy))


@functools.partial(jax.jit, static_argnames=("frames", "num_obstacles"))
def _run_chunk(f, boundary, params, sampler, substeps, *, frames, num_obstacles):
    """``frames`` output frames of ``substeps`` (traced) lattice steps each.

    Returns ``(f, (velocity [frames, N, 2], pressure [frames, N, 1],
    force [frames, num_obstacles, 2]), finite [] bool)`` in lattice units; the force is
    the one of each frame's last lattice step.
    """

    def substep(_, carry):
        f, _ = carry
        return lbm.step(f, boundary, params)

    def frame(f, _):
        link_force = jnp.zeros((boundary.link_dest.shape[0], 2), f.dtype)
        f, link_force = jax.lax.fori_loop(0, substeps, substep, (f, link_force))
        force = jax.ops.segment_sum(link_force, boundary.link_obstacle, num_obstacles + 1)
        velocity, pressure = lbm.sample(f, sampler)
        return f, (velocity, pressure, force[:num_obstacles])

    f, out = jax.lax.scan(frame, f, None, length=frames)
    return f, out, jnp.all(jnp.isfinite(f))


def _as_points(query_points: Any) -> np.ndarray:
    points = np.asarray(query_points)
    if points.ndim != 2 or points.shape[1] != 2 or len(points) == 0:
        raise ValueError(f"query_points must have shape [N, 2] with N >= 1, got {points.shape}")
    if not np.issubdtype(points.dtype, np.floating) or not np.isfinite(points).all():
        raise TypeError(f"query_points must be finite floats, got dtype {points.dtype}")
    return points.astype(np.float64)


def simulate_cylinder_flow(
    config: CylinderFlowConfig,
    *,
    query_points: Any | None,
    steps: int,
    seed: int = 0,
    return_coefficients: bool = False,
) -> dict[str, np.ndarray]:
    """Simulates the flow and samples it at ``query_points`` every ``frame_dt``.

    Host-side driver around a jitted `lax.scan` over frames (chunks of up to 100 frames;
    one compilation per grid size, point-count bucket and link-count bucket, shared by
    all geometries, speeds and Reynolds numbers on that grid). Cost is about
    ``(spinup_time + steps frame_dt) / dt`` lattice steps of ``nx ny`` cells (see
    `lattice_setup`), roughly 20 ns per cell and step on one CPU core.

    Args:
      config: the set-up.
      query_points: ``[N, 2]`` float physical positions (e.g. mesh nodes), or None to
        skip sampling. Points inside or on an obstacle and on the walls get zero
        velocity, points at ``x = 0`` the inflow profile.
      steps: number of output frames T after the spin-up, >= 1.
      seed: seeds the symmetry-breaking perturbation; same seed, same result.
      return_coefficients: also return the drag and lift coefficients per frame.

    Returns:
      ``velocity [T, N, 2] float32`` and ``pressure [T, N, 1] float32`` (if points were
      given); with ``return_coefficients``: ``time [T] float64`` (physical time since
      the start of the spin-up), ``drag [T, M]`` and ``lift [T, M]`` float64 for the M
      obstacles, ``C = 2 F / (rho u_mean^2 D)`` with ``D = config.diameter``.

    Raises:
      ValueError/TypeError: bad arguments (see `lattice_setup` for the lattice limits).
      FloatingPointError: if the simulation diverged.
    """
    if not isinstance(config, CylinderFlowConfig):
        raise TypeError(f"config must be a CylinderFlowConfig, got {type(config).__name__}")
    if not is_int(steps, minimum=1):
        raise ValueError(f"steps must be an int >= 1, got {steps!r}")
    if not is_int(seed):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    points = None if query_points is None else _as_points(query_points)
    lat = lattice_setup(config)
    x64 = config.dtype == "float64"
    with jax.enable_x64(True) if x64 else contextlib.nullcontext():
        dtype = jnp.dtype(config.dtype)
        boundary = _boundary(config, lat)
        params = lbm.relaxation_rates(lat.tau, lat.magic, config.bulk_relaxation, dtype)
        n = 1 if points is None else len(points)
        padded = np.zeros((-(-n // _POINT_BUCKET) * _POINT_BUCKET, 2))
        padded[:n] = points if points is not None else [config.length / 2, config.height / 2]
        sampler = _sampler(config, lat, padded)
        f = jnp.asarray(_initial_state(config, lat, int(seed)), dtype)
        spin = round(config.spinup_time / config.frame_dt)
        total = spin + int(steps)
        n_chunks = -(-total // _MAX_CHUNK_FRAMES)
        chunk = -(-total // n_chunks)
        velocity, pressure, force = [], [], []
        for c in range(n_chunks):
            f, (vel, pres, frc), finite = _run_chunk(
                f,
                boundary,
                params,
                sampler,
                jnp.asarray(lat.steps_per_frame, jnp.int32),
                frames=chunk,
                num_obstacles=len(config.obstacles),
            )
            if not bool(finite):
                raise FloatingPointError(
                    f"lattice Boltzmann simulation diverged before frame {(c + 1) * chunk} "
                    f"(tau={lat.tau:.4f}, lattice u_max={lat.u_max:.3f}); increase resolution "
                    "or lower reynolds"
                )
            lo, hi = max(spin - c * chunk, 0), min(total - c * chunk, chunk)
            if lo < hi:
                velocity.append(np.asarray(vel[lo:hi, :n]))
                pressure.append(np.asarray(pres[lo:hi, :n]))
                force.append(np.asarray(frc[lo:hi], np.float64))
    scale = lat.dx / lat.dt
    out = {}
    if points is not None:
        out["velocity"] = (np.concatenate(velocity) * scale).astype(np.float32)
        out["pressure"] = (np.concatenate(pressure) * scale**2).astype(np.float32)
    if return_coefficients:
        force = np.concatenate(force)
        norm = 2.0 / ((config.u_mean * lat.dt / lat.dx) ** 2 * (config.diameter / lat.dx))
        out["time"] = (spin + 1 + np.arange(len(force))) * config.frame_dt
        out["drag"], out["lift"] = norm * force[..., 0], norm * force[..., 1]
    return out


def force_coefficients(
    config: CylinderFlowConfig, *, steps: int, seed: int = 0
) -> dict[str, np.ndarray]:
    """Drag and lift coefficients of every obstacle, once per ``frame_dt``.

    ``C_D = 2 F_x / (rho u_mean^2 D)``, ``C_L = 2 F_y / (rho u_mean^2 D)`` with the
    force from momentum exchange and ``D = config.diameter`` (DFG definitions). Use a
    small ``frame_dt`` to resolve extrema; no points are sampled.

    Returns:
      ``time [T]``, ``drag [T, M]``, ``lift [T, M]`` (float64) for ``steps`` frames
      after the spin-up; see `simulate_cylinder_flow`.
    """
    return simulate_cylinder_flow(
        config, query_points=None, steps=steps, seed=seed, return_coefficients=True
    )


def strouhal_number(
    time: np.ndarray, lift: np.ndarray, *, reference_length: float, u_mean: float
) -> float:
    """``St = f D / u_mean`` from the mean period of upward zero crossings of ``lift``.

    Args:
      time: ``[S]`` increasing times.
      lift: ``[S]`` lift coefficient (mean removed here).
      reference_length: D.
      u_mean: mean inflow speed.

    Returns:
      The Strouhal number, or nan with fewer than two full periods.
    """
    time, lift = np.asarray(time, np.float64), np.asarray(lift, np.float64)
    signal = lift - lift.mean()
    up = np.nonzero((signal[:-1] < 0) & (signal[1:] >= 0))[0]
    if len(up) < 3:
        return float("nan")
    frac = -signal[up] / (signal[up + 1] - signal[up])
    crossings = time[up] + frac * (time[up + 1] - time[up])
    period = (crossings[-1] - crossings[0]) / (len(crossings) - 1)
    return float(reference_length / (u_mean * period))


# ----------------------------------------------------------------------------- datasets
