"""Stores laid out as WeatherBench2 publishes its regridded ERA5, written here with
xarray alone (not meshsim's writers).

WB2's `1959-2023_01_10-6h-64x32_equiangular_conservative.zarr` and its 1.5° sibling
store 3-D variables as `(time, level, longitude, latitude)` and 2-D ones as `(time,
longitude, latitude)`, static fields as `(longitude, latitude)`; latitude ascends
and excludes the poles on the equiangular grid (−87.1875 … 87.1875 at 5.625°),
longitude is 0 … 354.375; `level` is int64 hPa, `latitude`/`longitude` float64; zarr
format 2 with consolidated metadata and a units attribute on every variable. This is
the layout of `weatherbench2.schema.mock_truth_data` too.
"""

from __future__ import annotations

import numpy as np

# GraphCast's inputs in WB2's names (Lam et al. 2023, Table 3), as the 64x32 store has them.
SURFACE = (
    "2m_temperature",
    "mean_sea_level_pressure",
    "10m_u_component_of_wind",
    "10m_v_component_of_wind",
    "total_precipitation_6hr",
)
ATMOSPHERIC = (
    "temperature",
    "geopotential",
    "u_component_of_wind",
    "v_component_of_wind",
    "vertical_velocity",
    "specific_humidity",
)
STATIC = ("geopotential_at_surface", "land_sea_mask")
UNITS = {
    "2m_temperature": "K",
    "mean_sea_level_pressure": "Pa",
    "10m_u_component_of_wind": "m s**-1",
    "10m_v_component_of_wind": "m s**-1",
    "total_precipitation_6hr": "m",
    "temperature": "K",
    "geopotential": "m**2 s**-2",
    "u_component_of_wind": "m s**-1",
    "v_component_of_wind": "m s**-1",
    "vertical_velocity": "Pa s**-1",
    "specific_humidity": "kg kg**-1",
    "geopotential_at_surface": "m**2 s**-2",
    "land_sea_mask": "(0 - 1)",
}


def equiangular_grid(resolution: float) -> tuple[np.ndarray, np.ndarray]:
    """([H] latitudes ascending without the poles, [W] longitudes) of WB2's
    equiangular-conservative grids (5.625° → 32 × 64)."""
    lat = np.arange(-90 + resolution / 2, 90, resolution)
    lon = np.arange(0, 360, resolution)
    return lat, lon


def wb2_era5_like(
    *,
    resolution: float = 22.5,
    levels=(500, 850),
    times=None,
    surface=SURFACE,
    atmospheric=ATMOSPHERIC,
    static=STATIC,
    seed: int = 0,
):
    """An xarray Dataset in WB2's ERA5 layout with smooth random fields of plausible
    magnitude (a travelling wave plus noise, so persistence is beatable).

    `times` default: 6-hourly over 4 days from 2020-01-01.
    """
    import xarray as xr

    rng = np.random.default_rng(seed)
    if times is None:
        times = np.arange(
            np.datetime64("2020-01-01T00", "ns"),
            np.datetime64("2020-01-05T00", "ns"),
            np.timedelta64(6, "h"),
        )
    lat, lon = equiangular_grid(resolution)
    t = np.arange(len(times))[:, None, None]
    phase = np.deg2rad(lon)[None, :, None] - 0.3 * t  # (time, longitude, latitude)
    wave = np.cos(phase) * np.cos(np.deg2rad(lat))[None, None, :]

    def field(scale, offset, shape_extra=()):
        noise = rng.normal(size=(len(times), *shape_extra, len(lon), len(lat)))
        base = wave if not shape_extra else wave[:, None]
        return (offset + scale * (base + 0.1 * noise)).astype(np.float32)

    data = {}
    for k, name in enumerate(surface):
        data[name] = (("time", "longitude", "latitude"), field(1.0 + k, 10.0 * k))
    for k, name in enumerate(atmospheric):
        values = field(2.0 + k, 100.0 * k, (len(levels),))
        data[name] = (("time", "level", "longitude", "latitude"), values)
    for k, name in enumerate(static):
        values = rng.random((len(lon), len(lat))).astype(np.float32) * (k + 1)
        data[name] = (("longitude", "latitude"), values)
    ds = xr.Dataset(
        data,
        coords={
            "time": np.asarray(times, "datetime64[ns]"),
            "level": np.asarray(levels, np.int64),
            "longitude": lon.astype(np.float64),
            "latitude": lat.astype(np.float64),
        },
    )
    for name in ds.data_vars:
        ds[name].attrs["units"] = UNITS.get(name, "1")
    ds["latitude"].attrs["units"] = "degrees_north"
    ds["longitude"].attrs["units"] = "degrees_east"
    ds["level"].attrs["units"] = "millibar"
    return ds


def write_wb2(ds, path) -> str:
    """Writes `ds` as WB2 does: zarr format 2, consolidated metadata, one time per chunk."""
    encoding = {
        name: {"chunks": tuple(1 if d == "time" else ds.sizes[d] for d in ds[name].dims)}
        for name in ds.data_vars
    }
    ds.to_zarr(path, mode="w-", zarr_format=2, consolidated=True, encoding=encoding)
    return str(path)
