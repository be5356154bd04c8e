"""Rotating shallow water on the sphere: physics, initial conditions and the solver.

One fluid layer of depth ``h`` over a fixed orography ``h_s`` on an Earth-sized,
rotating sphere, integrated by the spectral-transform solver of the `dinosaur`
package (Google's dynamical core of NeuralGCM; in the ``weather`` extra):

* vorticity-divergence form, triangular truncation T (default T42) on a Gaussian grid
  of ``2n x 4n`` points, ``n = ⌈(3T + 1) / 4⌉`` (quadratic dealiasing: 64 x 128 at T42);
* the third-order implicit-explicit Runge-Kutta scheme ``imex_rk_sil3`` (gravity waves
  implicit, so the step is limited by advection only: 900 s at T42);
* ∇⁴ hyperdiffusion after every step on vorticity, divergence and depth, with an
  e-folding time of `DIFFUSION_HOURS` at wavenumber T (the global mean is untouched,
  so mass is conserved to rounding).

Every trajectory starts from the barotropically unstable mid-latitude jet of Galewsky,
Scott & Polvani (2004, Tellus 56A, 429-440) with its height bump, balanced as in
Williamson et al. (1992, J. Comput. Phys. 102, 211-224) test case 5: the free surface
is balanced and has mean H, the depth is the free surface minus the orography. Jet
latitude, width and speed, bump amplitude and longitude are randomised and a little
large-scale height noise added (`sample_jet_params`), so trajectories differ.

`ShallowWaterModel.to_latlon` evaluates the spectral fields exactly at any lat-lon
points (point values, not area means). At ±90°, where the wind components of a lat-lon
grid depend on the meridian, it returns their limits along each meridian: the single
wind vector at the pole in the (east, north) basis of that meridian, computed from the
``|m| = 1`` modes, the only ones that do not vanish there.

The dataset layer (WeatherBench2 layout, zarr) is `meshsim.solvers.shallow_water`.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import math
from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from meshsim.validation import check_int, check_number

logger = logging.getLogger(__name__)

# Earth constants of Williamson et al. (1992), also dinosaur's defaults.
EARTH_RADIUS = 6.37122e6  # m
EARTH_ANGULAR_VELOCITY = 7.292e-5  # s⁻¹
GRAVITY = 9.80616  # m s⁻²
MEAN_DEPTH = 10_000.0  # m, global mean free-surface height (Galewsky et al. 2004)
DIFFUSION_HOURS = 12.0  # ∇⁴ e-folding time of the truncation wavenumber
OUTPUT_HOURS = 6  # model time between stored frames
LAND_THRESHOLD = 50.0  # m; land where the analytic mountain is higher than this
OROGRAPHIES = ("flat", "cone", "gaussian")
# Williamson et al. (1992) test case 5 mountain: 2000 m high, radius π/9, at (270°E, 30°N).
# "cone": h_s = h0 (1 - r / R) inside r < R; "gaussian": h0 exp(-(2 r / R)²) (smooth).
MOUNTAIN_HEIGHT, MOUNTAIN_RADIUS = 2000.0, math.pi / 9
MOUNTAIN_LON, MOUNTAIN_LAT = 1.5 * math.pi, math.pi / 6
# Galewsky et al. (2004) perturbation shape: cos φ exp(-(λ/α)²) exp(-((φ2 - φ)/β)²).
BUMP_ALPHA, BUMP_BETA = 1 / 3, 1 / 15
NOISE_MAX_WAVENUMBER = 20  # random height noise on total wavenumbers 1..20
_POLE_OFFSET = 1e-4  # rad; the m = 1 wind limit is even in it, so the error is ~1e-8


class JetParams(NamedTuple):
    """Initial condition of one trajectory: a Galewsky et al. (2004) jet; the defaults
    are the paper's (without noise)."""

    latitude: float = 45.0  # jet centre φc, °N (paper: π/4); also the bump's latitude φ2
    half_width: float = 270 / 14  # °, half the jet's extent (paper: (π/2 - 2π/7) / 2)
    max_speed: float = 80.0  # m s⁻¹, u_max
    bump_height: float = 120.0  # m, perturbation amplitude ĥ
    bump_longitude: float = 0.0  # °E, perturbation centre
    noise_height: float = 0.0  # m, RMS of the random large-scale height noise
    noise_seed: int = 0  # numpy seed of that noise


GALEWSKY = JetParams()
# Ranges of `sample_jet_params` (uniform), around the paper's values.
JET_RANGES = {
    "latitude": (35.0, 55.0),
    "half_width": (16.0, 22.0),
    "max_speed": (60.0, 90.0),
    "bump_height": (60.0, 180.0),
    "bump_longitude": (0.0, 360.0),
}
NOISE_HEIGHT = 1.0  # m, noise RMS of `sample_jet_params`


def sample_jet_params(seed: int) -> JetParams:
    """A random jet: each field of `JET_RANGES` uniform, `NOISE_HEIGHT` of noise."""
    rng = np.random.default_rng(seed)
    draw = {k: float(rng.uniform(*bounds)) for k, bounds in JET_RANGES.items()}
    noise_seed = int(rng.integers(2**31 - 1))
    return JetParams(**draw, noise_height=NOISE_HEIGHT, noise_seed=noise_seed)


def check_jet_params(params: JetParams) -> JetParams:
    """`params` as a `JetParams` of floats (and an int seed), checked on the host.

    Raises:
      ValueError: a field is not finite, a width or amplitude is negative, or the jet
        reaches a pole.
    """
    if not isinstance(params, JetParams):
        raise ValueError(f"params: expected a JetParams, got {type(params).__name__}")
    values = [float(v) for v in params[:-1]]
    bad = [f for f, v in zip(JetParams._fields, values) if not math.isfinite(v)]
    if bad:
        raise ValueError(f"params: expected finite values, got {dict(zip(bad, values))}")
    p = JetParams(*values, int(params.noise_seed))
    if p.half_width <= 0:
        raise ValueError(f"params.half_width: expected > 0, got {p.half_width}")
    for name in ("max_speed", "noise_height"):
        if getattr(p, name) < 0:
            raise ValueError(f"params.{name}: expected ≥ 0, got {getattr(p, name)}")
    if abs(p.latitude) + p.half_width >= 90:
        raise ValueError(
            f"params: expected |latitude| + half_width < 90°, got {p.latitude} ± {p.half_width}"
        )
    return p


def _dinosaur():
    try:
        import dinosaur
        from dinosaur import (  # noqa: F401
            associated_legendre,
            coordinate_systems,
            layer_coordinates,
            scales,
            shallow_water,
            shallow_water_states,
            spherical_harmonic,
            time_integration,
            units,
        )
    except ImportError as e:  # pragma: no cover - the weather extra is missing
        raise ImportError(
            "the shallow-water solver needs dinosaur: pip install 'meshsim[weather]'"
        ) from e
    return dinosaur


def default_time_step(truncation: int) -> float:
    """The longest step ≤ 37800 s / T (900 s at T42) that divides `OUTPUT_HOURS`."""
    n = 1
    while OUTPUT_HOURS * 3600 / n > 37800 / truncation:
        n += 1
    return OUTPUT_HOURS * 3600 / n


def mountain_height(lon: np.ndarray, lat: np.ndarray, orography: str) -> np.ndarray:
    """Analytic orography h_s in m at points ``lon, lat`` (radians, same shape)."""
    if orography not in OROGRAPHIES:
        raise ValueError(f"orography: expected one of {OROGRAPHIES}, got {orography!r}")
    # Great-circle distance to the mountain centre (Williamson uses a lat-lon distance;
    # the great circle keeps the mountain round near the poles too).
    cos_r = np.sin(MOUNTAIN_LAT) * np.sin(lat) + np.cos(MOUNTAIN_LAT) * np.cos(lat) * np.cos(
        lon - MOUNTAIN_LON
    )
    r = np.arccos(np.clip(cos_r, -1.0, 1.0))
    if orography == "cone":
        return MOUNTAIN_HEIGHT * np.maximum(0.0, 1.0 - r / MOUNTAIN_RADIUS)
    if orography == "gaussian":
        return MOUNTAIN_HEIGHT * np.exp(-((2 * r / MOUNTAIN_RADIUS) ** 2))
    return np.zeros_like(r)


class ShallowWaterModel:
    """The dinosaur shallow-water solver at one truncation, time step and orography.

    Everything is built once; `run` is jitted (one compilation per number of frames),
    so build one model and reuse it (`get_model` caches them). States are dinosaur
    ``State`` pytrees of modal, non-dimensional fields ``vorticity``, ``divergence``,
    ``potential`` (depth geopotential minus its mean ``g H``), each
    ``[..., 1 layer, 2T + 1, T + 2] float32``.

    Args:
      truncation: triangular truncation T (maximum total wavenumber), ≥ 10.
      time_step_s: step in s, must divide `OUTPUT_HOURS`; default `default_time_step`.
      mean_depth: global mean free-surface height H in m.
      orography: one of `OROGRAPHIES`.
      diffusion_hours: ∇⁴ e-folding time of wavenumber T in hours.
    """

    def __init__(
        self,
        *,
        truncation: int = 42,
        time_step_s: float | None = None,
        mean_depth: float = MEAN_DEPTH,
        orography: str = "flat",
        diffusion_hours: float = DIFFUSION_HOURS,
    ):
        d = _dinosaur()
        import jax

        self.truncation = check_int("truncation", truncation, minimum=10)
        dt = default_time_step(truncation) if time_step_s is None else time_step_s
        dt = check_number("time_step_s", dt, greater_than=0)
        self.steps_per_output = round(OUTPUT_HOURS * 3600 / dt)
        if abs(self.steps_per_output * dt - OUTPUT_HOURS * 3600) > 1e-6:
            raise ValueError(
                f"time_step_s: expected a divisor of {OUTPUT_HOURS * 3600} s, got {dt}"
            )
        self.time_step_s = dt
        self.mean_depth = check_number("mean_depth", mean_depth, greater_than=0)
        self.diffusion_hours = check_number("diffusion_hours", diffusion_hours, greater_than=0)
        mountain_height(np.zeros(1), np.zeros(1), orography)  # validates the name
        self.orography = orography

        units = d.scales.units
        self.specs = d.units.SimUnits.from_si()
        self.grid = d.spherical_harmonic.Grid.construct(
            max_wavenumber=truncation, gaussian_nodes=math.ceil((3 * truncation + 1) / 4)
        )
        coords = d.coordinate_systems.CoordinateSystem(
            self.grid, d.layer_coordinates.LayerCoordinates(1)
        )
        nondim = self.specs.nondimensionalize
        self.speed_unit = float(nondim(1.0 * units.m / units.s))  # 1 m/s, non-dimensional
        self.metre = GRAVITY * self.speed_unit**2  # g · (1 m), non-dimensional
        self.ref_potential = self.mean_depth * self.metre  # g H, non-dimensional
        lon, lat = self.gaussian_lonlat  # each [lon, lat]
        self._orography_m = mountain_height(lon, lat, orography)  # [lon, lat] m
        self.orography_modal = self.grid.to_modal(self._orography_m * self.metre)  # [M, L]
        eq = d.shallow_water.ShallowWaterEquations(
            coords,
            self.specs,
            self.orography_modal if orography != "flat" else None,
            np.array([self.ref_potential]),
        )
        dt_nd = float(nondim(dt * units.s))
        tau = float(nondim(self.diffusion_hours * units.hour))
        step = d.time_integration.imex_rk_sil3(eq, dt_nd)
        diffusion = d.time_integration.horizontal_diffusion_step_filter(
            self.grid, dt_nd, tau, order=2
        )
        self._step = d.time_integration.step_with_filters(step, [diffusion])
        self._run = jax.jit(self._trajectory, static_argnums=(1, 2))
        # (u cos φ, v cos φ), modal, of the state truncated at l ≤ T (dinosaur keeps an
        # extra total wavenumber T + 1 that the dynamics clip), unclipped: exact winds.
        clip = self.grid.clip_wavenumbers
        self._cos_lat_wind = jax.jit(
            lambda vort, div: d.spherical_harmonic.get_cos_lat_vector(
                clip(vort), clip(div), self.grid, clip=False
            )
        )

    # ------------------------------------------------------------------ states

    def zonal_state(self, u: Callable[[np.ndarray], np.ndarray]):
        """The steady balanced state of zonal wind ``u(latitude in rad) -> m/s`` (v = 0).

        The free surface is balanced (``∂φ(g(h + h_s) + u²/2) = -(f + ζ) u a``, solved
        spectrally), its mean is H, and the depth is the free surface minus the orography
        (Williamson et al. 1992, test case 5 when u = u0 cos φ over a mountain).
        """
        d = _dinosaur()
        _, sin_lat = self.grid.nodal_mesh
        u_nd = np.asarray(u(np.arcsin(sin_lat)), np.float64) * self.speed_unit  # [lon, lat]
        s = d.shallow_water_states.one_layer(u_nd[0], self.grid)  # fields [M, L]
        return d.shallow_water.State(
            vorticity=s.vorticity[None],
            divergence=s.divergence[None],
            potential=(s.potential - self.orography_modal)[None],
        )

    @property
    def gaussian_lonlat(self) -> tuple[np.ndarray, np.ndarray]:
        """Longitudes and latitudes (radians) of the solver grid, each ``[lon, lat]``."""
        lon, sin_lat = self.grid.nodal_mesh
        return lon, np.arcsin(sin_lat)

    def nodal_state(self, u: np.ndarray, v: np.ndarray, free_surface: np.ndarray):
        """A state from wind (m/s) and free-surface height ``h + h_s`` (m) on the solver
        grid, each ``[lon, lat]`` as `gaussian_lonlat` (spectrally truncated)."""
        d = _dinosaur()
        shape = self.grid.nodal_shape
        for name, x in (("u", u), ("v", v), ("free_surface", free_surface)):
            if np.shape(x) != shape:
                raise ValueError(f"{name}: expected shape {shape}, got {np.shape(x)}")
        vorticity, divergence = d.spherical_harmonic.uv_nodal_to_vor_div_modal(
            self.grid, np.asarray(u) * self.speed_unit, np.asarray(v) * self.speed_unit
        )
        depth = (np.asarray(free_surface, np.float64) - self.mean_depth) * self.metre
        potential = self.grid.to_modal(depth) - self.orography_modal
        return d.shallow_water.State(
            vorticity=vorticity[None], divergence=divergence[None], potential=potential[None]
        )

    def initial_state(self, params: JetParams):
        """The balanced jet of `params` plus its height bump and noise (flat free surface
        mean H; depth = free surface minus orography)."""
        p = check_jet_params(params)
        lat0 = math.radians(p.latitude - p.half_width)
        lat1 = math.radians(p.latitude + p.half_width)
        norm = math.exp(-4.0 / (lat1 - lat0) ** 2)

        def jet(lat):
            inside = (lat > lat0) & (lat < lat1)
            with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
                shape = np.exp(1.0 / ((lat - lat0) * (lat - lat1)))
            return np.where(inside, p.max_speed / norm * shape, 0.0)

        state = self.zonal_state(jet)
        lon, sin_lat = self.grid.nodal_mesh
        lat = np.arcsin(sin_lat)
        dlon = np.mod(lon - math.radians(p.bump_longitude) + np.pi, 2 * np.pi) - np.pi
        dlat = math.radians(p.latitude) - lat
        shape = np.exp(-((dlon / BUMP_ALPHA) ** 2) - (dlat / BUMP_BETA) ** 2)
        bump = p.bump_height * np.cos(lat) * shape  # [lon, lat] m
        bump_modal = np.asarray(self.grid.to_modal(bump * self.metre))
        # Large-scale white noise: unit-norm harmonics, so the RMS is |c| / sqrt(4π).
        rng = np.random.default_rng(p.noise_seed)
        m, n = np.meshgrid(*self.grid.modal_axes, indexing="ij")  # [M, L] int
        keep = (np.abs(m) <= n) & (n >= 1) & (n <= min(NOISE_MAX_WAVENUMBER, self.truncation))
        noise = rng.standard_normal(m.shape) * keep
        noise *= p.noise_height * self.metre * math.sqrt(4 * math.pi / max(1, keep.sum()))
        potential = state.potential + (bump_modal + noise).astype(np.float32)
        return dataclasses.replace(state, potential=potential)

    # --------------------------------------------------------------- stepping

    def _trajectory(self, state, outputs: int, spinup_steps: int):
        import jax
        import jax.numpy as jnp

        def advance(s, n):
            return jax.lax.scan(lambda c, _: (self._step(c), None), s, length=n)[0]

        def frame(s, _):
            s = advance(s, self.steps_per_output)
            return s, s

        if spinup_steps:
            state = advance(state, spinup_steps)
        _, frames = jax.lax.scan(frame, state, length=outputs - 1)
        return jax.tree.map(lambda a, b: jnp.concatenate([a[None], b]), state, frames)

    def run(self, state, *, outputs: int, spinup_steps: int = 0):
        """`outputs` frames, `OUTPUT_HOURS` apart, after `spinup_steps` unstored steps.

        Returns a ``State`` whose fields gain a leading ``[outputs]`` axis; frame 0 is the
        spun-up state. Jitted; costs ``spinup_steps + (outputs - 1) steps_per_output``
        steps (~3 ms each at T42 on one CPU core).
        """
        outputs = check_int("outputs", outputs, minimum=1)
        spinup_steps = check_int("spinup_steps", spinup_steps, minimum=0)
        return self._run(state, outputs, spinup_steps)

    # ------------------------------------------------------------ diagnostics

    def diagnostics(self, states) -> dict[str, np.ndarray]:
        """Global integrals of ``states`` (fields ``[T, 1, M, L]``): ``mass`` (volume
        ∫ h dA, m³) and ``energy`` (∫ ½ h|v|² + ½ g h² + g h h_s dA, m⁵ s⁻²; times the
        density it is joules), each ``[T] float64``, by Gaussian quadrature."""
        d = _dinosaur()
        grid = self.grid
        # [lat]: Gauss weights times 2π / n_lon, so that summing over [lon, lat] is ∫ dA.
        weights = grid.spherical_harmonics.basis.w * EARTH_RADIUS**2
        u, v = d.spherical_harmonic.vor_div_to_uv_nodal(grid, states.vorticity, states.divergence)
        speed2 = (np.asarray(u, np.float64) ** 2 + np.asarray(v, np.float64) ** 2)[:, 0]
        speed2 /= self.speed_unit**2
        potential = np.asarray(grid.to_nodal(states.potential), np.float64)[:, 0]
        depth = self.mean_depth + potential / self.metre  # [T, lon, lat] m
        h_s = self._orography_m
        energy = 0.5 * depth * speed2 + GRAVITY * (0.5 * depth**2 + depth * h_s)
        return {
            "mass": np.sum(weights * depth, axis=(-2, -1)),
            "energy": np.sum(weights * energy, axis=(-2, -1)),
        }

    # ------------------------------------------------------------ output grid

    def _basis(self, lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Fourier ``[lon, 2M - 1]`` and Legendre ``[2M - 1, lat, L]`` factors of the
        dinosaur real spherical-harmonic basis at arbitrary points (radians)."""
        d = _dinosaur()
        n_m, n_l = self.grid.longitude_wavenumbers, self.grid.total_wavenumbers
        k = np.arange(1, n_m)
        f = np.empty((lon.size, 2 * n_m - 1))
        f[:, 0] = 1 / math.sqrt(2 * math.pi)
        f[:, 1::2] = np.cos(np.outer(lon, k)) / math.sqrt(math.pi)  # m = +k
        f[:, 2::2] = np.sin(np.outer(lon, k)) / math.sqrt(math.pi)  # m = -k
        p = d.associated_legendre.evaluate(n_m=n_m, n_l=n_l, x=np.sin(lat))
        return f, np.repeat(p, 2, axis=0)[1:]

    def evaluate(self, modal: np.ndarray, lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
        """Modal fields ``[..., M, L]`` at ``lon [W] x lat [H]`` (radians), ``[..., H, W]``."""
        f, p = self._basis(lon, lat)
        legendre = np.einsum("mhl,...ml->...mh", p, np.asarray(modal, np.float64))
        return np.einsum("wm,...mh->...hw", f, legendre)

    def to_latlon(self, states, lat_deg: np.ndarray, lon_deg: np.ndarray) -> dict[str, np.ndarray]:
        """``u``, ``v`` (m/s) and free-surface ``geopotential`` (m²/s²) of ``states``
        (fields ``[T, 1, M, L]``) on the grid ``lat_deg [H] x lon_deg [W]``, each
        ``[T, H, W] float64``. Rows at ±90° get the meridian limits of the wind."""
        lat, lon = np.radians(lat_deg), np.radians(lon_deg)
        vectors = self._cos_lat_wind(states.vorticity[:, 0], states.divergence[:, 0])
        uv_cos = np.stack([np.asarray(x, np.float64) for x in vectors], axis=1)  # [T, 2, M, L]
        pole = np.isclose(np.abs(lat), np.pi / 2)
        wind = np.empty(uv_cos.shape[:2] + (lat.size, lon.size))
        inner = lat[~pole]
        wind[..., ~pole, :] = self.evaluate(uv_cos, lon, inner) / np.cos(inner)[:, None]
        if pole.any():
            m, _ = self.grid.modal_axes
            near = np.sign(lat[pole]) * (np.pi / 2 - _POLE_OFFSET)
            m1 = uv_cos * (np.abs(m) == 1)[:, None]
            wind[..., pole, :] = self.evaluate(m1, lon, near) / np.cos(near)[:, None]
        free_surface = np.asarray(states.potential[:, 0], np.float64)  # [T, M, L]
        free_surface = _truncate(free_surface + np.asarray(self.orography_modal, np.float64))
        phi = self.evaluate(free_surface, lon, lat) + self.ref_potential
        scale = 1.0 / self.speed_unit
        return {"u": wind[:, 0] * scale, "v": wind[:, 1] * scale, "geopotential": phi * scale**2}

    def surface_geopotential(self, lat_deg: np.ndarray, lon_deg: np.ndarray) -> np.ndarray:
        """g h_s as the model sees it (the truncated spectral orography), ``[H, W]`` m²/s²."""
        lat, lon = np.radians(lat_deg), np.radians(lon_deg)
        orography = _truncate(np.asarray(self.orography_modal, np.float64))
        return self.evaluate(orography, lon, lat) / self.speed_unit**2


def _truncate(modal: np.ndarray) -> np.ndarray:
    """``modal [..., M, L]`` without its top total wavenumber l = T + 1 (as dinosaur's
    own nodal output)."""
    return np.concatenate([modal[..., :-1], np.zeros_like(modal[..., -1:])], axis=-1)


def get_model(
    *,
    truncation: int = 42,
    time_step_s: float | None = None,
    mean_depth: float = MEAN_DEPTH,
    orography: str = "flat",
    diffusion_hours: float = DIFFUSION_HOURS,
) -> ShallowWaterModel:
    """A cached `ShallowWaterModel` (same arguments), so repeated calls reuse its
    compilations."""
    return _cached_model(truncation, time_step_s, mean_depth, orography, diffusion_hours)


@functools.lru_cache(maxsize=8)
def _cached_model(truncation, time_step_s, mean_depth, orography, diffusion_hours):
    return ShallowWaterModel(
        truncation=truncation,
        time_step_s=time_step_s,
        mean_depth=mean_depth,
        orography=orography,
        diffusion_hours=diffusion_hours,
    )
