"""Weakly-compressible SPH (WCSPH) in JAX: the reference solver for particle data.

Model (Adami, Hu & Adams 2012, "A generalized wall boundary condition for smoothed
particle hydrodynamics", JCP 231; referred to as A12):
  * Wendland C2 kernel with support radius 2h (`wendland_kernel`);
  * equation of state p = B((rho/rho0)^gamma - 1) + p_b, B = rho0 c0^2 / gamma
    (gamma = 1: linear, gamma = 7: Tait), c0 ≈ 10 × the largest expected speed so that
    density varies by ~1%;
  * density by summation over all particles (A12 eq. 4; confined and periodic flows) or
    by the continuity equation (free surfaces, where summation underestimates density);
  * momentum with the inter-particle-averaged pressure and laminar (Morris-type)
    viscosity of A12 eqs. 5-8, an optional Monaghan artificial viscosity, gravity;
  * solid walls are layers of fixed particles whose pressure and velocity are
    extrapolated from the fluid each step (A12 eqs. 22, 23, 27): no-slip for the
    viscous term, the prescribed wall velocity in the continuity equation. Moving walls
    (a lid) are particles with a prescribed velocity; `SPHConfig.move_walls` decides
    whether their positions follow it (a lid is an endless belt: it does not);
  * periodic axes use the minimum image and wrap positions;
  * stabilisers, each a setting: delta-SPH density diffusion for continuity density,
    particle shifting with a first-order velocity correction (confined flows; without it
    particles clump along the strained lattice of a Taylor-Green vortex), and negative
    pressures clipped to 0 at free surfaces (the tensile instability);
  * kick-drift-kick (velocity Verlet, A12 section 2.4) with one neighbour search and
    one force evaluation per step.
Neighbours come from `meshsim.graph.radius_graph` with a static capacity; a rollout runs
in `lax.scan` chunks, and a chunk whose neighbour list overflowed is rerun with a
larger capacity (checked host side), so pairs are never silently dropped.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from meshsim.graph import radius_graph
from meshsim.validation import check_int

__all__ = [
    "FLUID", "KINEMATIC_TYPES", "MOVING_WALL", "WALL", "Neighbours", "PairList", "SPHConfig",
    "SPHState", "equation_of_state", "initial_capacity", "initial_state",
    "inverse_equation_of_state", "minimum_image", "neighbours", "search_pairs", "simulate",
    "step", "update_pairs", "wendland_kernel", "wrap",
]  # fmt: skip

FLUID, WALL, MOVING_WALL, RIGID = 0, 1, 2, 3  # LagrangeBench's particle-type ids
KINEMATIC_TYPES = (WALL, MOVING_WALL)  # prescribed, not simulated
# Initial neighbour-list capacity = observed pairs × margin + slack; grown ×_GROWTH on overflow.
_CAPACITY_MARGIN = 1.3
_CAPACITY_SLACK = 256
_GROWTH = 1.5
_MAX_SHIFT = 0.05  # largest particle shift per step, in units of dx
_CHUNK_FRAMES = 100  # frames per compiled scan chunk (the overflow check runs between chunks)


@dataclasses.dataclass(frozen=True)
class SPHConfig:
    """Physical and numerical settings (hashable: a static argument of the compiled step).

    Units are the case's own (the built-in cases use rho0 = 1 and lengths ~ 1).
    """

    dim: int  # 2 or 3
    dx: float  # initial particle spacing; particle mass = rho0 dx^dim
    box: tuple[tuple[float, float], ...]  # [dim] (lo, hi), walls included
    periodic: tuple[bool, ...]  # [dim]
    dt: float  # time step of the integrator
    c0: float  # artificial sound speed
    h_factor: float = 1.3  # smoothing length h = h_factor dx; support 2h
    rho0: float = 1.0
    gamma: float = 7.0  # 1: linear EOS, 7: Tait
    background_pressure: float = 0.0  # p_b
    viscosity: float = 0.0  # kinematic nu (laminar, A12 eq. 8)
    alpha: float = 0.0  # Monaghan artificial viscosity coefficient
    gravity: tuple[float, ...] = ()  # [dim] body force per unit mass; () = none
    density: str = "summation"  # or "continuity"
    no_slip: bool = True  # walls in the viscous term: no-slip (A12 eq. 23) or free-slip
    move_walls: bool = False  # advance MOVING_WALL positions with their velocity
    skin: float = 0.5  # Verlet skin in units of dx: pairs are searched within 2h + skin dx
    # Particle shifting (Lind et al. 2012; anti-clumping term of Sun et al. 2017):
    # dx_i = -shifting h^2 sum_j V_j (1 + 0.2 (W_ij / W(dx))^4) grad W_ij per step, at most
    # _MAX_SHIFT dx; 0 = off (free surfaces need it off).
    shifting: float = 0.0
    # delta-SPH density diffusion (Molteni & Colagrossi 2009) in the continuity equation,
    # between fluid particles; it keeps the pressure of continuity-density runs smooth.
    delta: float = 0.1
    # Clip negative pressures to 0: at a free surface they only cause the tensile
    # instability (particles clump and fly off), there being no fluid to pull on.
    free_surface: bool = False

    @property
    def h(self) -> float:
        return self.h_factor * self.dx

    @property
    def radius(self) -> float:
        """Kernel support: the neighbour search radius."""
        return 2.0 * self.h

    @property
    def search_radius(self) -> float:
        """Pair-list radius: the support plus the skin."""
        return self.radius + self.skin * self.dx

    @property
    def mass(self) -> float:
        return self.rho0 * self.dx**self.dim

    def g(self) -> jnp.ndarray:
        """Gravity, [dim] float32."""
        return jnp.asarray(self.gravity or (0.0,) * self.dim, jnp.float32)


class PairList(NamedTuple):
    """Pairs within `search_radius` of the positions `reference`, reused until some
    particle has moved by half the skin (then no pair within the support can be missing).
    """

    reference: jnp.ndarray  # [N, D] float32, positions at the last search
    receivers: jnp.ndarray  # [C] int32, i; padding 0
    senders: jnp.ndarray  # [C] int32, j; padding 0
    mask: jnp.ndarray  # [C] bool


class SPHState(NamedTuple):
    """The integrator's state; N particles of any type, D = dim."""

    position: jnp.ndarray  # [N, D] float32
    velocity: jnp.ndarray  # [N, D] float32 (walls: their prescribed velocity)
    density: jnp.ndarray  # [N] float32
    acceleration: jnp.ndarray  # [N, D] float32, from the last force evaluation
    density_rate: jnp.ndarray  # [N] float32, d rho / dt (continuity) or 0
    pairs: PairList


class Neighbours(NamedTuple):
    """Valid directed pairs j → i with their geometry; padding rows have mask False."""

    i: jnp.ndarray  # [C] int32, receiver
    j: jnp.ndarray  # [C] int32, sender
    mask: jnp.ndarray  # [C] bool
    d: jnp.ndarray  # [C, D] float32, x_i - x_j (minimum image)
    r: jnp.ndarray  # [C] float32, |d|
    w: jnp.ndarray  # [C] float32, W(r)
    dw: jnp.ndarray  # [C] float32, dW/dr (≤ 0)


def wendland_kernel(r: jnp.ndarray, h: float, dim: int) -> tuple[jnp.ndarray, jnp.ndarray]:
    """Wendland C2 kernel W(r) and dW/dr, support 2h (Dehnen & Aly 2012 normalisation).

    W = alpha (1 - q/2)^4 (2q + 1), q = r/h; alpha = 7/(4 pi h^2) in 2D, 21/(16 pi h^3)
    in 3D. jit-safe; `r` any shape, float32.
    """
    alpha = 7.0 / (4.0 * math.pi * h**2) if dim == 2 else 21.0 / (16.0 * math.pi * h**3)
    q = r / h
    t = jnp.clip(1.0 - 0.5 * q, 0.0, None)
    w = alpha * t**4 * (2.0 * q + 1.0)
    dw = -5.0 * alpha / h * q * t**3
    return w, dw


def minimum_image(d: jnp.ndarray, cfg: SPHConfig) -> jnp.ndarray:
    """Displacements `d` [..., D] wrapped to the nearest image on periodic axes."""
    lengths = jnp.asarray([hi - lo for lo, hi in cfg.box], d.dtype)
    periodic = jnp.asarray(cfg.periodic)
    return jnp.where(periodic, d - lengths * jnp.round(d / lengths), d)


def wrap(x: jnp.ndarray, cfg: SPHConfig) -> jnp.ndarray:
    """Positions `x` [N, D] folded into the box on periodic axes."""
    lo = jnp.asarray([b[0] for b in cfg.box], x.dtype)
    lengths = jnp.asarray([hi - lo for lo, hi in cfg.box], x.dtype)
    return jnp.where(jnp.asarray(cfg.periodic), lo + jnp.mod(x - lo, lengths), x)


def equation_of_state(rho: jnp.ndarray, cfg: SPHConfig) -> jnp.ndarray:
    """Pressure of density `rho` (any shape)."""
    b = cfg.rho0 * cfg.c0**2 / cfg.gamma
    return b * ((rho / cfg.rho0) ** cfg.gamma - 1.0) + cfg.background_pressure


def inverse_equation_of_state(p: jnp.ndarray, cfg: SPHConfig) -> jnp.ndarray:
    """Density of pressure `p` (any shape); the inverse of `equation_of_state`."""
    b = cfg.rho0 * cfg.c0**2 / cfg.gamma
    base = jnp.clip((p - cfg.background_pressure) / b + 1.0, 1e-3, None)
    return cfg.rho0 * base ** (1.0 / cfg.gamma)


def search_pairs(x: jnp.ndarray, cfg: SPHConfig, capacity: int) -> tuple[PairList, jnp.ndarray]:
    """Pairs within `cfg.search_radius` of positions `x` [N, D] (`radius_graph`), and
    whether the list overflowed ([] bool). jit-safe."""
    g = radius_graph(
        x, cfg.search_radius, capacity=capacity, box=[list(b) for b in cfg.box],
        periodic=cfg.periodic,
    )  # fmt: skip
    mask = g.mask & (g.receivers != g.senders)  # self terms are added where they count
    i, j = jnp.where(mask, g.receivers, 0), jnp.where(mask, g.senders, 0)
    return PairList(x, i, j, mask), g.overflow


_search_jit = jax.jit(search_pairs, static_argnums=(1, 2))


def update_pairs(x: jnp.ndarray, pairs: PairList, cfg: SPHConfig) -> tuple[PairList, jnp.ndarray]:
    """`pairs`, searched again (`lax.cond`) once a particle has moved half the skin."""
    moved = jnp.max(jnp.sum(minimum_image(x - pairs.reference, cfg) ** 2, -1))
    capacity = pairs.mask.shape[0]
    reach = 0.5 * cfg.skin - (_MAX_SHIFT if cfg.shifting > 0 else 0.0)  # room for a shift
    return jax.lax.cond(
        moved > (reach * cfg.dx) ** 2,
        lambda: search_pairs(x, cfg, capacity),
        lambda: (pairs, jnp.zeros((), bool)),
    )


def neighbours(x: jnp.ndarray, pairs: PairList, cfg: SPHConfig) -> Neighbours:
    """Kernel values on the pair list at positions `x` [N, D] (0 beyond the support)."""
    i, j = pairs.receivers, pairs.senders
    d = minimum_image(x[i] - x[j], cfg)
    r = jnp.sqrt(jnp.sum(d * d, axis=-1) + 1e-12 * cfg.dx**2)
    w, dw = wendland_kernel(r, cfg.h, cfg.dim)
    m = pairs.mask.astype(x.dtype)
    return Neighbours(i, j, pairs.mask, d, r, w * m, dw * m)


def _sum(values: jnp.ndarray, nb: Neighbours, n: int) -> jnp.ndarray:
    return jax.ops.segment_sum(values, nb.i, num_segments=n)


def _summation_density(nb: Neighbours, n: int, cfg: SPHConfig) -> jnp.ndarray:
    w0 = wendland_kernel(jnp.zeros(()), cfg.h, cfg.dim)[0]
    return cfg.mass * (_sum(nb.w, nb, n) + w0)


def _continuity_rate(v, rho, fluid, nb: Neighbours, n: int, cfg: SPHConfig) -> jnp.ndarray:
    """d rho_i/dt = sum_j m (v_i - v_j) . grad_i W_ij (walls move with their velocity),
    plus the delta-SPH term delta h c0 sum_j 2 (rho_j - rho_i) (-dW/dr) / r V_j."""
    vij = v[nb.i] - v[nb.j]
    rate = cfg.mass * _sum(jnp.sum(vij * nb.d, -1) / nb.r * nb.dw, nb, n)
    both = (fluid[nb.i] & fluid[nb.j]).astype(rho.dtype)
    diff = 2.0 * (rho[nb.j] - rho[nb.i]) * (-nb.dw) / nb.r * cfg.mass / rho[nb.j] * both
    return rate + cfg.delta * cfg.h * cfg.c0 * _sum(diff, nb, n)


def _wall_state(p, rho, v, fluid, nb: Neighbours, n: int, cfg: SPHConfig):
    """Wall pressure, density and no-slip velocity extrapolated from the fluid (A12 eqs.
    22, 23, 27, with zero wall acceleration); fluid particles keep theirs."""
    take = (fluid[nb.j] & ~fluid[nb.i]).astype(p.dtype) * nb.w  # fluid j -> wall i
    sw = _sum(take, nb, n)
    spw = _sum(take * p[nb.j], nb, n)
    srw = _sum((take * rho[nb.j])[:, None] * nb.d, nb, n)  # sum rho_f (x_w - x_f) W
    svw = _sum(take[:, None] * v[nb.j], nb, n)
    safe = jnp.where(sw > 0, sw, 1.0)
    p_wall = jnp.where(sw > 0, (spw + srw @ cfg.g()) / safe, cfg.background_pressure)
    v_fluid = svw / safe[:, None]
    v_noslip = jnp.where((sw > 0)[:, None], 2.0 * v - v_fluid, v)
    p = jnp.where(fluid, p, p_wall)
    rho = jnp.where(fluid, rho, inverse_equation_of_state(p_wall, cfg))
    v_visc = jnp.where(fluid[:, None], v, v_noslip if cfg.no_slip else v)
    return p, rho, v_visc


def _acceleration(p, rho, v_visc, v, fluid, nb: Neighbours, n: int, cfg: SPHConfig):
    """Fluid accelerations [N, D] (A12 eqs. 5-8, Monaghan viscosity, gravity); 0 on walls."""
    m = cfg.mass
    vol_i, vol_j = m / rho[nb.i], m / rho[nb.j]
    vol2 = vol_i**2 + vol_j**2
    ri, rj = rho[nb.i], rho[nb.j]
    p_avg = (rj * p[nb.i] + ri * p[nb.j]) / (ri + rj)
    e = nb.d / nb.r[:, None]
    f = (-vol2 * p_avg * nb.dw / m)[:, None] * e
    if cfg.viscosity > 0:
        eta = cfg.rho0 * cfg.viscosity
        f = f + (vol2 * eta * nb.dw / nb.r / m)[:, None] * (v_visc[nb.i] - v_visc[nb.j])
    if cfg.alpha > 0:
        vd = jnp.sum((v[nb.i] - v[nb.j]) * nb.d, -1)
        mu = cfg.h * vd / (nb.r**2 + 0.01 * cfg.h**2)
        pi = jnp.where(vd < 0, -cfg.alpha * cfg.c0 * mu / (0.5 * (ri + rj)), 0.0)
        f = f - (m * pi * nb.dw)[:, None] * e
    a = _sum(f, nb, n) + cfg.g()
    return jnp.where(fluid[:, None], a, 0.0)


def _shift(x, v, rho, fluid, pairs: PairList, cfg: SPHConfig):
    """Positions `x` [N, D] with fluid particles shifted down concentration gradients, and
    velocities `v` [N, D] moved with them to first order (v += (dx . grad) v)."""
    nb = neighbours(x, pairs, cfg)
    w_dx = wendland_kernel(jnp.asarray(cfg.dx), cfg.h, cfg.dim)[0]
    vol_j = cfg.mass / rho[nb.j]
    grad = (vol_j * (1.0 + 0.2 * (nb.w / w_dx) ** 4) * nb.dw / nb.r)[:, None] * nb.d
    delta = -cfg.shifting * cfg.h**2 * _sum(grad, nb, x.shape[0])
    size = jnp.sqrt(jnp.sum(delta**2, -1, keepdims=True))
    delta = delta * jnp.minimum(1.0, _MAX_SHIFT * cfg.dx / jnp.maximum(size, 1e-30))
    delta = jnp.where(fluid[:, None], delta, 0.0)
    grad_w = (vol_j * nb.dw / nb.r)[:, None] * nb.d  # [C, D]
    dv = _sum(jnp.sum(grad_w * delta[nb.i], -1, keepdims=True) * (v[nb.j] - v[nb.i]), nb, len(x))
    return wrap(x + delta, cfg), v + dv


def _evaluate(x, v, rho, fluid, pairs: PairList, cfg: SPHConfig):
    """Density, wall state and accelerations at positions x, velocities v."""
    n = x.shape[0]
    nb = neighbours(x, pairs, cfg)
    rate = jnp.zeros_like(rho)
    if cfg.density == "summation":
        rho = jnp.where(fluid, _summation_density(nb, n, cfg), rho)
    else:
        rate = jnp.where(fluid, _continuity_rate(v, rho, fluid, nb, n, cfg), 0.0)
    p = equation_of_state(rho, cfg)
    if cfg.free_surface:
        p = jnp.maximum(p, 0.0)
    p, rho_all, v_visc = _wall_state(p, rho, v, fluid, nb, n, cfg)
    a = _acceleration(p, rho_all, v_visc, v, fluid, nb, n, cfg)
    return rho, a, rate


@functools.partial(jax.jit, static_argnames=("cfg", "capacity"))
def initial_state(position, velocity, particle_type, cfg: SPHConfig, capacity: int):
    """The state at t = 0 (densities rho0 or by summation, first accelerations).

    Args:
      position: [N, D] float32.
      velocity: [N, D] float32; walls: their prescribed velocity.
      particle_type: [N] int32.
      cfg: the settings.
      capacity: neighbour-list capacity.

    Returns:
      (SPHState, overflow [] bool).
    """
    x = wrap(jnp.asarray(position, jnp.float32), cfg)
    v = jnp.asarray(velocity, jnp.float32)
    fluid = jnp.asarray(particle_type) == FLUID
    rho = jnp.full(x.shape[:1], cfg.rho0, jnp.float32)
    pairs, overflow = search_pairs(x, cfg, capacity)
    rho, a, rate = _evaluate(x, v, rho, fluid, pairs, cfg)
    return SPHState(x, v, rho, a, rate, pairs), overflow


def step(state: SPHState, fluid: jnp.ndarray, cfg: SPHConfig):
    """One kick-drift-kick step; `fluid` [N] bool. Returns (state, overflow [] bool)."""
    dt = cfg.dt
    fl = fluid[:, None]
    v_half = jnp.where(fl, state.velocity + 0.5 * dt * state.acceleration, state.velocity)
    moves = fl | cfg.move_walls
    x = wrap(jnp.where(moves, state.position + dt * v_half, state.position), cfg)
    rho = state.density
    if cfg.density == "continuity":
        rho = rho + dt * state.density_rate
    pairs, overflow = update_pairs(x, state.pairs, cfg)
    if cfg.shifting > 0:
        x, v_half = _shift(x, v_half, state.density, fluid, pairs, cfg)
    rho, a, rate = _evaluate(x, v_half, rho, fluid, pairs, cfg)
    v = jnp.where(fl, v_half + 0.5 * dt * a, v_half)
    return SPHState(x, v, rho, a, rate, pairs), overflow


@functools.partial(jax.jit, static_argnames=("cfg", "frames", "write_every"))
def _run_chunk(state, fluid, *, cfg: SPHConfig, frames: int, write_every: int):
    def frame(carry, _):
        def inner(c, _):
            s, ovf = c
            s, o = step(s, fluid, cfg)
            return (s, ovf | o), None

        carry, _ = jax.lax.scan(inner, carry, None, length=write_every)
        return carry, (carry[0].position, carry[0].velocity)

    (state, overflow), (xs, vs) = jax.lax.scan(
        frame, (state, jnp.zeros((), bool)), None, length=frames
    )
    return state, overflow, xs, vs


def initial_capacity(position, cfg: SPHConfig) -> int:
    """A neighbour-list capacity: the pairs of `position` [N, D] within `search_radius`
    (`radius_graph` counts them even past its capacity) × 1.3, plus 256."""
    g = radius_graph(
        jnp.asarray(position, jnp.float32), cfg.search_radius, capacity=1,
        box=[list(b) for b in cfg.box], periodic=cfg.periodic,
    )  # fmt: skip
    return int(int(g.count) * _CAPACITY_MARGIN) + _CAPACITY_SLACK


def simulate(
    position: np.ndarray,
    velocity: np.ndarray,
    particle_type: np.ndarray,
    cfg: SPHConfig,
    *,
    frames: int,
    write_every: int,
    capacity: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Runs `frames - 1` × `write_every` steps and returns every `write_every`-th state.

    Compiled once per (N, cfg, capacity, chunk length); chunks of up to 100 frames run as
    one `lax.scan`, and a chunk whose neighbour list overflowed is rerun with capacity
    ×1.5. Cost ~ (frames × write_every) × pairs.

    Args:
      position: [N, D] float32 initial positions.
      velocity: [N, D] float32 initial velocities (walls: their prescribed velocity).
      particle_type: [N] int32 (0 fluid, 1 wall, 2 moving wall).
      cfg: the settings.
      frames: frames returned, the initial state included (≥ 1).
      write_every: integrator steps between frames (≥ 1).
      capacity: initial neighbour-list capacity; None: from the initial pairs.

    Returns:
      (positions [frames, N, D] float32, velocities [frames, N, D] float32).

    Raises:
      ValueError: inconsistent shapes, unknown types, or a bad count.
    """
    frames = check_int("frames", frames, minimum=1)
    write_every = check_int("write_every", write_every, minimum=1)
    x0 = np.asarray(position, np.float32)
    v0 = np.asarray(velocity, np.float32)
    types = np.asarray(particle_type, np.int32).reshape(-1)
    if x0.ndim != 2 or x0.shape[1] != cfg.dim:
        raise ValueError(f"position: expected shape [N, {cfg.dim}], got {x0.shape}")
    if v0.shape != x0.shape:
        raise ValueError(f"velocity: expected shape {x0.shape}, got {v0.shape}")
    if types.shape != x0.shape[:1] or not np.isin(types, (FLUID, WALL, MOVING_WALL)).all():
        raise ValueError(f"particle_type: expected [{len(x0)}] ids in (0, 1, 2), got {types}")
    if cfg.density not in ("summation", "continuity"):
        raise ValueError(f"cfg.density: expected 'summation' or 'continuity', got {cfg.density!r}")
    capacity = initial_capacity(x0, cfg) if capacity is None else check_int("capacity", capacity)
    fluid = jnp.asarray(types == FLUID)
    while True:
        state, overflow = initial_state(x0, v0, types, cfg, capacity)
        if not bool(overflow):
            break
        capacity = int(capacity * _GROWTH)
    xs, vs = [np.asarray(state.position)[None]], [np.asarray(state.velocity)[None]]
    remaining = frames - 1
    chunk = min(remaining, _CHUNK_FRAMES)
    while remaining > 0:
        new, overflow, cx, cv = _run_chunk(
            state, fluid, cfg=cfg, frames=chunk, write_every=write_every
        )
        if bool(overflow):  # rerun this chunk with more room
            capacity = int(capacity * _GROWTH)
            state = state._replace(pairs=_search_jit(state.position, cfg, capacity)[0])
            continue
        take = min(chunk, remaining)
        xs.append(np.asarray(cx[:take]))
        vs.append(np.asarray(cv[:take]))
        state, remaining = new, remaining - take
    positions, velocities = np.concatenate(xs), np.concatenate(vs)
    if not np.isfinite(positions).all():
        raise FloatingPointError("SPH simulation diverged (non-finite positions)")
    return positions, velocities
