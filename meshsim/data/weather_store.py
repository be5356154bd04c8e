"""Opening a WeatherBench2-layout store: dims, variables, channels, frames.

WeatherBench2 publishes its stores in more than one layout. The regridded ERA5 stores
a CPU user starts from (1.5°, 5.625°) put longitude before latitude, `[time, level,
longitude, latitude]`, with latitude ascending; others are `[time, level, latitude,
longitude]` with latitude descending (ERA5's own order). meshsim reads each variable in
whatever order of its dims it comes, and either latitude direction: frames always come
out latitude-major with latitude ascending (`node = i·W + j`), so the channels, the
statistics and the graph are the same for every layout. `StoreLayout` remembers the
source's layout, so forecasts are written back in it (`meshsim.runs.forecast`).

A data variable is **dynamic** when its dims are `time`, `latitude`, `longitude` and
optionally `level`, in any order; **static** when they are `latitude`, `longitude`. Any
other variable cannot be read as a field of the grid: an error names it and its dims
(`unreadable_variables`), unless the variables to read are named (`data.variables`),
in which case it is skipped with a warning.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Mapping, Sequence

import numpy as np

logger = logging.getLogger(__name__)

LEVEL_SEPARATOR = "/"  # channel names: "<variable>/<level>" for 3-D variables
TIME, LEVEL, LATITUDE, LONGITUDE = "time", "level", "latitude", "longitude"
_DIMS = (TIME, LATITUDE, LONGITUDE)
_DYNAMIC = ({TIME, LATITUDE, LONGITUDE}, {TIME, LEVEL, LATITUDE, LONGITUDE})
_STATIC = {LATITUDE, LONGITUDE}
DESCENDING_ATTR = "meshsim_latitude_descending"  # set on an opened dataset's attrs


def _xarray():
    try:
        import xarray
    except ImportError as e:  # pragma: no cover - the weather extra is missing
        raise ImportError(
            "weather data needs xarray and zarr: pip install 'meshsim[weather]'"
        ) from e
    return xarray


def open_weather(path: str | os.PathLike):
    """Opens a WeatherBench2-layout dataset lazily (zarr directory or netCDF file).

    Nothing is loaded: variables stay backed by the store until indexed. Latitude is
    made ascending (−90 → 90; `attrs[DESCENDING_ATTR]` records whether the source was
    descending) and longitude is checked to lie in [0, 360). Variables keep the order
    of their dims; `read_frames` puts them in order.

    Raises:
      FileNotFoundError: no such store.
      ValueError: a dim is missing or the coordinates are not a regular lat-lon layout.
    """
    xr = _xarray()
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"weather dataset: no such zarr store or netCDF file {path!r}")
    try:
        if os.path.isdir(path):
            ds = xr.open_zarr(path, chunks=None)
        else:
            ds = xr.open_dataset(path)
    except Exception as e:
        raise ValueError(f"weather dataset {path!r}: cannot open ({e})") from e
    for dim in _DIMS:
        if dim not in ds.dims:
            raise ValueError(
                f"weather dataset {path!r}: expected dims {_DIMS} (+ level, in any order), "
                f"got {tuple(ds.dims)}"
            )
    lat = np.asarray(ds[LATITUDE].values, np.float64)
    descending = bool(lat.size > 1 and lat[0] > lat[-1])
    if descending:
        ds = ds.isel(latitude=slice(None, None, -1))
        lat = lat[::-1]
    if lat.size < 2 or np.any(np.diff(lat) <= 0) or lat[0] < -90 or lat[-1] > 90:
        raise ValueError(f"{path}: latitude: expected strictly monotonic in [-90, 90], got {lat}")
    lon = np.asarray(ds[LONGITUDE].values, np.float64)
    if lon.size < 2 or np.any(np.diff(lon) <= 0) or lon[0] < 0 or lon[-1] >= 360:
        raise ValueError(f"{path}: longitude: expected increasing in [0, 360), got {lon}")
    ds.attrs["meshsim_path"] = path
    ds.attrs[DESCENDING_ATTR] = descending
    return ds


def _name(ds) -> str:
    return ds.attrs.get("meshsim_path", "dataset")


def dynamic_variables(ds) -> list[str]:
    """Data variables with dims time, [level,] latitude, longitude in any order, sorted by
    name (stores do not keep an order)."""
    return sorted(n for n, v in ds.data_vars.items() if set(v.dims) in _DYNAMIC)


def static_variables(ds) -> list[str]:
    """Data variables with dims latitude, longitude (either order): land-sea mask,
    orography..."""
    return sorted(n for n, v in ds.data_vars.items() if set(v.dims) == _STATIC)


def unreadable_variables(ds) -> dict[str, tuple[str, ...]]:
    """{name: dims} of the data variables that are neither dynamic nor static."""
    return {
        n: tuple(v.dims)
        for n, v in ds.data_vars.items()
        if set(v.dims) not in _DYNAMIC and set(v.dims) != _STATIC
    }


def unreadable_message(ds, name: str, dims: Sequence[str]) -> str:
    """The error for a variable whose dims are not a grid field's."""
    return (
        f"{_name(ds)}: variable {name!r} has dims {tuple(dims)}; expected (time, [level,] "
        "latitude, longitude) in any order for a forecast variable, or (latitude, "
        "longitude) for a static field"
    )


def check_variables(ds, variables: Sequence[str] = ()) -> None:
    """Refuses a store with a variable that cannot be read as a grid field, unless
    `variables` names the ones to read (the others are skipped with a warning).

    Raises:
      ValueError: naming the variable and its dims.
    """
    odd = unreadable_variables(ds)
    for name, dims in odd.items():
        if not variables or name in variables:
            raise ValueError(
                unreadable_message(ds, name, dims) + "; name the variables to read with "
                "data.variables, or drop it from the store"
            )
        logger.warning("%s (not read)", unreadable_message(ds, name, dims))


@dataclasses.dataclass(frozen=True)
class Channel:
    """One input/output channel: a 2-D variable, or a 3-D variable at one level."""

    variable: str
    level: int | None = None

    @property
    def name(self) -> str:
        return (
            self.variable if self.level is None else f"{self.variable}{LEVEL_SEPARATOR}{self.level}"
        )

    @classmethod
    def parse(cls, name: str) -> Channel:
        variable, sep, level = name.partition(LEVEL_SEPARATOR)
        return cls(variable, int(level) if sep else None)


def channels_of(ds, variables: Sequence[str] = ()) -> tuple[Channel, ...]:
    """The channels of `variables` (default: every dynamic variable), levels ascending
    (in the store's level order).

    Raises:
      ValueError: an unknown variable (the valid ones are listed), or one whose dims are
        not a grid field's (named with its dims).
    """
    valid = dynamic_variables(ds)
    odd = unreadable_variables(ds)
    variables = list(variables) or valid
    out = []
    for v in variables:
        if v in odd:
            raise ValueError(unreadable_message(ds, v, odd[v]))
        if v not in valid:
            raise ValueError(f"{_name(ds)}: variables: {v!r} is not one of {valid}")
        if LEVEL in ds[v].dims:
            out += [Channel(v, int(lv)) for lv in np.asarray(ds[LEVEL].values)]
        else:
            out.append(Channel(v))
    if not out:
        raise ValueError(f"{_name(ds)}: variables: no dynamic variable in the dataset")
    return tuple(out)


def static_field(ds, name: str) -> np.ndarray:
    """[H, W] float32 static variable `name`, latitude-major and ascending."""
    return np.asarray(ds[name].transpose(LATITUDE, LONGITUDE).values, np.float32)


def read_frames(ds, channels: Sequence[Channel], times) -> np.ndarray:
    """[T, H·W, C] float32 frames at integer `times` (a slice or index array), lat-major.

    Reads one block per variable, whatever the order of its dims: only the requested
    times leave the store, and the transpose happens on those.
    """
    blocks = []
    levels = np.asarray(ds[LEVEL].values) if LEVEL in ds.dims else None
    by_variable: dict[str, list[int | None]] = {}
    for c in channels:
        by_variable.setdefault(c.variable, []).append(c.level)
    for variable, var_levels in by_variable.items():
        data = ds[variable].isel(time=times)
        if var_levels[0] is None:
            values = np.asarray(data.transpose(TIME, LATITUDE, LONGITUDE).values)
            blocks.append(values[..., None])  # [T, H, W, 1]
        else:
            index = [int(np.flatnonzero(levels == lv)[0]) for lv in var_levels]
            data = data.isel(level=index).transpose(TIME, LEVEL, LATITUDE, LONGITUDE)
            blocks.append(np.moveaxis(np.asarray(data.values), 1, -1))  # [T, H, W, L]
    frames = np.concatenate(blocks, axis=-1)  # [T, H, W, C] in `by_variable` order
    offsets, start = {}, 0
    for variable, var_levels in by_variable.items():
        offsets[variable] = {lv: start + k for k, lv in enumerate(var_levels)}
        start += len(var_levels)
    frames = frames[..., [offsets[c.variable][c.level] for c in channels]]
    return frames.reshape(frames.shape[0], -1, frames.shape[-1]).astype(np.float32)


@dataclasses.dataclass(frozen=True)
class StoreLayout:
    """How a source store lays out its grid, so output written for it can match.

    Fields:
      horizontal: the order of the two horizontal dims in its forecast variables,
        ("latitude", "longitude") or ("longitude", "latitude").
      latitude_descending: latitude runs north to south in the source.
      coordinate_dtypes: {coordinate: numpy dtype str} of time, level, latitude,
        longitude as stored.
      coordinate_attrs, variable_attrs: {name: attrs} (units, long_name...) as stored.
    """

    horizontal: tuple[str, str]
    latitude_descending: bool
    coordinate_dtypes: Mapping[str, str]
    coordinate_attrs: Mapping[str, Mapping]
    variable_attrs: Mapping[str, Mapping]


def store_layout(ds, variables: Sequence[str]) -> StoreLayout:
    """The layout of an opened store (`open_weather`), from its forecast `variables`."""
    horizontal = (LATITUDE, LONGITUDE)
    for name in variables:
        dims = [d for d in ds[name].dims if d in (LATITUDE, LONGITUDE)]
        horizontal = tuple(dims)
        break
    coords = [c for c in (TIME, LEVEL, LATITUDE, LONGITUDE) if c in ds.coords]
    return StoreLayout(
        horizontal=horizontal,
        latitude_descending=bool(ds.attrs.get(DESCENDING_ATTR, False)),
        coordinate_dtypes={c: str(ds[c].dtype) for c in coords},
        coordinate_attrs={c: dict(ds[c].attrs) for c in coords},
        variable_attrs={n: dict(ds[n].attrs) for n in variables},
    )
