"""Weather data on an unstructured point set: one horizontal dim, any points.

Reduced Gaussian grids, HEALPix, observation-like point sets and anemoi-style datasets
store fields over one horizontal dim (`values`, `cell`, `point`...) with `latitude`
and `longitude` as 1-D coordinates along it: forecast variables over `time, [level,]
<dim>` in any order, static ones over `<dim>`. Each point carries its own area weight:
a static variable named `cell_area` or `area` when the store has one (it is then not
a network input), else the area of its spherical Voronoi cell (scipy), normalised to
mean 1. The nodes are a point set (`meta["points"]`), as for stretched grids
(`meshsim.data.stretched`), so the same graphs, task and scores apply.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from meshsim.data.forcing import LazyForcing
from meshsim.data.weather import WeatherSplit, check_time_axis, time_segments, time_step
from meshsim.data.weather_store import LEVEL, TIME, Channel, _xarray

AREA_NAMES = ("cell_area", "area")  # a static variable holding each point's area


def points_dim(ds) -> str | None:
    """The horizontal dim of a point-set store: the one dim that `latitude` and
    `longitude` are 1-D coordinates over (not themselves dims), else None."""
    if "latitude" not in ds.coords or "longitude" not in ds.coords:
        return None
    lat, lon = ds["latitude"].dims, ds["longitude"].dims
    if len(lat) != 1 or lat != lon or lat[0] in ("latitude", "longitude"):
        return None
    return lat[0]


def voronoi_weights(latitudes, longitudes) -> np.ndarray:
    """[N] float64 areas of the points' spherical Voronoi cells, mean 1."""
    from scipy.spatial import SphericalVoronoi

    lat, lon = np.radians(latitudes), np.radians(longitudes)
    xyz = np.stack([np.cos(lat) * np.cos(lon), np.cos(lat) * np.sin(lon), np.sin(lat)], -1)
    areas = SphericalVoronoi(xyz, radius=1.0).calculate_areas()
    return areas / areas.mean()


class PointFrames:
    """A `[T, N, C]` array-like over one trajectory of a `PointsDataset`; integer and
    slice indexing read only those times."""

    def __init__(self, dataset: PointsDataset, start: int, stop: int):
        self._dataset, self._start = dataset, start
        self.shape = (stop - start, dataset.point_latitudes.size, len(dataset.channels))
        self.ndim, self.dtype = 3, np.dtype(np.float32)

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, index):
        if isinstance(index, int | np.integer):
            t = int(index) + (self.shape[0] if index < 0 else 0)
            if not 0 <= t < self.shape[0]:
                raise IndexError(f"time index {index} out of range for {self.shape[0]} frames")
            return self._dataset.frames(self._start + t, self._start + t + 1)[0]
        if isinstance(index, slice):
            a, b, step = index.indices(self.shape[0])
            frames = self._dataset.frames(self._start + a, self._start + max(a, b))
            return frames[::step]
        return np.asarray(self)[index]

    def __array__(self, dtype=None, copy=None):
        out = self[:]
        return out if dtype is None else out.astype(dtype)


class PointsDataset(WeatherSplit):
    """One split of a point-set store as a sequence of trajectories.

    Each trajectory is a dict: `state` (`PointFrames` `[T, N, C]`), `forcing [T, N, 5]`,
    `static [N, S]`, `point_latitude`, `point_longitude` `[N]` float64 (deg),
    `point_weight [N]` float32 (area, mean 1) and `time [T]`.

    Raises:
      ValueError: a variable over other dims (named with its dims), an unknown
        variable, or times that are not datetimes.
    """

    layout = None  # forecasts of point sets are not written as WB2 grids

    def __init__(
        self,
        path: str | os.PathLike,
        variables: Sequence[str] = (),
        *,
        static: Sequence[str] | None = None,
    ):
        xr = _xarray()
        self.path = os.fspath(path)
        ds = xr.open_zarr(self.path, chunks=None) if os.path.isdir(self.path) else None
        self.ds = ds if ds is not None else xr.open_dataset(self.path)
        self.dim = dim = points_dim(self.ds)
        if dim is None:
            raise ValueError(f"{self.path}: expected latitude and longitude along one dim")
        kinds = {}
        for name, var in self.ds.data_vars.items():
            dims = set(var.dims)
            if dims in ({TIME, dim}, {TIME, LEVEL, dim}):
                kinds[name] = "dynamic"
            elif dims == {dim}:
                kinds[name] = "static"
            elif not variables or name in variables:
                raise ValueError(
                    f"{self.path}: variable {name!r} has dims {tuple(var.dims)}; expected "
                    f"(time, [level,] {dim}) in any order, or ({dim},) for a static field"
                )
        valid = sorted(n for n, k in kinds.items() if k == "dynamic")
        channels = []
        for v in list(variables) or valid:
            if v not in valid:
                raise ValueError(f"{self.path}: variables: {v!r} is not one of {valid}")
            if LEVEL in self.ds[v].dims:
                channels += [Channel(v, int(lv)) for lv in np.asarray(self.ds[LEVEL].values)]
            else:
                channels.append(Channel(v))
        self.channels = tuple(channels)
        self.times = check_time_axis(self.ds, self.path)
        self.segments = time_segments(self.times)
        self.point_latitudes = np.asarray(self.ds["latitude"].values, np.float64)
        self.point_longitudes = np.asarray(self.ds["longitude"].values, np.float64) % 360.0
        statics = sorted(n for n, k in kinds.items() if k == "static" and n not in AREA_NAMES)
        if static is not None:
            for name in static:
                if name not in statics:
                    raise ValueError(
                        f"{self.path}: static variables: {name!r} is not one of {statics}"
                    )
            statics = list(static)
        self.static_names = tuple(statics)
        values = [np.asarray(self.ds[n].values, np.float32) for n in self.static_names]
        n = self.point_latitudes.size
        self.static = np.stack(values, -1) if values else np.zeros((n, 0), np.float32)
        area = next((a for a in AREA_NAMES if kinds.get(a) == "static"), None)
        if area is not None:
            weights = np.asarray(self.ds[area].values, np.float64)
            if not np.all(np.isfinite(weights) & (weights > 0)):
                raise ValueError(f"{self.path}: {area}: expected positive areas")
            weights = weights / weights.mean()
        else:
            weights = voronoi_weights(self.point_latitudes, self.point_longitudes)
        self.weights = weights.astype(np.float32)
        self.meta = {
            "format": "weatherbench2-points",
            "points": True,
            "channels": [c.name for c in self.channels],
            "static": list(self.static_names),
            "time_step_hours": float(time_step(self.times) / np.timedelta64(1, "h")),
        }

    def __repr__(self) -> str:
        return (
            f"PointsDataset({self.path!r}, {len(self)} trajectories, "
            f"{self.point_latitudes.size} points, channels={self.meta['channels']})"
        )

    def __getitem__(self, index: int) -> dict:
        start, stop = self.segment(index)
        times = self.times[start:stop]
        return {
            "state": PointFrames(self, start, stop),
            "forcing": LazyForcing(times, self.point_latitudes, self.point_longitudes),
            "static": self.static,
            "point_latitude": self.point_latitudes,
            "point_longitude": self.point_longitudes,
            "point_weight": self.weights,
            "time": times,
        }

    def frames(self, start: int, stop: int) -> np.ndarray:
        """[stop − start, N, C] float32 frames of the time indices start..stop − 1."""
        blocks = []
        for c in self.channels:
            data = self.ds[c.variable].isel(time=slice(start, stop))
            if c.level is not None:
                data = data.sel(level=c.level)
            blocks.append(np.asarray(data.transpose(TIME, self.dim).values, np.float32))
        return np.stack(blocks, axis=-1)


def is_points_store(path: str | os.PathLike) -> bool:
    """Whether the store at `path` holds a point set (`points_dim`)."""
    xr = _xarray()
    path = os.fspath(path)
    try:
        ds = xr.open_zarr(path, chunks=None) if os.path.isdir(path) else xr.open_dataset(path)
    except Exception:
        return False
    return points_dim(ds) is not None
