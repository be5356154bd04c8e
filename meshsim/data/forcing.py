"""Forcings computed from the time, not read (GraphCast, Lam et al. 2023, Sec. 3.1).

Top-of-atmosphere incident solar radiation and the sine/cosine of the year progress
and of the local day progress, on a lat-lon grid, latitude-major like the channels
of `meshsim.data.weather`. numpy only.
"""

from __future__ import annotations

import numpy as np

from meshsim.data.time_indexed import TimeIndexed

SOLAR_CONSTANT = 1361.0  # W m⁻², total solar irradiance (Kopp & Lean 2011)
FORCING_NAMES = (
    "toa_incident_solar_radiation",
    "year_progress_sin",
    "year_progress_cos",
    "day_progress_sin",
    "day_progress_cos",
)


def _day_of_year_and_hour(times: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    times = np.asarray(times, "datetime64[s]")
    year_start = times.astype("datetime64[Y]").astype("datetime64[s]")
    seconds = (times - year_start).astype(np.float64)
    return seconds / 86400.0, (seconds % 86400.0) / 3600.0  # fractional day-of-year, UTC hour


def toa_incident_solar_radiation(times, latitudes, longitudes) -> np.ndarray:
    """[T, H, W] float32 instantaneous top-of-atmosphere solar flux (W m⁻²) on the grid
    `latitudes [H]` × `longitudes [W]` (deg).

    S₀·E₀·max(cos z, 0) with Spencer's (1971) Fourier series for the declination,
    the equation of time and the eccentricity factor E₀. ERA5's variable is this
    flux integrated over the preceding hour (J m⁻²); the shape in time and space is
    what the network uses, and inputs are z-scored anyway.
    """
    lat = np.asarray(latitudes, np.float64)[None, :, None]
    lon = np.asarray(longitudes, np.float64)[None, None, :]
    return _toa(times, lat, lon)


def _toa(times, lat, lon) -> np.ndarray:
    """The flux at `times [T]` for `lat`, `lon` (deg) shaped to broadcast against
    `[T, 1, ...]`: a grid `[1, H, 1]` and `[1, 1, W]`, or points `[1, N]` twice."""
    day, hour = _day_of_year_and_hour(times)
    g = 2 * np.pi * day / 365.0  # fractional year angle
    decl = (
        0.006918
        - 0.399912 * np.cos(g)
        + 0.070257 * np.sin(g)
        - 0.006758 * np.cos(2 * g)
        + 0.000907 * np.sin(2 * g)
        - 0.002697 * np.cos(3 * g)
        + 0.00148 * np.sin(3 * g)
    )
    eot_min = 229.18 * (
        0.000075
        + 0.001868 * np.cos(g)
        - 0.032077 * np.sin(g)
        - 0.014615 * np.cos(2 * g)
        - 0.040849 * np.sin(2 * g)
    )
    e0 = (
        1.000110
        + 0.034221 * np.cos(g)
        + 0.001280 * np.sin(g)
        + 0.000719 * np.cos(2 * g)
        + 0.000077 * np.sin(2 * g)
    )
    lat = np.deg2rad(lat)
    index = (slice(None),) + (None,) * (np.ndim(lon) - 1)  # [T] -> [T, 1, ...]
    solar_time = hour[index] + lon / 15.0 + eot_min[index] / 60.0
    hour_angle = np.deg2rad(15.0 * (solar_time - 12.0))
    d = decl[index]
    cos_z = np.sin(lat) * np.sin(d) + np.cos(lat) * np.cos(d) * np.cos(hour_angle)
    return (SOLAR_CONSTANT * e0[index] * np.maximum(cos_z, 0.0)).astype(np.float32)


def forcing_frames(times, latitudes, longitudes) -> np.ndarray:
    """[T, H·W, 5] float32 forcings (`FORCING_NAMES`) on the grid `latitudes [H]` ×
    `longitudes [W]`, latitude-major like the channels: `forcing_points` of its nodes."""
    lat = np.repeat(np.asarray(latitudes, np.float64), len(longitudes))
    lon = np.tile(np.asarray(longitudes, np.float64), len(latitudes))
    return forcing_points(times, lat, lon)


def forcing_points(times, latitudes, longitudes) -> np.ndarray:
    """[T, N, 5] float32 forcings (`FORCING_NAMES`) at the points `latitudes [N]`,
    `longitudes [N]` (deg): a grid's nodes, or any point set (a stretched grid).

    Solar radiation is divided by the solar constant so every forcing is O(1).
    """
    times = np.asarray(times)
    lat = np.asarray(latitudes, np.float64)[None, :]
    lon = np.asarray(longitudes, np.float64)[None, :]
    tisr = _toa(times, lat, lon) / SOLAR_CONSTANT  # [T, N]
    day, hour = _day_of_year_and_hour(times)
    year = 2 * np.pi * day / 365.25
    local = 2 * np.pi * ((hour[:, None] + lon / 15.0) % 24.0) / 24.0  # [T, N]
    out = np.empty((times.size, lat.shape[1], len(FORCING_NAMES)), np.float32)
    out[..., 0] = tisr
    out[..., 1] = np.sin(year)[:, None]
    out[..., 2] = np.cos(year)[:, None]
    out[..., 3] = np.sin(local)
    out[..., 4] = np.cos(local)
    return out


class LazyForcing(TimeIndexed):
    """`forcing_points(times, latitudes, longitudes)` as a `[T, N, 5]` float32 array-like
    that computes only the times indexed (an int, a slice or an index array along
    time), so a trajectory holds no `[T, N, 5]` array; `np.asarray` computes them all.
    The values are those of `forcing_points` (computed time by time, elementwise).

    Args:
      times: [T] datetime64.
      latitudes, longitudes: [N] float64 (deg), one per point (a grid's nodes:
        `np.repeat(lat, W)`, `np.tile(lon, H)`).
    """

    def __init__(self, times, latitudes, longitudes):
        self.times = np.asarray(times)
        self.latitudes = np.asarray(latitudes, np.float64).reshape(-1)
        self.longitudes = np.asarray(longitudes, np.float64).reshape(-1)
        if self.latitudes.shape != self.longitudes.shape:
            raise ValueError(
                f"longitudes: expected one per latitude ({self.latitudes.size}), "
                f"got {self.longitudes.size}"
            )
        self.shape = (self.times.size, self.latitudes.size, len(FORCING_NAMES))
        self.ndim, self.dtype = 3, np.dtype(np.float32)

    def __repr__(self) -> str:
        return f"LazyForcing(shape {self.shape})"

    def frame(self, t: int) -> np.ndarray:
        """[N, 5] the forcings at time t (negative counts from the end)."""
        if not -self.shape[0] <= t < self.shape[0]:
            raise IndexError(f"time index {t} out of range for {self.shape[0]} times")
        return self.frames([t])[0]

    def frames(self, times) -> np.ndarray:
        """[len(times), N, 5] the forcings at the times `times` ([n] int)."""
        return forcing_points(self.times[np.asarray(times, int)], self.latitudes, self.longitudes)

    def __array__(self, dtype=None, copy=None):
        out = forcing_points(self.times, self.latitudes, self.longitudes)
        return out if dtype is None else out.astype(dtype)


def statistics_stride(times, max_times: int = 512) -> int:
    """The stride of the times the forcing statistics are computed on: about
    ``len(times) / max_times``, and never a multiple of any divisor > 1 of the steps per
    day, so the subsample walks through every time of day.

    A stride that is a multiple of a day (e.g. 4 with 6-hourly data) samples one UTC
    hour only: harmless on a global grid, whose longitudes cover every local time, but
    on a regional grid the radiation is then always that of one local time (at night:
    a std near 0, and z-scores blown up by 40×).

    Args:
      times: [T] datetime64, increasing.
      max_times: about how many times to keep (≥ 1).
    """
    times = np.asarray(times, "datetime64[ns]")
    stride = max(1, times.size // max(1, int(max_times)))
    if stride == 1 or times.size < 2:
        return stride
    step = int(np.diff(times).min() / np.timedelta64(1, "ns"))
    day = 86400 * 10**9
    per_day = day // step if step > 0 and day % step == 0 else 0
    while per_day and np.gcd(stride, per_day) != 1:
        stride += 1
    return stride


def forcing_statistics(times, latitudes, longitudes, max_times: int = 512, *, points=False):
    """([5] mean, [5] std) float64 of the forcings over a subsample of `times` [T]
    (`statistics_stride`) and every node of the grid `latitudes [H]` × `longitudes
    [W]` (deg), or with `points` every point (`latitudes`, `longitudes` [N])."""
    times = np.asarray(times)
    every = statistics_stride(times, max_times)
    if points:
        forcing = forcing_points(times[::every], latitudes, longitudes)
    else:
        forcing = forcing_frames(times[::every], latitudes, longitudes)
    forcing = forcing.reshape(-1, forcing.shape[-1]).astype(np.float64)
    return forcing.mean(0), forcing.std(0)


def step_mean_radiation(times, latitudes, longitudes, step, samples: int = 12) -> np.ndarray:
    """[T, H·W] float32 top-of-atmosphere solar radiation over S₀ on the grid
    `latitudes [H]` × `longitudes [W]`, averaged over the `step` (timedelta64) before
    each of `times` [T] (midpoint rule, `samples` points; `step_mean_radiation_points`
    of the grid's nodes).

    The heating a column receives during a model step, which the instantaneous values
    at its two ends do not give when the sun rises or sets in between (a step from
    03:00 to 09:00 local time and one from 15:00 to 21:00 have the same end values
    mirrored, and a step from 18:00 to 24:00 after a long summer day ends in the dark
    at both). ERA5's `toa_incident_solar_radiation` is this average over 1 h (times
    3600 s).
    """
    lat = np.repeat(np.asarray(latitudes, np.float64), len(longitudes))
    lon = np.tile(np.asarray(longitudes, np.float64), len(latitudes))
    return step_mean_radiation_points(times, lat, lon, step, samples)


def step_mean_radiation_points(times, latitudes, longitudes, step, samples: int = 12):
    """[T, N] float32 `step_mean_radiation` at the points `latitudes`, `longitudes` [N]."""
    times = np.asarray(times, "datetime64[ns]")
    step = np.timedelta64(step, "ns")
    if step <= np.timedelta64(0, "ns"):
        raise ValueError(f"step: expected a positive time step, got {step}")
    samples = int(samples)
    if samples < 1:
        raise ValueError(f"samples: expected ≥ 1, got {samples}")
    offsets = ((np.arange(samples) + 0.5) / samples * step.astype(np.int64)).astype(
        "timedelta64[ns]"
    )
    when = (times[:, None] - step + offsets[None, :]).reshape(-1)  # [T·samples]
    flux = _toa(
        when, np.asarray(latitudes, np.float64)[None], np.asarray(longitudes, np.float64)[None]
    )
    flux = (flux / SOLAR_CONSTANT).reshape(times.size, samples, -1).mean(1)
    return flux.astype(np.float32)
