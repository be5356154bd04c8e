"""A 2 m temperature-like field with a diurnal cycle, driven by the solar radiation.

One column per grid point relaxes towards a radiative equilibrium and is heated by the
top-of-atmosphere incident solar radiation (TISR, `meshsim.data.forcing`, the
forcing the weather task computes), and the field is carried by the flow:

    dT/dt + (v·∇)T = a · TISR(t, φ, λ) / S₀ − (T − T_eq(φ)) / τ,
    T_eq(φ) = T_pole + (T_equator − T_pole) cos² φ.

With the defaults (`ColumnParameters`: a = 30 K/day, τ = 1.5 days) the daily mean
heating warms the equator by ~14 K and the diurnal swing at the equator is ~±2.4 K,
peaking in the late afternoon (the relaxation is slow next to a day: the first
harmonic lags the radiation by arctan(ωτ) ≈ 84°, ~5.6 h). Without radiation the
field relaxes to `T_eq`.

Integration (`integrate_temperature`): `substeps` sub-steps per output interval, each
a semi-Lagrangian advection (departure point one step back along the wind, on the
sphere; bilinear interpolation on the lat-lon grid, periodic in longitude) followed by
the exact solution of the relaxation with the heating frozen at the sub-step's middle
(T ← T* + (T − T*) e^(−Δt/τ), T* = T_eq + a τ TISR/S₀). The wind between two output
frames is interpolated linearly in time. numpy only.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from meshsim.data.forcing import SOLAR_CONSTANT, toa_incident_solar_radiation
from meshsim.solvers.shallow_water_model import EARTH_RADIUS
from meshsim.validation import check_int

TEMPERATURE_VARIABLE = "2m_temperature"


@dataclasses.dataclass(frozen=True)
class ColumnParameters:
    """The column model's constants.

    Attributes:
      heating_k_per_day: a, the warming rate under the overhead sun (TISR = S₀), K/day.
      relaxation_days: τ, the relaxation time towards `T_eq`, days (> 0).
      equator_k, pole_k: `T_eq` at the equator and at the poles, K.
      substeps: sub-steps per output interval (≥ 1).
      advect: carry the field with the wind (False: every column on its own).
    """

    heating_k_per_day: float = 30.0
    relaxation_days: float = 1.5
    equator_k: float = 270.0
    pole_k: float = 240.0
    substeps: int = 6
    advect: bool = True

    def __post_init__(self):
        for name in ("heating_k_per_day", "relaxation_days", "equator_k", "pole_k"):
            value = getattr(self, name)
            ok = isinstance(value, int | float) and not isinstance(value, bool)
            if not ok or not math.isfinite(value):
                raise ValueError(f"{name}: expected a finite number, got {value!r}")
        if self.relaxation_days <= 0:
            raise ValueError(f"relaxation_days: expected > 0, got {self.relaxation_days!r}")
        if self.heating_k_per_day < 0:
            raise ValueError(f"heating_k_per_day: expected ≥ 0, got {self.heating_k_per_day!r}")
        check_int("substeps", self.substeps, minimum=1)


def equilibrium_temperature(latitudes, params: ColumnParameters) -> np.ndarray:
    """[H] float64 `T_eq` (K) at `latitudes [H]` (degrees)."""
    cos2 = np.cos(np.radians(np.asarray(latitudes, np.float64))) ** 2
    return params.pole_k + (params.equator_k - params.pole_k) * cos2


def daily_mean_equilibrium(time, latitudes, longitudes, params: ColumnParameters) -> np.ndarray:
    """[H, W] float64 the equilibrium under the radiation averaged over the 24 h after
    `time` (datetime64): a start close to the model's daily mean."""
    hours = np.asarray(time, "datetime64[s]") + np.arange(24) * np.timedelta64(3600, "s")
    radiation = toa_incident_solar_radiation(
        hours + np.timedelta64(1800, "s"), latitudes, longitudes
    )
    mean = radiation.astype(np.float64).mean(0) / SOLAR_CONSTANT  # [H, W]
    tau = params.relaxation_days
    return (
        equilibrium_temperature(latitudes, params)[:, None] + params.heating_k_per_day * tau * mean
    )


def _unit_vectors(lat: np.ndarray, lon: np.ndarray) -> tuple[np.ndarray, ...]:
    """Position, east and north unit vectors, each [H, W, 3], at lat [H], lon [W] (rad)."""
    la, lo = np.meshgrid(lat, lon, indexing="ij")
    position = np.stack([np.cos(la) * np.cos(lo), np.cos(la) * np.sin(lo), np.sin(la)], -1)
    east = np.stack([-np.sin(lo), np.cos(lo), np.zeros_like(lo)], -1)
    north = np.stack([-np.sin(la) * np.cos(lo), -np.sin(la) * np.sin(lo), np.cos(la)], -1)
    return position, east, north


def _bilinear(field: np.ndarray, lat: np.ndarray, lon: np.ndarray, lat_q, lon_q) -> np.ndarray:
    """`field [H, W]` at the points (lat_q, lon_q) (rad, any shape): bilinear on the grid
    lat [H] ascending, lon [W] increasing in [0, 2π) (periodic); latitudes outside the
    grid's range take its edge rows."""
    h, w = field.shape
    lat_q = np.clip(lat_q, lat[0], lat[-1])
    i = np.clip(np.searchsorted(lat, lat_q) - 1, 0, h - 2)
    fy = (lat_q - lat[i]) / (lat[i + 1] - lat[i])
    lon_ext = np.append(lon, lon[0] + 2 * np.pi)
    lon_q = np.mod(lon_q - lon[0], 2 * np.pi) + lon[0]
    j = np.clip(np.searchsorted(lon_ext, lon_q, side="right") - 1, 0, w - 1)
    fx = (lon_q - lon_ext[j]) / (lon_ext[j + 1] - lon_ext[j])
    j1 = (j + 1) % w
    top = (1 - fx) * field[i, j] + fx * field[i, j1]
    bottom = (1 - fx) * field[i + 1, j] + fx * field[i + 1, j1]
    return (1 - fy) * top + fy * bottom


def integrate_temperature(
    u,
    v,
    times,
    latitudes,
    longitudes,
    initial=None,
    params: ColumnParameters | None = None,
) -> np.ndarray:
    """[T, H, W] float64 the temperature at the output `times`, frame 0 `initial`.

    Args:
      u, v: [T, H, W] eastward and northward wind (m/s) at `times` (pole rows: the
        meridian limits, as `meshsim.solvers.shallow_water` writes them).
      times: [T] datetime64, equally spaced.
      latitudes: [H] degrees, ascending; longitudes: [W] degrees, increasing in [0, 360).
      initial: [H, W] K at times[0]; default `daily_mean_equilibrium` there.
      params: `ColumnParameters` (default: its defaults).

    Raises:
      ValueError: shapes or times that do not fit (the field is named).
    """
    params = params or ColumnParameters()
    times = np.asarray(times, "datetime64[ns]")
    lat_deg = np.asarray(latitudes, np.float64)
    lon_deg = np.asarray(longitudes, np.float64)
    shape = (times.size, lat_deg.size, lon_deg.size)
    u, v = np.asarray(u, np.float64), np.asarray(v, np.float64)
    for name, value in (("u", u), ("v", v)):
        if value.shape != shape:
            raise ValueError(f"{name}: expected [T, H, W] = {list(shape)}, got {list(value.shape)}")
    if times.size < 1:
        raise ValueError("times: expected at least 1 time, got 0")
    step = np.diff(times)
    if step.size and (np.any(step != step[0]) or step[0] <= np.timedelta64(0, "ns")):
        raise ValueError("times: expected equally spaced, increasing times")
    initial = (
        daily_mean_equilibrium(times[0], lat_deg, lon_deg, params)
        if initial is None
        else np.asarray(initial, np.float64)
    )
    if initial.shape != shape[1:]:
        raise ValueError(f"initial: expected [H, W] = {list(shape[1:])}, got {list(initial.shape)}")

    lat, lon = np.radians(lat_deg), np.radians(lon_deg)
    position, east, north = _unit_vectors(lat, lon)
    t_eq = equilibrium_temperature(lat_deg, params)[:, None]  # [H, 1]
    tau_s = params.relaxation_days * 86400.0
    heating_s = params.heating_k_per_day / 86400.0
    out = np.empty(shape)
    out[0] = temperature = initial
    for k in range(times.size - 1):
        interval = (times[k + 1] - times[k]) / np.timedelta64(1, "s")
        dt = interval / params.substeps
        decay = math.exp(-dt / tau_s)
        for s in range(params.substeps):
            middle = (s + 0.5) / params.substeps  # fraction of the interval
            if params.advect:
                uu = (1 - middle) * u[k] + middle * u[k + 1]
                vv = (1 - middle) * v[k] + middle * v[k + 1]
                wind = uu[..., None] * east + vv[..., None] * north  # [H, W, 3] m/s
                departure = position - wind * (dt / EARTH_RADIUS)
                departure /= np.linalg.norm(departure, axis=-1, keepdims=True)
                lat_d = np.arcsin(np.clip(departure[..., 2], -1.0, 1.0))
                lon_d = np.arctan2(departure[..., 1], departure[..., 0])
                temperature = _bilinear(temperature, lat, lon, lat_d, lon_d)
            when = times[k] + np.timedelta64(round(middle * interval * 1e9), "ns")
            radiation = toa_incident_solar_radiation(when[None], lat_deg, lon_deg)[0]
            target = t_eq + heating_s * tau_s * radiation.astype(np.float64) / SOLAR_CONSTANT
            temperature = target + (temperature - target) * decay
        out[k + 1] = temperature
    return out
