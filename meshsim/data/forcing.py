"""Forcings computed from the time, not read (GraphCast, Lam et al. 2023, Sec. 3.1).

Top-of-atmosphere incident solar radiation and the sine/cosine of the year progress
and of the local day progress, on a lat-lon grid, latitude-major like the channels
of `meshsim.data.weather`. numpy only.
"""

from __future__ import annotations

import numpy as np

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
    """[T, H, W] float32 instantaneous top-of-atmosphere solar flux (W m⁻²).

    S₀·E₀·max(cos z, 0) with Spencer's (1971) Fourier series for the declination,
    the equation of time and the eccentricity factor E₀. ERA5's variable is this
    flux integrated over the preceding hour (J m⁻²); the shape in time and space is
    what the network uses, and inputs are z-scored anyway.
    """
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
    lat = np.deg2rad(np.asarray(latitudes, np.float64))[None, :, None]
    lon = np.asarray(longitudes, np.float64)[None, None, :]
    solar_time = hour[:, None, None] + lon / 15.0 + eot_min[:, None, None] / 60.0
    hour_angle = np.deg2rad(15.0 * (solar_time - 12.0))
    d = decl[:, None, None]
    cos_z = np.sin(lat) * np.sin(d) + np.cos(lat) * np.cos(d) * np.cos(hour_angle)
    return (SOLAR_CONSTANT * e0[:, None, None] * np.maximum(cos_z, 0.0)).astype(np.float32)


def forcing_frames(times, latitudes, longitudes) -> np.ndarray:
    """[T, H·W, 5] float32 forcings (`FORCING_NAMES`), latitude-major like the channels.

    Solar radiation is divided by the solar constant so every forcing is O(1).
    """
    times = np.asarray(times)
    h, w = len(latitudes), len(longitudes)
    tisr = toa_incident_solar_radiation(times, latitudes, longitudes) / SOLAR_CONSTANT
    day, hour = _day_of_year_and_hour(times)
    year = 2 * np.pi * day / 365.25
    local = 2 * np.pi * ((hour[:, None] + np.asarray(longitudes)[None, :] / 15.0) % 24.0) / 24.0
    out = np.empty((times.size, h, w, len(FORCING_NAMES)), np.float32)
    out[..., 0] = tisr
    out[..., 1] = np.sin(year)[:, None, None]
    out[..., 2] = np.cos(year)[:, None, None]
    out[..., 3] = np.sin(local)[:, None, :]
    out[..., 4] = np.cos(local)[:, None, :]
    return out.reshape(times.size, h * w, len(FORCING_NAMES))


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


def forcing_statistics(times, latitudes, longitudes, max_times: int = 512):
    """([5] mean, [5] std) float64 of `forcing_frames` over a subsample of `times` [T]
    (`statistics_stride`) and every grid point."""
    times = np.asarray(times)
    every = statistics_stride(times, max_times)
    forcing = forcing_frames(times[::every], latitudes, longitudes)
    forcing = forcing.reshape(-1, forcing.shape[-1]).astype(np.float64)
    return forcing.mean(0), forcing.std(0)


def step_mean_radiation(times, latitudes, longitudes, step, samples: int = 12) -> np.ndarray:
    """[T, H·W] float32 top-of-atmosphere solar radiation over S₀, averaged over the
    `step` (timedelta64) before each of `times` [T] (midpoint rule, `samples` points).

    The heating a column receives during a model step, which the instantaneous values
    at its two ends do not give when the sun rises or sets in between (a step from
    03:00 to 09:00 local time and one from 15:00 to 21:00 have the same end values
    mirrored, and a step from 18:00 to 24:00 after a long summer day ends in the dark
    at both). ERA5's `toa_incident_solar_radiation` is this average over 1 h (times
    3600 s).
    """
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
    flux = toa_incident_solar_radiation(when, latitudes, longitudes) / SOLAR_CONSTANT
    flux = flux.reshape(times.size, samples, -1).mean(1)
    return flux.astype(np.float32)
