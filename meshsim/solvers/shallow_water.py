"""Built-in weather-style data: rotating shallow water in WeatherBench2 layout.

`simulate_shallow_water` runs randomised Galewsky et al. (2004) jets with the spectral
solver of `meshsim.solvers.shallow_water_model` (dinosaur, T42 by default) and returns
an `xarray.Dataset`; `generate_shallow_water` writes it to ``{out_dir}/{split}.zarr``:

    generate_shallow_water("data/sw", split="train", trajectories=4, days=10.0)

Layout (WeatherBench2 names and units; ``meshsim.data.weather`` reads it):

* dims ``time`` (datetime64[ns], every 6 h), ``level`` (one nominal level, 500 hPa),
  ``latitude`` (ascending, -90..90, poles included, equiangular), ``longitude``
  (0 ≤ λ < 360);
* ``u_component_of_wind``, ``v_component_of_wind`` (m s⁻¹) and ``geopotential``
  (m² s⁻², the free surface ``g (h + h_s)``): ``[time, level, latitude, longitude]
  float32``; at the pole rows the wind is the meridian limit (see the model module);
* static ``geopotential_at_surface`` (``g h_s`` as the model sees it, truncated
  spectrally) and ``land_sea_mask`` (1 where the analytic mountain is higher than
  `LAND_THRESHOLD` m, else 0): ``[latitude, longitude] float32``;
* coordinate ``trajectory`` ``[time] int32``: which simulation a time belongs to;
* with ``diurnal=True`` only (off by default): ``2m_temperature`` (K) ``[time,
  latitude, longitude] float32``, a column relaxation model heated by the
  top-of-atmosphere solar radiation and carried by the flow
  (`meshsim.solvers.surface_temperature`): a field with a diurnal cycle, integrated
  through the spin-up too. The flow fields are the same with or without it.

The trajectories share one time axis, as WeatherBench2 data would: trajectory ``i``
starts at `BASE_DATE` + ``i (days + TRAJECTORY_GAP_DAYS)``, so a reader finds them as
the runs of equally spaced times. Trajectory ``i`` is seeded by ``(seed, split, i)``
(`meshsim.solvers.seeds.trajectory_seed`): the same arguments give the same data and
splits never share a trajectory. Its parameters are in the ``trajectory_parameters``
attribute (JSON, a list of `JetParams` dicts).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import math
import os
import shutil
import time
import uuid
from collections.abc import Sequence

import numpy as np

from meshsim.solvers.seeds import trajectory_seed
from meshsim.solvers.shallow_water_model import (
    EARTH_ANGULAR_VELOCITY,
    EARTH_RADIUS,
    GRAVITY,
    LAND_THRESHOLD,
    MEAN_DEPTH,
    OUTPUT_HOURS,
    JetParams,
    check_jet_params,
    get_model,
    mountain_height,
    sample_jet_params,
)
from meshsim.solvers.surface_temperature import (
    TEMPERATURE_VARIABLE,
    ColumnParameters,
    integrate_temperature,
)
from meshsim.validation import check_int

logger = logging.getLogger(__name__)

NOMINAL_LEVEL = 500  # hPa; a one-layer model has no pressure levels
TRAJECTORY_GAP_DAYS = 5.0  # gap between trajectories on the shared time axis
BASE_DATE = "2000-01-01T00:00"  # first time of trajectory 0
VARIABLES = ("u_component_of_wind", "v_component_of_wind", "geopotential")
_DIMS = ("time", "level", "latitude", "longitude")


def output_grid(resolution_deg: float) -> tuple[np.ndarray, np.ndarray]:
    """Equiangular latitudes ``[180/r + 1]`` (-90..90, ascending) and longitudes
    ``[360/r]`` (0 ≤ λ < 360), float64 degrees, for a spacing ``r`` dividing 180."""
    ok = isinstance(resolution_deg, int | float) and not isinstance(resolution_deg, bool)
    n = 180 / resolution_deg if ok and 0 < resolution_deg <= 90 else 0.5
    if abs(n - round(n)) > 1e-9:
        raise ValueError(
            f"resolution_deg: expected a spacing in (0, 90] dividing 180, got {resolution_deg!r}"
        )
    n = round(n)
    return np.linspace(-90.0, 90.0, n + 1), np.arange(2 * n) * (180.0 / n)


def _check_days(name: str, value, *, zero: bool) -> float:
    """`value` days as a whole number of `OUTPUT_HOURS` intervals."""
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    intervals = value * 24 / OUTPUT_HOURS if ok else -1.0
    if intervals < (0 if zero else 1) or abs(intervals - round(intervals)) > 1e-9:
        raise ValueError(
            f"{name}: expected a {'non-negative' if zero else 'positive'} multiple of "
            f"{OUTPUT_HOURS} h ({OUTPUT_HOURS / 24} days), got {value!r}"
        )
    return float(value)


def _check_split(split) -> str:
    if not isinstance(split, str) or not split or "/" in split or split.startswith("."):
        raise ValueError(f"split: expected a file-name stem such as 'train', got {split!r}")
    return split


def simulate_shallow_water(
    *,
    trajectories: int = 1,
    days: float = 10.0,
    resolution_deg: float = 5.625,
    seed: int = 0,
    split: str = "train",
    spinup_days: float = 1.0,
    truncation: int = 42,
    time_step_s: float | None = None,
    orography: str = "flat",
    params: Sequence[JetParams] | None = None,
    diurnal: bool = False,
    progress: bool = False,
    region: Sequence[float] | None = None,
    region_resolution_deg: float | None = None,
):
    """Simulates `trajectories` randomised jets; returns a WeatherBench2-layout Dataset
    (and with a `region`, a second one: the same simulations on a fine grid over it).

    Each trajectory runs ``spinup_days`` unstored (the gravity waves of the unbalanced
    bump and noise radiate away), then stores ``4 days + 1`` frames 6 h apart. Costs
    about ``(days + spinup_days) x 96`` solver steps per trajectory at T42 (~3 ms each
    on one CPU core) plus a one-off compilation of a few seconds per model.

    Args:
      trajectories: number of simulations, ≥ 1.
      days: stored length of each, a positive multiple of 0.25.
      resolution_deg: output grid spacing in degrees, dividing 180 (5.625: 33 x 64).
      seed, split: trajectory ``i`` draws its `JetParams` from
        ``trajectory_seed(seed, split, i)``.
      spinup_days: unstored model time before frame 0, a multiple of 0.25 (≥ 0).
      truncation: spectral truncation T (`ShallowWaterModel`).
      time_step_s: solver step in s (divides 6 h); default `default_time_step`.
      orography: "flat", "cone" or "gaussian" (`mountain_height`), same for all.
      params: explicit `JetParams`, one per trajectory (then ``seed`` is unused).
      diurnal: also write ``2m_temperature`` (`meshsim.solvers.surface_temperature`,
        default `ColumnParameters`); its spin-up reruns the flow's (~0.3 s per
        trajectory at T42).
      progress: show a tqdm bar over trajectories.
      region: (lat_min, lat_max, lon_min, lon_max) degrees, a box running east from
        lon_min (crossing 0°E when lon_min > lon_max): also evaluate the simulations
        on the points of the `region_resolution_deg` grid inside it (`regional_grid`).
      region_resolution_deg: the regional grid spacing, dividing 180 (e.g. 2.8125).

    Returns:
      An `xarray.Dataset` as described in the module docstring; with a `region`, the
      pair (global, regional), the regional one with a `region` attribute. Both are
      exact evaluations of the same spectral states.

    Raises:
      ValueError: an argument is out of range (named in the message).
    """
    trajectories = check_int("trajectories", trajectories, minimum=1)
    seed = check_int("seed", seed, minimum=0)
    days = _check_days("days", days, zero=False)
    spinup_days = _check_days("spinup_days", spinup_days, zero=True)
    split = _check_split(split)
    lat, lon = output_grid(resolution_deg)
    grids = {"global": (lat, lon)}
    if region is not None:
        grids["regional"] = regional_grid(region, region_resolution_deg)
    if params is None:
        params = [sample_jet_params(trajectory_seed(seed, split, i)) for i in range(trajectories)]
    elif len(params) != trajectories:
        raise ValueError(f"params: expected {trajectories} JetParams, got {len(params)}")
    params = [check_jet_params(p) for p in params]
    if not isinstance(diurnal, bool):
        raise ValueError(f"diurnal: expected True or False, got {diurnal!r}")
    if diurnal and region is not None:
        raise ValueError(
            "diurnal, region: a regional cut-out of the diurnal channel is not written (its "
            "column model is advected on the global grid); use one or the other"
        )
    model = get_model(
        truncation=truncation, time_step_s=time_step_s, orography=orography
    )  # validates these three
    outputs = round(days * 24 / OUTPUT_HOURS) + 1
    spinup_steps = round(spinup_days * 24 / OUTPUT_HOURS) * model.steps_per_output

    frame = np.timedelta64(OUTPUT_HOURS, "h")
    period = np.timedelta64(round((days + TRAJECTORY_GAP_DAYS) * 24), "h")
    starts = np.datetime64(BASE_DATE, "ns") + np.arange(len(params)) * period
    variables = (TEMPERATURE_VARIABLE, *VARIABLES) if diurnal else VARIABLES
    fields = {grid: {name: [] for name in variables} for grid in grids}
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=trajectories, desc=f"shallow water/{split}", unit="traj")
    t0 = time.perf_counter()
    try:
        for p, start in zip(params, starts):
            states = model.run(model.initial_state(p), outputs=outputs, spinup_steps=spinup_steps)
            for grid, (glat, glon) in grids.items():
                grid_fields = model.to_latlon(states, glat, glon)  # each [T, H, W] float64
                for name, key in zip(VARIABLES, ("u", "v", "geopotential")):
                    fields[grid][name].append(grid_fields[key].astype(np.float32)[:, None])
                if diurnal:
                    temperature = _temperature(
                        model, p, grid_fields, start, spinup_steps, glat, glon
                    )
                    fields[grid][TEMPERATURE_VARIABLE].append(temperature.astype(np.float32))
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    logger.info("shallow water: %d trajectories in %.1f s", trajectories, time.perf_counter() - t0)

    steps = np.arange(outputs) * frame
    times = (starts[:, None] + steps[None, :]).ravel()  # [trajectories · outputs]
    datasets = [
        _dataset(fields[grid], *grids[grid], times, outputs, model, orography) for grid in grids
    ]
    attrs = {
        "title": "meshsim rotating shallow water on the sphere (randomised Galewsky jets)",
        "source": "meshsim.solvers.shallow_water with dinosaur "
        f"{_dinosaur_version()} (spectral transform, vorticity-divergence)",
        "truncation": f"T{model.truncation}",
        "gaussian_grid": "x".join(str(n) for n in model.grid.nodal_shape[::-1]),
        "time_step_s": model.time_step_s,
        "time_integration": "imex_rk_sil3 (semi-implicit 3rd-order Runge-Kutta)",
        "hyperdiffusion": f"del^4, e-folding {model.diffusion_hours} h at wavenumber T",
        "output_interval_hours": OUTPUT_HOURS,
        "regridding": "spectral fields evaluated exactly at the output points",
        "mean_depth_m": MEAN_DEPTH,
        "earth_radius_m": EARTH_RADIUS,
        "angular_velocity_s-1": EARTH_ANGULAR_VELOCITY,
        "gravity_m_s-2": GRAVITY,
        "orography": orography,
        "land_threshold_m": LAND_THRESHOLD,
        "initial_condition": "Galewsky et al. (2004) jet, randomised (JetParams)",
        "spinup_days": spinup_days,
        "days": days,
        "trajectories": len(params),
        "trajectory_gap_days": TRAJECTORY_GAP_DAYS,
        "seed": int(seed),
        "split": split,
        "trajectory_parameters": json.dumps([p._asdict() for p in params]),
    }
    if diurnal:
        attrs["diurnal"] = f"{TEMPERATURE_VARIABLE}: meshsim.solvers.surface_temperature"
    for ds in datasets:
        ds.attrs.update(attrs)
    if region is None:
        return datasets[0]
    datasets[1].attrs["region"] = json.dumps([float(x) for x in region])
    return datasets[0], datasets[1]


def regional_grid(region: Sequence[float], resolution_deg) -> tuple[np.ndarray, np.ndarray]:
    """(latitudes [H'], longitudes [W'], ascending degrees) of the equiangular grid of
    spacing `resolution_deg` (`output_grid`) inside `region` = (lat_min, lat_max,
    lon_min, lon_max), a box running east from lon_min.

    Raises:
      ValueError: a malformed region, or one that holds fewer than 2 × 2 points.
    """
    values = tuple(region) if isinstance(region, Sequence) else ()
    if len(values) != 4 or not all(isinstance(v, int | float) for v in values):
        raise ValueError(
            f"region: expected (lat_min, lat_max, lon_min, lon_max) degrees, got {region!r}"
        )
    lat_min, lat_max, lon_min, lon_max = (float(v) for v in values)
    if not -90 <= lat_min < lat_max <= 90:
        raise ValueError(f"region: expected -90 ≤ lat_min < lat_max ≤ 90, got {values}")
    if resolution_deg is None:
        raise ValueError("region_resolution_deg: expected a spacing dividing 180 with a region")
    lat, lon = output_grid(resolution_deg)
    span = (lon_max - lon_min) % 360
    lat = lat[(lat >= lat_min) & (lat <= lat_max)]
    lon = lon[(lon - lon_min) % 360 <= span]
    if lat.size < 2 or lon.size < 2:
        raise ValueError(
            f"region: {values} holds {lat.size} × {lon.size} points of the "
            f"{resolution_deg}° grid; expected at least 2 × 2"
        )
    return lat, lon


def _dataset(fields, lat, lon, times, outputs, model, orography):
    """The Dataset of one grid's `fields` ({variable: [[T, 1, H, W]] per trajectory})."""
    import xarray as xr

    units = {"u_component_of_wind": "m s**-1", "v_component_of_wind": "m s**-1"}
    long_names = {
        "u_component_of_wind": "eastward wind (pole rows: limit along each meridian)",
        "v_component_of_wind": "northward wind (pole rows: limit along each meridian)",
        "geopotential": "free-surface geopotential g (h + h_s)",
    }
    data_vars = {
        name: (
            _DIMS,
            np.concatenate(fields[name]),  # [time, 1, H, W] float32
            {"units": units.get(name, "m**2 s**-2"), "long_name": long_names[name]},
        )
        for name in VARIABLES
    }
    if TEMPERATURE_VARIABLE in fields:
        column = ColumnParameters()
        data_vars[TEMPERATURE_VARIABLE] = (
            ("time", "latitude", "longitude"),
            np.concatenate(fields[TEMPERATURE_VARIABLE]),  # [time, H, W] float32
            {
                "units": "K",
                "long_name": "2 m temperature-like column relaxation field with a diurnal cycle",
                "model": "dT/dt + (v.grad)T = a TISR/S0 - (T - T_eq(lat))/tau, "
                "T_eq = T_pole + (T_equator - T_pole) cos^2(lat)",
                **{k: v for k, v in dataclasses.asdict(column).items() if k != "advect"},
                "advected": int(column.advect),
            },
        )
    lat2, lon2 = np.meshgrid(np.radians(lat), np.radians(lon), indexing="ij")
    land = mountain_height(lon2, lat2, orography) > LAND_THRESHOLD
    data_vars["geopotential_at_surface"] = (
        ("latitude", "longitude"),
        model.surface_geopotential(lat, lon).astype(np.float32),
        {"units": "m**2 s**-2", "long_name": "g h_s, the spectrally truncated orography"},
    )
    data_vars["land_sea_mask"] = (
        ("latitude", "longitude"),
        land.astype(np.float32),
        {"units": "1", "long_name": f"1 where the analytic orography > {LAND_THRESHOLD} m"},
    )
    coords = {
        "time": ("time", times.astype("datetime64[ns]")),
        "level": (
            "level",
            np.array([NOMINAL_LEVEL], np.int64),
            {"units": "hPa", "note": "nominal: a one-layer shallow-water model has no levels"},
        ),
        "latitude": ("latitude", lat, {"units": "degrees_north"}),
        "longitude": ("longitude", lon, {"units": "degrees_east"}),
        "trajectory": (
            "time",
            np.repeat(np.arange(len(fields[VARIABLES[0]]), dtype=np.int32), outputs),
            {"long_name": "index of the simulation this time belongs to"},
        ),
    }
    return xr.Dataset(data_vars, coords=coords)


def _temperature(model, params: JetParams, grid_fields, start, spinup_steps, lat, lon):
    """[T, H, W] float64 `2m_temperature` of one trajectory at its stored frames.

    The column model starts at the start of the flow's spin-up (its daily-mean
    equilibrium) and is integrated through it: the spin-up's 6-hourly winds come from
    a rerun of the flow that stores them (the stored flow fields are left as they are).
    """
    spin_outputs = spinup_steps // model.steps_per_output
    u, v = grid_fields["u"], grid_fields["v"]  # [T, H, W] float64
    if spin_outputs:
        spin = model.run(model.initial_state(params), outputs=spin_outputs + 1)
        spin_fields = model.to_latlon(spin, lat, lon)
        # the rerun's last frame is the stored frame 0: keep the stored one
        u = np.concatenate([spin_fields["u"][:-1], u])
        v = np.concatenate([spin_fields["v"][:-1], v])
    frame = np.timedelta64(OUTPUT_HOURS, "h")
    times = start + (np.arange(u.shape[0]) - spin_outputs) * frame
    return integrate_temperature(u, v, times, lat, lon)[spin_outputs:]


def _dinosaur_version() -> str:
    from importlib.metadata import version

    return version("dinosaur")


def generate_shallow_water(
    out_dir: str | os.PathLike,
    *,
    split: str = "train",
    trajectories: int = 4,
    days: float = 10.0,
    resolution_deg: float = 5.625,
    seed: int = 0,
    spinup_days: float = 1.0,
    truncation: int = 42,
    orography: str = "flat",
    diurnal: bool = False,
    progress: bool = False,
    region: Sequence[float] | None = None,
    region_resolution_deg: float | None = None,
) -> str:
    """Simulates (`simulate_shallow_water`) and writes ``{out_dir}/{split}.zarr``, and
    with a `region` the fine regional cut-out ``{out_dir}/regional/{split}.zarr``
    (`meshsim.data.stretched.REGIONAL_DIR`; a stretched grid reads the two together).

    Each store is written to a hidden temporary sibling and renamed when complete, so
    a crash leaves nothing under the final names (nor directories this call created);
    the regional store is renamed first, so a global store is never without it. One
    chunk per frame. At the defaults (4 x 10 days after 1 day of spin-up, T42, 33 x 64)
    it takes ~25 s of CPU time (about as long on a 2-core machine).

    Args:
      out_dir: directory of the store (created if missing).
      split, trajectories, days, resolution_deg, seed, spinup_days, truncation,
        orography, diurnal, progress, region, region_resolution_deg: as
        `simulate_shallow_water`.

    Returns:
      The path of the (global) store.

    Raises:
      FileExistsError: a store already exists (it is never overwritten).
      ValueError: an argument is out of range.
    """
    split = _check_split(split)
    path = os.path.join(os.fspath(out_dir), f"{split}.zarr")
    regional = os.path.join(os.fspath(out_dir), "regional", f"{split}.zarr")
    targets = [path] + ([regional] if region is not None else [])
    for target in targets:
        if os.path.exists(target):
            raise FileExistsError(f"shallow water: {target!r} exists; remove it or choose another")
    out = simulate_shallow_water(
        trajectories=trajectories,
        days=days,
        resolution_deg=resolution_deg,
        seed=seed,
        split=split,
        spinup_days=spinup_days,
        truncation=truncation,
        orography=orography,
        diurnal=diurnal,
        progress=progress,
        region=region,
        region_resolution_deg=region_resolution_deg,
    )
    datasets = list(out) if region is not None else [out]
    created = []  # directories made here, deepest first: removed again on failure
    directory = os.path.abspath(os.path.dirname(targets[-1]))
    while not os.path.exists(directory):
        created.append(directory)
        directory = os.path.dirname(directory)
    written = []
    try:
        for ds, target in reversed(list(zip(datasets, targets))):  # regional first
            os.makedirs(os.path.dirname(target), exist_ok=True)
            _write_store(ds, target)
            written.append(target)
    except BaseException:
        for target in written:
            shutil.rmtree(target, ignore_errors=True)
        for directory in created:
            with contextlib.suppress(OSError):
                os.rmdir(directory)
        raise
    return path


def _write_store(ds, path: str) -> None:
    """Writes `ds` to the new store `path` through a hidden temporary sibling."""
    tmp = os.path.join(
        os.path.dirname(path), f".{os.path.basename(path)}.{uuid.uuid4().hex[:8]}.tmp"
    )
    shape = (1, 1, ds.sizes["latitude"], ds.sizes["longitude"])
    encoding = {name: {"chunks": shape} for name in VARIABLES}
    if TEMPERATURE_VARIABLE in ds:
        encoding[TEMPERATURE_VARIABLE] = {"chunks": shape[:1] + shape[2:]}
    try:
        # Zarr format 2 with consolidated metadata, as WeatherBench2 publishes its stores.
        ds.to_zarr(tmp, mode="w-", encoding=encoding, zarr_format=2, consolidated=True)
        if os.path.exists(path):  # appeared while simulating
            raise FileExistsError(f"shallow water: {path!r} exists; remove it or choose another")
        os.rename(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
