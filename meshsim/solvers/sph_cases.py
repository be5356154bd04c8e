"""Initial and boundary set-ups of the built-in SPH cases, and particle datasets from them.

Each case is a function `case(seed=0, *, resolution=1.0, ...) -> SPHCase`: particles on a
lattice of spacing `dx / resolution`, their types (0 fluid, 1 wall, 2 moving wall), a box
whose non-periodic sides enclose the wall layers, and settings (`SPHConfig`). The seed
varies something physical (column size, vortex phase and strength, lid speed, body force)
so trajectories differ; the same seed always gives the same case. Units are
nondimensional: rho0 = 1, gravity 1 where there is gravity, boxes of size ~1.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

from meshsim.solvers.sph import FLUID, KINEMATIC_TYPES, MOVING_WALL, WALL, SPHConfig, simulate
from meshsim.validation import check_int, check_number

__all__ = [
    "CASES", "DisplacementStats", "SPHCase", "case_trajectory", "dam_break",
    "lid_driven_cavity", "particle_meta", "poiseuille", "run_case", "taylor_green",
    "taylor_green_3d",
]  # fmt: skip

WALL_LAYERS = 3  # wall particle layers: ≥ the kernel support 2.6 dx


@dataclasses.dataclass(frozen=True)
class SPHCase:
    """A case ready for `run_case`."""

    name: str
    position: np.ndarray  # [N, D] float32
    velocity: np.ndarray  # [N, D] float32 (walls: their prescribed velocity)
    particle_type: np.ndarray  # [N] int32
    config: SPHConfig
    write_every: int  # integrator steps per output frame
    walls: dict[str, Any] | None = None  # meta "walls": 2D {"segments": [S, 2, 2]}
    params: dict[str, Any] = dataclasses.field(default_factory=dict)  # facts for meta


def _lattice(lo, hi, dx: float) -> np.ndarray:
    """Cell-centred points of spacing dx filling [lo, hi] per axis: [M, D] float64."""
    axes = [
        lo_k + dx * (0.5 + np.arange(int(round((hi_k - lo_k) / dx)))) for lo_k, hi_k in zip(lo, hi)
    ]
    return np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, len(lo))


def _wall_shell(inner_lo, inner_hi, dx: float, axes: tuple[int, ...]) -> np.ndarray:
    """Lattice points within WALL_LAYERS dx outside [inner_lo, inner_hi] along `axes`."""
    pad = WALL_LAYERS * dx
    lo = np.array([v - pad if k in axes else v for k, v in enumerate(inner_lo)])
    hi = np.array([v + pad if k in axes else v for k, v in enumerate(inner_hi)])
    x = _lattice(lo, hi, dx)
    inside = np.all((x > np.asarray(inner_lo)) & (x < np.asarray(inner_hi)), axis=1)
    return x[~inside]


def _box(lo, hi, dx: float, axes: tuple[int, ...]) -> tuple[tuple[float, float], ...]:
    pad = WALL_LAYERS * dx
    return tuple(
        (float(a - pad), float(b + pad)) if k in axes else (float(a), float(b))
        for k, (a, b) in enumerate(zip(lo, hi))
    )


def _segments_2d(lo, hi) -> dict[str, Any]:
    (x0, y0), (x1, y1) = lo, hi
    corners = [[x0, y0], [x1, y0], [x1, y1], [x0, y1]]
    return {"segments": [[corners[k], corners[(k + 1) % 4]] for k in range(4)]}


def _dt(dx, c0, h_factor=1.3, viscosity=0.0, gravity=0.0) -> float:
    """CFL (0.25 h / c0), viscous (0.125 h^2 / nu) and body-force (0.25 sqrt(h/g)) limits."""
    h = h_factor * dx
    limits = [0.25 * h / c0]
    if viscosity > 0:
        limits.append(0.125 * h * h / viscosity)
    if gravity > 0:
        limits.append(0.25 * math.sqrt(h / gravity))
    return min(limits)


def _assemble(parts) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """[(positions [M, D], type, velocity [D])] -> positions, velocities, types."""
    x = np.concatenate([p for p, _, _ in parts]).astype(np.float32)
    v = np.concatenate([np.tile(np.asarray(u, np.float32), (len(p), 1)) for p, _, u in parts])
    t = np.concatenate([np.full(len(p), k, np.int32) for p, k, _ in parts])
    return x, v.astype(np.float32), t


def _check(seed, resolution) -> np.random.Generator:
    check_int("seed", seed, minimum=0)
    check_number("resolution", resolution, greater_than=0)
    return np.random.default_rng(seed)


def dam_break(
    seed: int = 0,
    *,
    resolution: float = 1.0,
    column_width: float | None = None,
    tank: tuple[float, float] = (1.0, 0.6),
    dx: float = 0.0125,
) -> SPHCase:
    """A water column of width a and height 2a at the left of a closed tank, under gravity
    (Martin & Moyce 1952, n^2 = 2). The seed draws a in [0.2, 0.25] (unless given) and
    jitters the fluid by 1% of dx. Tait EOS, continuity density, artificial viscosity
    alpha = 0.05, free-slip walls; c0 = 10 sqrt(2 g 2a_max)."""
    rng = _check(seed, resolution)
    dx = dx / resolution
    a = float(rng.uniform(0.2, 0.25)) if column_width is None else column_width
    check_number("column_width", a, greater_than=0, maximum=tank[0])
    if 2 * a > tank[1]:
        raise ValueError(f"column_width: expected 2a ≤ tank height {tank[1]}, got a = {a}")
    a, height = round(a / dx) * dx, round(2 * a / dx) * dx
    fluid = _lattice((0.0, 0.0), (a, height), dx)
    fluid += rng.normal(0.0, 0.01 * dx, fluid.shape)
    walls = _wall_shell((0.0, 0.0), tank, dx, axes=(0, 1))
    x, v, t = _assemble([(fluid, FLUID, (0, 0)), (walls, WALL, (0, 0))])
    g = 1.0
    c0 = 10.0 * math.sqrt(2 * g * 2 * max(a, 0.25))
    cfg = SPHConfig(
        dim=2,
        dx=dx,
        box=_box((0.0, 0.0), tank, dx, (0, 1)),
        periodic=(False, False),
        dt=_dt(dx, c0, gravity=g),
        c0=c0,
        gamma=7.0,
        alpha=0.05,
        gravity=(0.0, -g),
        density="continuity",
        no_slip=False,
        free_surface=True,
    )
    write_every = max(1, round(0.01 / cfg.dt))
    params = {"case": "dam_break", "column_width": a, "column_height": height, "g": g}
    return SPHCase("dam_break", x, v, t, cfg, write_every, _segments_2d((0, 0), tank), params)


def taylor_green(
    seed: int = 0, *, resolution: float = 1.0, reynolds: float = 100.0, dx: float = 0.025
) -> SPHCase:
    """The 2D Taylor-Green vortex in the periodic unit square:
    u = -U cos(2 pi x') sin(2 pi y'), v = U sin(2 pi x') cos(2 pi y'), x' = x - x0, with
    nu = 1/Re (U_ref = L = 1). Kinetic energy decays as exp(-16 pi^2 nu t). The seed draws
    the phase (x0, y0) and U in [0.8, 1.2]. Linear EOS, summation density, c0 = 12."""
    rng = _check(seed, resolution)
    dx = 1.0 / max(4, round(1.0 / (dx / resolution)))
    shift, amp = rng.uniform(0.0, 1.0, 2), float(rng.uniform(0.8, 1.2)) if seed else 1.0
    x = _lattice((0.0, 0.0), (1.0, 1.0), dx)
    k = 2 * math.pi
    xs, ys = k * (x[:, 0] - shift[0]), k * (x[:, 1] - shift[1])
    v = amp * np.stack([-np.cos(xs) * np.sin(ys), np.sin(xs) * np.cos(ys)], -1)
    return _periodic_vortex("taylor_green", x, v, dx, reynolds, amp, shift)


def taylor_green_3d(
    seed: int = 0, *, resolution: float = 1.0, reynolds: float = 100.0, dx: float = 0.1
) -> SPHCase:
    """The 3D Taylor-Green vortex in the periodic unit cube:
    u = U sin(kx') cos(ky') cos(kz'), v = -U cos(kx') sin(ky') cos(kz'), w = 0, k = 2 pi,
    nu = 1/Re; early kinetic-energy decay exp(-24 pi^2 nu t). The seed draws the phase and
    U in [0.8, 1.2]. Linear EOS, summation density, c0 = 12."""
    rng = _check(seed, resolution)
    dx = 1.0 / max(4, round(1.0 / (dx / resolution)))
    shift, amp = rng.uniform(0.0, 1.0, 3), float(rng.uniform(0.8, 1.2)) if seed else 1.0
    x = _lattice((0.0,) * 3, (1.0,) * 3, dx)
    a, b, c = (2 * math.pi * (x[:, k] - shift[k]) for k in range(3))
    v = amp * np.stack(
        [np.sin(a) * np.cos(b) * np.cos(c), -np.cos(a) * np.sin(b) * np.cos(c), 0 * a], -1
    )
    return _periodic_vortex("taylor_green_3d", x, v, dx, reynolds, amp, shift)


def _periodic_vortex(name, x, v, dx, reynolds, amp, shift) -> SPHCase:
    """A Taylor-Green case in the periodic unit square or cube from its lattice `x [N, D]`
    and velocities `v [N, D]`: linear EOS, c0 = 12, nu = 1/Re, shifting 0.1, a frame
    every 0.01."""
    dim, nu, c0 = x.shape[1], 1.0 / reynolds, 10.0 * 1.2
    cfg = SPHConfig(
        dim=dim, dx=dx, box=((0.0, 1.0),) * dim, periodic=(True,) * dim,
        dt=_dt(dx, c0, viscosity=nu), c0=c0, gamma=1.0, viscosity=nu, shifting=0.1,
    )  # fmt: skip
    write_every = max(1, round(0.01 / cfg.dt))
    params = {"case": name, "amplitude": amp, "phase": shift.tolist(), "viscosity": nu}
    types = np.zeros(len(x), np.int32)
    return SPHCase(
        name, x.astype(np.float32), v.astype(np.float32), types, cfg, write_every, None, params
    )


def lid_driven_cavity(
    seed: int = 0, *, resolution: float = 1.0, viscosity: float = 0.01, dx: float = 1.0 / 32
) -> SPHCase:
    """The unit cavity with a lid (type 2) sliding at speed U along +x on top; no-slip
    walls. The lid is an endless belt: its particles carry velocity U but stay in place.
    The seed draws U in [0.5, 1.5] (Re = U/nu in [50, 150]); U = 1 for seed 0.
    Linear EOS, summation density, c0 = 15."""
    rng = _check(seed, resolution)
    dx = 1.0 / max(4, round(1.0 / (dx / resolution)))
    lid_speed = float(rng.uniform(0.5, 1.5)) if seed else 1.0
    fluid = _lattice((0.0, 0.0), (1.0, 1.0), dx)
    shell = _wall_shell((0.0, 0.0), (1.0, 1.0), dx, axes=(0, 1))
    top = shell[:, 1] > 1.0
    parts = [(fluid, FLUID, (0, 0)), (shell[~top], WALL, (0, 0))]
    parts.append((shell[top], MOVING_WALL, (lid_speed, 0)))
    x, v, t = _assemble(parts)
    c0 = 10.0 * 1.5
    cfg = SPHConfig(
        dim=2, dx=dx, box=_box((0.0, 0.0), (1.0, 1.0), dx, (0, 1)), periodic=(False, False),
        dt=_dt(dx, c0, viscosity=viscosity), c0=c0, gamma=1.0, viscosity=viscosity, shifting=0.1,
    )  # fmt: skip
    write_every = max(1, round(0.01 / cfg.dt))
    params = {"case": "lid_driven_cavity", "lid_speed": lid_speed, "viscosity": viscosity}
    return SPHCase(
        "lid_driven_cavity", x, v, t, cfg, write_every, _segments_2d((0, 0), (1, 1)), params
    )


def poiseuille(
    seed: int = 0,
    *,
    resolution: float = 1.0,
    viscosity: float = 0.1,
    length: float = 0.5,
    dx: float = 1.0 / 30,
) -> SPHCase:
    """Channel flow between no-slip walls at y = 0 and y = 1, periodic in x, driven from
    rest by a body force g_x; steady u(y) = g_x y (1 - y) / (2 nu). The seed draws g_x so
    that the steady centre speed is in [0.5, 1.5] (1 for seed 0). Linear EOS, summation
    density, c0 = 15."""
    rng = _check(seed, resolution)
    dx = 1.0 / max(4, round(1.0 / (dx / resolution)))
    u_max = float(rng.uniform(0.5, 1.5)) if seed else 1.0
    force = 8.0 * viscosity * u_max
    length = max(4, round(length / dx)) * dx
    fluid = _lattice((0.0, 0.0), (length, 1.0), dx)
    walls = _wall_shell((0.0, 0.0), (length, 1.0), dx, axes=(1,))
    x, v, t = _assemble([(fluid, FLUID, (0, 0)), (walls, WALL, (0, 0))])
    c0 = 10.0 * 1.5
    cfg = SPHConfig(
        dim=2, dx=dx, box=_box((0.0, 0.0), (length, 1.0), dx, (1,)), periodic=(True, False),
        dt=_dt(dx, c0, viscosity=viscosity, gravity=force), c0=c0, gamma=1.0,
        viscosity=viscosity, gravity=(force, 0.0), shifting=0.1,
    )  # fmt: skip
    write_every = max(1, round(0.02 / cfg.dt))
    segments = {"segments": [[[0.0, 0.0], [length, 0.0]], [[0.0, 1.0], [length, 1.0]]]}
    params = {"case": "poiseuille", "body_force": force, "u_max": u_max, "viscosity": viscosity}
    return SPHCase("poiseuille", x, v, t, cfg, write_every, segments, params)


CASES = {
    "dam_break": dam_break,
    "taylor_green": taylor_green,
    "taylor_green_3d": taylor_green_3d,
    "lid_driven_cavity": lid_driven_cavity,
    "poiseuille": poiseuille,
}


def run_case(case: SPHCase, *, frames: int) -> tuple[np.ndarray, np.ndarray]:
    """Simulates `case` for `frames` output frames (the initial one included).

    Returns:
      (positions [frames, N, D] float32, velocities [frames, N, D] float32).
    """
    return simulate(
        case.position,
        case.velocity,
        case.particle_type,
        case.config,
        frames=frames,
        write_every=case.write_every,
    )


def case_trajectory(name: str, *, seed: int, frames: int, resolution: float = 1.0) -> dict:
    """One trajectory in meshsim's particle convention: `position` [frames, N, D] float32
    and `particle_type` [1, N, 1] int32."""
    if name not in CASES:
        raise ValueError(f"name: expected one of {sorted(CASES)}, got {name!r}")
    case = CASES[name](seed, resolution=resolution)
    positions, _ = run_case(case, frames=frames)
    return {"position": positions, "particle_type": case.particle_type[None, :, None]}


def particle_meta(case: SPHCase, *, per_trajectory: bool = True) -> dict[str, Any]:
    """The `"particles"` meta entry of `case`, statistics not yet filled in; without
    `per_trajectory`, the seeded parameters (column size, lid speed, ...) are left out."""
    cfg = case.config
    meta = {
        "dim": cfg.dim,
        "dt": cfg.dt * case.write_every,
        "bounds": [list(b) for b in cfg.box],
        "periodic": list(cfg.periodic),
        "radius": cfg.radius,
        "kinematic_types": list(KINEMATIC_TYPES),
        "source": "meshsim-sph",
        "dx": cfg.dx,
        "write_every": case.write_every,
        "solver_dt": cfg.dt,
        "c0": cfg.c0,
        "viscosity": cfg.viscosity,
        "case": case.name,
        **({"gravity": list(cfg.gravity), **case.params} if per_trajectory else {}),
    }
    if case.walls is not None:
        meta["walls"] = case.walls
    return meta


class DisplacementStats:
    """Per-dimension mean and std of fluid velocities x_t - x_{t-1} and accelerations
    x_{t+1} - 2 x_t + x_{t-1} (position units per frame, minimum image on periodic axes),
    accumulated over trajectories in float64."""

    def __init__(self, bounds, periodic):
        self._lengths = np.array([hi - lo for lo, hi in bounds], np.float64)
        self._periodic = np.asarray(periodic, bool)
        self._sums = {k: np.zeros((3, len(bounds))) for k in ("vel", "acc")}

    def _image(self, d: np.ndarray) -> np.ndarray:
        wrapped = d - self._lengths * np.round(d / self._lengths)
        return np.where(self._periodic, wrapped, d)

    def add(self, trajectory: dict) -> None:
        """Adds one trajectory (`position` [T, N, D], `particle_type` [1, N, 1])."""
        fluid = trajectory["particle_type"].reshape(-1) == FLUID
        x = np.asarray(trajectory["position"], np.float64)[:, fluid]
        vel = self._image(np.diff(x, axis=0))
        acc = self._image(vel[1:] - vel[:-1])
        for key, values in (("vel", vel), ("acc", acc)):
            flat = values.reshape(-1, values.shape[-1])
            self._sums[key] += np.stack(
                [np.full(flat.shape[1], len(flat)), flat.sum(0), (flat**2).sum(0)]
            )

    def as_meta(self) -> dict[str, list[float]]:
        out = {}
        for key, (n, s, s2) in self._sums.items():
            n = np.maximum(n, 1)
            mean = s / n
            out[f"{key}_mean"] = mean.tolist()
            out[f"{key}_std"] = np.sqrt(np.maximum(s2 / n - mean**2, 0.0)).tolist()
        return out
